"""
Signed address records: a node's word on where it listens.

Every node with a key signs a record of its own address (node id, host,
listening port, name and a sequence number that only grows) and says it
in its HELLO.  Whoever it connects to keeps the newest record and passes
it on, unchanged, in peer exchange; a receiver counts an address for a
node only if that node signed it (L{p2poverlay.signing}).  Nobody can
point another node's id at a host of their own.

The host signed is the node's public address once a dial-back proved it
(L{p2poverlay.reachability}), else the interface the node listens on; a
node listening on every interface signs the address its side of each
connection has, which is where that peer reaches it.  A node that others
cannot dial (private, or behind a NAT and not shown reachable) says port
0 and signs nothing: it advertises no address nobody can reach.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any, Optional, Tuple

from p2poverlay.message import Hello, PeerAddress
from p2poverlay.signing import Signer, Verifier

# Hosts this node keeps a signed record for (one per interface it is
# reached at: few).
MAX_RECORDS = 16
_WILDCARDS = ("", "0.0.0.0", "::")


def recordOf(hello: Hello) -> Optional[PeerAddress]:
    """The signed address record a HELLO carries, if it carries one."""
    if not hello.key:
        return None
    return PeerAddress(hello.node_id, hello.host, hello.port, hello.name,
                       hello.seq, hello.key, hello.signature)


class OwnAddress:
    """
    Signs this node's records (with C{signer}; none without a key) for
    the port the C{listener} (a L{p2poverlay.listening.ListeningService})
    is bound to, and checks the records that peers' HELLOs carry.
    """

    def __init__(self, signer: Optional[Signer] = None,
                 verifier: Optional[Verifier] = None, listener: Any = None,
                 clock: Any = None) -> None:
        self.signer = signer
        self.verifier = verifier or Verifier(acceptUnsigned=True)
        self.listener = listener
        self.clock = clock
        # Whether and where this node is reachable (set by the node).
        self.reachability: Any = None
        # The relay this node is reached through, when nobody can dial it
        # (set by the node): C{current()} is a (node id, host, port) or None.
        self.relays: Any = None
        self._records: \
            "OrderedDict[Tuple[str, int, str, str], PeerAddress]" = OrderedDict()
        self._lastSeq = 0

    def record(self, host: str, port: int, name: str, relay: str = ""
               ) -> Optional[PeerAddress]:
        """This node's signed record of C{host:port} (the address of
        C{relay}, if it is reached through one), made once."""
        if self.signer is None or not port or host in _WILDCARDS:
            return None
        key = (host, port, name, relay)
        record = self._records.get(key)
        if record is None:
            # Milliseconds: a record made after a restart is newer still.
            seq = max(int(self.clock.seconds() * 1000), self._lastSeq + 1)
            self._lastSeq = seq
            record = self._records[key] = self.signer.address(
                PeerAddress(self.signer.key.nodeId, host, port, name, seq,
                            relay=relay))
            if len(self._records) > MAX_RECORDS:
                self._records.popitem(last=False)
        return record

    def signedHello(self, hello: Hello, connection: Any) -> Hello:
        """C{hello}, with this node's record of where C{connection}'s peer
        reaches it."""
        dialable, public = (self.reachability.advertised()
                            if self.reachability is not None else (True, None))
        if not dialable:
            return replace(hello, port=0)
        host = public or self._listeningHost()
        if host in _WILDCARDS:
            host = connection.transport.getHost().host
        record = self.record(host, hello.port, hello.name)
        if record is None:
            return hello
        return replace(hello, host=record.host, seq=record.seq,
                       key=record.key, signature=record.signature)

    def relayedRecord(self, name: str) -> Optional[PeerAddress]:
        """The record of the relay this node is reached through, if any."""
        via = self.relays.current() if self.relays is not None else None
        if via is None:
            return None
        relayId, host, port = via
        return self.record(host, port, name, relayId)

    def _listeningHost(self) -> str:
        return getattr(getattr(self.listener, "address", None), "host", "")

    def recordIn(self, hello: Hello) -> Optional[PeerAddress]:
        """The record C{hello} carries (once L{check}ed), the one copy of
        it the verifier keeps."""
        return self.verifier.shared(recordOf(hello))

    def check(self, hello: Hello) -> Optional[str]:
        """Why the record in C{hello} is not its sender's, or L{None}."""
        record = recordOf(hello)
        if record is None:
            return None
        wrong = self.verifier.checkAddress(record)
        return f"address record {wrong}" if wrong is not None else None

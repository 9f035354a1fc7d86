"""
One node as peer exchange tells of it: its id, where it listens, its
name, and (from a node with a key) its signature of all that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from p2poverlay.wirevalues import (
    MAX_HOST_LENGTH, MAX_NAME_LENGTH, MessageError, checkLength, checkNodeId,
    checkPort, checkRange, checkSigned,
)


@dataclass(frozen=True)
class PeerAddress:
    """One entry of a L{Peers} message: a node and where it listens."""

    node_id: str
    host: str
    port: int
    name: str = ""
    # The node's own record of its address: a number that grows with each
    # new record (the newest wins), its raw key and its signature (see
    # p2poverlay.signing), in hex; empty for a node without a key.
    seq: int = 0
    key: str = ""
    signature: str = ""
    # A node nobody can dial is reached through a relay: then host and
    # port are the relay's, and this its node id (see p2poverlay.relay).
    relay: str = ""

    def toDict(self) -> Dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and PEERS carry dozens.
        fields = {"node_id": self.node_id, "host": self.host,
                  "port": self.port, "name": self.name}
        if self.key:
            fields.update(seq=self.seq, key=self.key,
                          signature=self.signature)
        if self.relay:
            fields["relay"] = self.relay
        return fields

    @classmethod
    def fromDict(cls, kind: str, item: Any) -> "PeerAddress":
        if not isinstance(item, dict):
            raise MessageError(f"{kind} entry is not an object")
        try:
            node_id, host, port = item["node_id"], item["host"], item["port"]
        except KeyError as e:
            raise MessageError(f"{kind} entry lacks field {e.args[0]!r}") from None
        name = item.get("name", "")
        seq = item.get("seq", 0)
        key, signature = item.get("key", ""), item.get("signature", "")
        relay = item.get("relay", "")
        if not all(isinstance(value, str) for value in
                   (node_id, host, name, key, signature, relay)):
            raise MessageError(f"{kind} entry has a non-string field")
        for field, value in (("port", port), ("seq", seq)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise MessageError(f"{kind} entry {field} must be an integer")
        checkNodeId(node_id, "node_id")
        checkPort(port, "port")
        checkRange(seq, "seq")
        if not host:
            raise MessageError(f"{kind} entry has an empty host")
        checkLength(host, "host", MAX_HOST_LENGTH)
        checkLength(name, "name", MAX_NAME_LENGTH)
        checkSigned(key, signature)
        if relay:
            checkNodeId(relay, "relay")
        return cls(node_id, host, port, name, seq, key, signature, relay)

"""
Dialing peers back: the service a node gives its peers so that they learn
whether they are reachable (L{p2poverlay.reachability} is the asking side).

A peer asks with L{DialBackRequest}; this node dials the address named,
afresh, with a probe connection carrying the peer's nonce, and reports
the outcome in L{DialBackResult}.  It dials only the host it sees the
peer's connection come from, so nobody can point it at a third party,
and within limits: one dial-back per peer every L{PER_PEER_INTERVAL}
seconds, L{RATE} a second overall, L{MAX_RUNNING} at once.
"""

from __future__ import annotations

from typing import Any, Dict

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.limits import TokenBucket
from p2poverlay.message import PROBE
from p2poverlay.natwire import (
    REACHED, REFUSED, UNREACHED, DialBackRequest, DialBackResult,
)

PER_PEER_INTERVAL = 20.0
RATE, BURST = 0.5, 5
MAX_RUNNING = 8


def probeThrough(connections: Any) -> Any:
    """
    C{probe(host, port, nonce)} for L{DialBackServer}: a new connection
    of role C{probe} from C{connections} (a
    L{p2poverlay.connections.Connections}), even to a node already
    connected, since what counts is whether a dial gets through.
    """
    def probe(host: str, port: int, nonce: str) -> "Deferred[Any]":
        endpoint = connections.network.clientEndpoint(
            host, port, connections.config.connectTimeout)
        d = endpoint.connect(PeerConnectionFactory(
            connections, outbound=True, role=PROBE, nonce=nonce))
        return d.addCallback(lambda connection: connection.handshake)
    return probe


class DialBackServer:
    """
    Dials peers back for their L{DialBackRequest}s.

    @param probe: C{probe(host, port, nonce)}, a Deferred firing with the
        L{p2poverlay.records.PeerInfo} of the node a probe connection
        reached (L{p2poverlay.connections.Connections.probe}).
    """

    def __init__(self, clock: Any, probe: Any) -> None:
        self.clock = clock
        self.probe = probe
        self._bucket = TokenBucket(RATE, BURST, clock)
        self._lastFor: Dict[str, float] = {}
        self.running = 0
        self.outcomes: Dict[str, int] = {REACHED: 0, UNREACHED: 0, REFUSED: 0}

    def requestReceived(self, connection: Any,
                        request: DialBackRequest) -> None:
        """A peer asks to be dialed back."""
        peer = connection.peer.node_id
        refusal = self._refusal(connection, peer, request)
        if refusal is not None:
            self._report(connection, request, REFUSED, refusal)
            return
        self._lastFor[peer] = self.clock.seconds()
        self.running += 1
        d = self.probe(request.host, request.port, request.nonce)

        def reached(info: Any) -> None:
            if info.node_id == peer:
                self._report(connection, request, REACHED)
            else:
                self._report(connection, request, UNREACHED,
                             "another node answers there")

        def missed(failure: Failure) -> None:
            self._report(connection, request, UNREACHED,
                         failure.getErrorMessage())

        d.addCallbacks(reached, missed)
        d.addBoth(self._done)

    def _refusal(self, connection: Any, peer: str,
                 request: DialBackRequest) -> "str | None":
        if request.host != connection.remoteHost:
            return "this node sees you at another host"
        now = self.clock.seconds()
        last = self._lastFor.get(peer)
        if last is not None and now - last < PER_PEER_INTERVAL:
            return "asked too often"
        if self.running >= MAX_RUNNING or not self._bucket.take():
            return "busy"
        if len(self._lastFor) > 1024:
            # Forget those whose interval is over.
            self._lastFor = {p: t for p, t in self._lastFor.items()
                             if now - t < PER_PEER_INTERVAL}
        return None

    def _done(self, _: object) -> None:
        self.running -= 1

    def _report(self, connection: Any, request: DialBackRequest,
                outcome: str, reason: str = "") -> None:
        self.outcomes[outcome] += 1
        if not connection.closing:
            connection.sendMessage(
                DialBackResult(request.nonce, outcome, reason[:200]))

    def counters(self) -> Dict[str, object]:
        """For L{p2poverlay.metrics}."""
        return {"dial_backs_served": dict(self.outcomes)}

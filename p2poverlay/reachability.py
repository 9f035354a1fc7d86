"""
Whether other nodes can dial this one, and at which address.

Peers say in their HELLOs where they see this node
(L{p2poverlay.observations}).  Once two agree on a host, the node asks a
peer to dial it back there, at its listening port, with a fresh nonce
(L{p2poverlay.natwire}): a probe connection whose HELLO carries the nonce
proves the address reachable, and only that proves it; a peer's word that
it reached the node counts for nothing.  A peer not among the two that
agreed is asked where there is one (AutoNAT's idea; go-libp2p waits for
four observers, which small overlays never have).

The node is then L{PUBLIC} (at that address), or L{PRIVATE} once two
different peers failed to reach it.  A decided state flips only after
the results for it (up to L{MAX_CONFIDENCE}) are outweighed by results
against it, from two peers at least, so a lost probe
now and then does not make it flip-flop; it is checked again every
L{RECHECK} seconds.  What the node advertises follows
(L{Reachability.advertised}): a node that is private, or behind a NAT and
not yet shown reachable, advertises no address at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from p2poverlay.addresses import formatAddress
from p2poverlay.message import PROBE, Hello
from p2poverlay.natwire import REACHED, REFUSED, DialBackRequest, DialBackResult
from p2poverlay.observations import MAPPINGS, AddressObservations
from p2poverlay.reasons import CloseKind, CloseReason
from p2poverlay.records import PeerInfo

UNKNOWN = "unknown"
PUBLIC = "public"
PRIVATE = "private"

# How long a probe may take: the prober's dial and handshake, with room.
PROBE_TIMEOUT = 30.0
# Undecided: the next try after this long (a new observation also tries);
# after a failure, another peer is asked at once, if there is one.
RETRY = 30.0
SOON = 1.0
# Decided: checked again this often.
RECHECK = 600.0
# Failures, from different peers, that make an undecided node private.
FAILURES_TO_DECIDE = 2
# Results in a row against a decided state before it flips.
MAX_CONFIDENCE = 3


class NoReachability:
    """Hears nothing and settles probes only: for connections alone."""

    def heard(self, connection: Any, hello: Hello) -> None:
        pass

    def probed(self, connection: Any, hello: Hello) -> bool:
        return False

    def probeSettled(self, connection: Any, hello: Hello) -> None:
        """A probe connection's HELLO came (see L{settleProbe})."""
        settleProbe(connection, hello, self.probed)


def settleProbe(connection: Any, hello: Hello,
                probed: Callable[[Any, Hello], bool]) -> None:
    """
    A probe's HELLO, checked: the prober's handshake fires with the
    L{PeerInfo} of the node reached; the probed node asks C{probed}
    whether the probe was its own.  Then the probe closes: it carries
    nothing.
    """
    if connection.outbound:
        connection.established(PeerInfo(
            node_id=hello.node_id, host=connection.remoteHost, port=hello.port,
            name=hello.name, direction=connection.direction,
            since=connection.clock.seconds(), role=PROBE))
    else:
        probed(connection, hello)
    connection.close(CloseReason(CloseKind.PROBED))


@dataclass
class _Probe:
    host: str
    port: int
    prober: str
    timer: IDelayedCall


class Reachability(NoReachability):
    """
    This node's reachability, worked out from its peers' observations and
    dial-backs.

    @ivar state: L{UNKNOWN}, L{PUBLIC} or L{PRIVATE}.
    @ivar address: the C{(host, port)} others reach this node at, once
        L{PUBLIC}.
    @ivar confirmedBy: the peers whose probes reached this node there.
    """

    log = Logger()

    # Empty for most nodes, so one empty set the class holds until a
    # node needs its own (each is replaced, never changed in place).
    _failedBy: FrozenSet[str] = frozenset()
    _sought: FrozenSet[str] = frozenset()

    def __init__(self, clock: Any, peers: Any, listenPort: Callable[[], int],
                 rng: Any) -> None:
        """
        @param peers: the L{p2poverlay.registry.PeerRegistry}.
        @param listenPort: this node's listening port, now.
        """
        self.clock = clock
        self.peers = peers
        self.listenPort = listenPort
        self.random = rng
        self.observations = AddressObservations(listenPort)
        self.state = UNKNOWN
        self.address: Optional[Tuple[str, int]] = None
        self.confidence = 0
        self.confirmedBy: Set[str] = set()
        # Observers linked to for a dial-back, since the state last changed.
        # C{linkTo(nodeId)} opens a direct link to that node, if it can.
        self.linkTo: Callable[[str], object] = lambda _: None
        self._pending: Dict[str, _Probe] = {}
        self._next: Optional[IDelayedCall] = None
        self.stopped = False
        self.changes = 0  # how often the state changed
        # Told when what the node advertises (L{advertised}) changes, and
        # when its state does.
        self.advertisedChanged: List[Callable[[], None]] = []
        self.stateChanged: List[Callable[[], None]] = []
        self._advertised = self.advertised()
        self.outcomes: Dict[str, int] = {
            "reached": 0, "unreached": 0, "refused": 0, "timeout": 0}

    # -- what the connections report ----------------------------------------
    # probeSettled, from NoReachability, asks this class's probed.

    def heard(self, connection: Any, hello: Hello) -> None:
        """A peer's HELLO, checked, on C{connection}: note its view."""
        if connection.role == PROBE or not hello.observed:
            return
        local = connection.transport.getHost()
        kept = self.observations.heard(
            hello.node_id, hello.observed, getattr(local, "host", ""),
            getattr(local, "port", 0), connection.outbound,
            connection.remoteHost)
        if kept is not None:
            # After this turn: the connection is settled by then.
            self.clock.callLater(0, self.consider)
            self._checkAdvertised()

    def probed(self, connection: Any, hello: Hello) -> bool:
        """
        A probe connection came in, saying C{hello}: is it one this node
        asked for?  Only then has the probed address been reached.
        """
        probe = self._pending.get(hello.nonce)
        if probe is None or probe.prober != hello.node_id:
            return False
        self._settle(hello.nonce)
        self.outcomes["reached"] += 1
        self.confirmedBy.add(probe.prober)
        address = (probe.host, probe.port)
        if self.state == PUBLIC and self.address == address:
            self.confidence = min(MAX_CONFIDENCE, self.confidence + 1)
        else:
            self._become(PUBLIC, address)
        self._failedBy = frozenset()
        self._schedule(RECHECK)
        return True

    def resultReceived(self, connection: Any, result: DialBackResult) -> None:
        """A peer's report on the dial-back it was asked for."""
        probe = self._pending.get(result.nonce)
        peer = connection.peer
        if probe is None or peer is None or probe.prober != peer.node_id:
            return  # Late, or not this peer's to report.
        if result.outcome == REACHED:
            # Had it reached this node, the probe would have settled it.
            return
        self._settle(result.nonce)
        if result.outcome == REFUSED:
            self.outcomes["refused"] += 1
            self._schedule(RETRY)
        else:
            self.outcomes["unreached"] += 1
            self._failed(probe)

    def _timedOut(self, nonce: str) -> None:
        probe = self._pending.pop(nonce, None)
        if probe is not None:
            self.outcomes["timeout"] += 1
            self._failed(probe)

    def _settle(self, nonce: str) -> None:
        probe = self._pending.pop(nonce)
        if probe.timer.active():
            probe.timer.cancel()

    def _failed(self, probe: _Probe) -> None:
        self._failedBy |= {probe.prober}
        if self.state == PUBLIC:
            self.confidence -= 1
            if self.confidence < 0 and \
                    len(self._failedBy) >= FAILURES_TO_DECIDE:
                self._become(PRIVATE, None)
        elif self.state == PRIVATE:
            self.confidence = min(MAX_CONFIDENCE, self.confidence + 1)
        elif len(self._failedBy) >= FAILURES_TO_DECIDE:
            self._become(PRIVATE, None)
        if self.state != UNKNOWN:
            self._schedule(RECHECK)
        else:
            self._schedule(SOON if self._untried() else RETRY)

    def _become(self, state: str, address: Optional[Tuple[str, int]]) -> None:
        self.state, self.address, self.confidence = state, address, 0
        self.changes += 1
        self._sought = frozenset()
        if address is None:
            self.confirmedBy.clear()
        self.log.info("reachability: {what}", what=self.describe())
        for tell in self.stateChanged:
            tell()
        self._checkAdvertised()

    def _checkAdvertised(self) -> None:
        advertised = self.advertised()
        if advertised != self._advertised:
            self._advertised = advertised
            for tell in self.advertisedChanged:
                tell()

    # -- asking for dial-backs -----------------------------------------------

    def _schedule(self, delay: float) -> None:
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = self.clock.callLater(delay, self._due)

    def _due(self) -> None:
        self._next = None
        self.consider()

    def consider(self) -> None:
        """Ask for a dial-back if one is due: none under way or planned,
        and a candidate host the node has not shown reachable."""
        if self._pending or self.stopped:
            return
        host = self.observations.candidate()
        port = self.listenPort()
        if host is None or not port:
            return  # (A node that does not listen has nothing to test.)
        planned = self._next is not None and self._next.active()
        if planned and (self.state != PUBLIC or self.address == (host, port)):
            return
        prober = self._prober(host)
        if (prober is None or prober.peer.node_id in self._failedBy) and \
                self._seekObserver(host):
            return
        if prober is None:
            self._schedule(RETRY)
            return
        self.ask(prober, host)

    def _seekObserver(self, host: str) -> bool:
        """
        No peer that sees this node at C{host} is left to ask (a node with
        one neighbour, say, when a decision takes two): link to a node
        that saw it there on a connection now gone (a DHT query's), to ask
        it next.  Did it try?
        """
        others = self._unlinkedObservers(host)
        if not others:
            return False
        other = self.random.choice(others)
        self._sought |= {other}
        self.linkTo(other)
        self._schedule(SOON)
        return True

    def ask(self, connection: Any, host: str) -> str:
        """
        Ask the peer of C{connection} to dial this node back at C{host},
        at its listening port; the outcome counts as any other.

        @return: the request's nonce.
        """
        nonce = os.urandom(32).hex()
        port = self.listenPort()
        timer = self.clock.callLater(PROBE_TIMEOUT, self._timedOut, nonce)
        self._pending[nonce] = _Probe(host, port, connection.peer.node_id,
                                      timer)
        connection.sendMessage(DialBackRequest(nonce, host, port))
        return nonce

    def _prober(self, host: str) -> Any:
        """
        A peer that sees this node at C{host}, to ask: one that has not
        failed to reach it yet before one that has, and one not among the
        first two to name the host before those two.
        """
        eligible = self._observing(host)
        if not eligible:
            return None
        firstTwo = self.observations.observersOf(host)[:2]

        def rank(connection: Any) -> Tuple[bool, bool]:
            nodeId = connection.peer.node_id
            return (nodeId in self._failedBy, nodeId in firstTwo)
        best = min(rank(c) for c in eligible)
        return self.random.choice([c for c in eligible if rank(c) == best])

    def _observing(self, host: str) -> List[Any]:
        """The connected peers that see this node at C{host}."""
        observers = set(self.observations.observersOf(host))
        return [c for c in self.peers.connections()
                if c.peer is not None and not c.closing
                and c.peer.node_id in observers]

    def _unlinkedObservers(self, host: str) -> List[str]:
        """The nodes that saw this node at C{host}, are not linked now,
        and have been neither asked nor linked to for it."""
        linked = {c.peer.node_id for c in self._observing(host)}
        return [o for o in self.observations.observersOf(host)
                if o not in linked and o not in self._failedBy
                and o not in self._sought]

    def _untried(self) -> bool:
        """Is some peer that could be asked (or linked to) yet to fail?"""
        host = self.observations.candidate()
        return host is not None and (any(
            c.peer.node_id not in self._failedBy
            for c in self._observing(host))
            or bool(self._unlinkedObservers(host)))

    # -- what the node says of itself -------------------------------------

    def advertised(self) -> Tuple[bool, Optional[str]]:
        """
        Whether this node should advertise its listening port at all, and
        the host to sign for it (L{None}: the one it has on the link).
        """
        if self.state == PUBLIC and self.address is not None:
            return True, self.address[0]
        if self.state == PRIVATE or self.observations.behindNat():
            return False, None
        return True, None

    def describe(self) -> str:
        """One line: the state and what it rests on."""
        mapping = self.observations.mapping()
        nat = {"none": "no NAT", "unknown": "NAT unknown",
               "endpoint-independent": "NAT maps endpoint-independent",
               "per-destination": "NAT maps per destination (symmetric)"
               }[mapping]
        if self.state == PUBLIC and self.address is not None:
            return (f"public at {formatAddress(*self.address)} (dialed back "
                    f"by {len(self.confirmedBy)}, {nat})")
        seen, host = len(self.observations), self.observations.candidate()
        if self.state == PRIVATE:
            where = f"seen at {host}, " if host is not None else ""
            return f"private: {where}not reachable from outside ({nat})"
        if host is not None:
            return (f"unknown: peers see this node at {host}, a dial-back "
                    f"is to tell ({nat})")
        if seen:
            said = "1 peer said where it sees" if seen == 1 else \
                f"{seen} peers said where they see"
            return f"unknown: {said} this node; 2 must agree"
        return "unknown: no peer beyond loopback said where it sees this node"

    def view(self) -> Dict[str, Any]:
        """The state as JSON for the web UI and the control API."""
        return {"state": self.state,
                "address": formatAddress(*self.address) if self.address
                else None,
                "confirmed_by": len(self.confirmedBy),
                "observers": len(self.observations),
                "candidate": self.observations.candidate(),
                "nat": self.observations.mapping()}

    def counters(self) -> Dict[str, object]:
        """For L{p2poverlay.metrics}."""
        mapping = self.observations.mapping()
        return {"reachability": {s: int(s == self.state)
                                 for s in (UNKNOWN, PUBLIC, PRIVATE)},
                "reachability_changes": self.changes,
                "nat_mapping": {m: int(m == mapping) for m in MAPPINGS},
                "dial_backs": dict(self.outcomes)}

    def stop(self) -> None:
        """Ask for no more dial-backs (the node stops)."""
        self.stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        for nonce in list(self._pending):
            self._settle(nonce)

"""
Where peers see this node: the addresses their HELLOs say they see.

A peer this node dialed sees the source of the connection: behind a NAT,
the router's side of the mapping, which the node cannot learn any other
way.  A peer that dialed this node sees the address it dialed.  Two peers
on two hosts naming one host make it this node's candidate public host
(several node ids on one host count once, so one machine cannot make the
candidate alone; a dial-back
then tests it: L{p2poverlay.reachability}).  Comparing the ports that
peers see with the node's own ports on those connections tells how the
NAT maps: one that keeps the node's port keeps one mapping for every
destination; one that changes it maps per destination (symmetric).

Loopback addresses say nothing of the outside world and are not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, List, Optional, Set

from p2poverlay.addresses import isLoopback, parseAddress
from p2poverlay.records import SLOTS

# Peers, on as many hosts, needed to agree on a host before it is the
# candidate.
AGREEMENT = 2
# Observers remembered (the most recent); a NAT's mapping changes slowly.
MAX_OBSERVERS = 32

# How the node's NAT maps, as far as observations show.
UNKNOWN = "unknown"  # too few observations
NO_NAT = "none"  # peers see the node's own address
ENDPOINT_INDEPENDENT = "endpoint-independent"  # one mapping, port kept
PER_DESTINATION = "per-destination"  # a new port each time: symmetric
MAPPINGS = (UNKNOWN, NO_NAT, ENDPOINT_INDEPENDENT, PER_DESTINATION)


@dataclass(frozen=True, **SLOTS)
class Observation:
    """
    One peer's view of this node.

    @ivar host: where the peer sees this node; C{port} likewise.
    @ivar localHost: this node's own address on that connection; and
        C{localPort}, its port.
    @ivar outbound: this node dialed the peer (C{port} is then the
        source port after any NAT).
    @ivar observerHost: where the peer's connection comes from, as this
        node sees it: observers on one host count once.
    """

    observer: str
    host: str
    port: int
    localHost: str
    localPort: int
    outbound: bool
    observerHost: str = ""

    @property
    def source(self) -> str:
        """What counts once towards agreement: the observer's host."""
        return self.observerHost or self.observer


class AddressObservations:
    """
    The latest observation of each of the last L{MAX_OBSERVERS} peers.

    @param listenPort: this node's listening port, now (0: none yet).
    """

    def __init__(self, listenPort: Callable[[], int]) -> None:
        self.listenPort = listenPort
        self._byObserver: "OrderedDict[str, Observation]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._byObserver)

    def heard(self, observer: str, observed: str, localHost: str,
              localPort: int, outbound: bool,
              observerHost: str = "") -> Optional[Observation]:
        """
        Peer C{observer} said it sees this node at C{observed}
        (``host:port``, as in its HELLO) on a connection whose local end
        is C{localHost:localPort} and whose far end is on C{observerHost}.

        @return: what was kept, or L{None} (nothing said, or loopback).
        """
        try:
            host, port = parseAddress(observed)
        except ValueError:
            return None
        if isLoopback(host):
            return None
        observation = Observation(observer, self._kept(host), port,
                                  self._kept(localHost), localPort, outbound,
                                  observerHost)
        self._byObserver.pop(observer, None)
        self._byObserver[observer] = observation
        if len(self._byObserver) > MAX_OBSERVERS:
            self._byObserver.popitem(last=False)
        return observation

    def _kept(self, host: str) -> str:
        """C{host}, or the equal string an observation holds already:
        nearly every peer names the same host, this node's own."""
        for observation in self._byObserver.values():
            if observation.host == host:
                return observation.host
            if observation.localHost == host:
                return observation.localHost
        return host

    def forget(self, observer: str) -> None:
        """C{observer}'s view no longer counts (it misbehaved)."""
        self._byObserver.pop(observer, None)

    def _naming(self, observation: Observation) -> Optional[str]:
        """The host an observation names as this node's public one."""
        if observation.outbound:
            return observation.host
        # The peer dialed this node: it names a host that reaches it if
        # it dialed the listening port there.
        if observation.port == self.listenPort():
            return observation.host
        return None

    def observersOf(self, host: str) -> List[str]:
        """The peers naming C{host}, the earliest first."""
        return [o.observer for o in self._byObserver.values()
                if self._naming(o) == host]

    def candidate(self) -> Optional[str]:
        """The host named from the most hosts, if at least L{AGREEMENT}
        name it."""
        sources: "OrderedDict[str, Set[str]]" = OrderedDict()
        for observation in reversed(self._byObserver.values()):
            host = self._naming(observation)
            if host is not None:
                sources.setdefault(host, set()).add(observation.source)
        if not sources:
            return None
        # Ties go to the host named most recently.
        host = max(sources, key=lambda h: len(sources[h]))
        return host if len(sources[host]) >= AGREEMENT else None

    def localHosts(self) -> Set[str]:
        """This node's own addresses, on the connections observed."""
        return {o.localHost for o in self._byObserver.values()}

    def behindNat(self) -> Optional[bool]:
        """Whether the candidate host is none of this node's own (None:
        no candidate yet)."""
        host = self.candidate()
        return None if host is None else host not in self.localHosts()

    def mapping(self) -> str:
        """How the NAT maps the node's connections (see the module doc)."""
        host = self.candidate()
        if host is None:
            return UNKNOWN
        if host in self.localHosts():
            return NO_NAT
        dialed = [o for o in self._byObserver.values()
                  if o.outbound and o.host == host]
        if len(dialed) < AGREEMENT:
            return UNKNOWN
        kept = sum(1 for o in dialed if o.port == o.localPort)
        return ENDPOINT_INDEPENDENT if 2 * kept > len(dialed) \
            else PER_DESTINATION

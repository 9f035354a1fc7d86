"""
Hosts, routers and the WAN between them, each in a namespace of its own.

Address plan: the WAN is the bridge C{br0} in the namespace C{wan}, on
198.18.0.0/24 (a benchmark range, never routed); public hosts and routers'
WAN sides take 198.18.0.10 and up.  Router number N has the LAN
10.N.0.0/24 behind it (itself 10.N.0.1 on its own bridge C{br0}, its
hosts 10.N.0.10 and up).  Every machine's uplink is C{eth0} (a router's
C{wan0}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from p2poverlay.netlab.namespaces import LabError, Namespaces
from p2poverlay.netlab.rules import (
    DOUBLE, FIREWALL, MASQUERADE, lossRules, routerRules)

WAN_PREFIX = "198.18.0."
FIRST_HOST = 10
LAST_HOST = 250


@dataclass
class Machine:
    """
    A host or router: its namespace, its address on the network it is
    attached to, its uplink interface and the router it sits behind.
    """
    name: str
    ns: str
    address: str
    interface: str
    router: Optional["Router"] = None

    @property
    def public(self) -> bool:
        """Whether this machine sits on the WAN itself."""
        return self.router is None


@dataclass
class Router(Machine):
    """A router: C{address} is its WAN side, C{lanAddress} its LAN side."""
    kind: str = MASQUERADE
    lanNumber: int = 0
    hosts: List[Machine] = field(default_factory=list)

    @property
    def lanAddress(self) -> str:
        return f"10.{self.lanNumber}.0.1"

    @property
    def lanNetwork(self) -> str:
        return f"10.{self.lanNumber}.0.0/24"


class Topology:
    """
    Builds the machines of one lab inside its L{Namespaces}.

    @ivar machines: every host and router made, in order.
    """

    def __init__(self, namespaces: Namespaces) -> None:
        self.namespaces = namespaces
        self.machines: List[Machine] = []
        self._wan: Optional[str] = None
        self._wanNext = FIRST_HOST
        self._lanNext = 1
        self._lanHostNext: dict = {}
        self._routedLans: List[Router] = []

    def _wanNamespace(self) -> str:
        if self._wan is None:
            ns = self.namespaces.add("wan")
            self.namespaces.ip(ns, "link", "add", "br0", "type", "bridge")
            self.namespaces.ip(ns, "link", "set", "br0", "up")
            self._wan = ns
        return self._wan

    def _newMachine(self, name: str) -> str:
        if name == "wan" or any(m.name == name for m in self.machines):
            raise LabError(f"a machine named {name!r} exists already")
        return self.namespaces.add(name)

    def _attachToWan(self, ns: str, interface: str, delay: float = 0.0) -> str:
        if self._wanNext > LAST_HOST:
            raise LabError("the WAN is full")
        if delay < 0:
            raise LabError(f"a negative delay ({delay!r} s)")
        wan = self._wanNamespace()
        number = self._wanNext
        self._wanNext += 1
        bridgePort = f"v{number}"
        if delay:
            self.namespaces.delayWire(ns, interface, wan, bridgePort, delay)
        else:
            self.namespaces.veth(ns, interface, wan, bridgePort)
        self.namespaces.ip(wan, "link", "set", bridgePort, "master", "br0")
        address = f"{WAN_PREFIX}{number}"
        self.namespaces.ip(ns, "addr", "add", f"{address}/24",
                           "dev", interface)
        for lan in self._routedLans:
            self._routeTo(ns, lan)
        return address

    def _attachBehind(self, router: Router, ns: str, interface: str) -> str:
        number = self._lanHostNext[router.lanNumber]
        if number > LAST_HOST:
            raise LabError(f"the LAN of {router.name!r} is full")
        self._lanHostNext[router.lanNumber] = number + 1
        bridgePort = f"h{number}"
        self.namespaces.veth(ns, interface, router.ns, bridgePort)
        self.namespaces.ip(router.ns, "link", "set", bridgePort,
                           "master", "br0")
        address = f"10.{router.lanNumber}.0.{number}"
        self.namespaces.ip(ns, "addr", "add", f"{address}/24",
                           "dev", interface)
        self.namespaces.ip(ns, "route", "add", "default",
                           "via", router.lanAddress)
        return address

    def _routeTo(self, ns: str, lan: Router) -> None:
        self.namespaces.ip(ns, "route", "add", lan.lanNetwork,
                           "via", lan.address)

    def publicHost(self, name: str, delay: float = 0.0) -> Machine:
        """
        A host on the WAN with an address of its own.

        @param name: the machine's name, unique in the lab (a few letters).
        @param delay: seconds every packet takes each way on its uplink.
        """
        ns = self._newMachine(name)
        host = Machine(name, ns, self._attachToWan(ns, "eth0", delay), "eth0")
        self.machines.append(host)
        return host

    def natRouter(self, name: str, kind: str = MASQUERADE,
                  behind: Optional[Router] = None,
                  delay: float = 0.0) -> Router:
        """
        A router with a WAN side and a LAN 10.N.0.0/24 behind it; every
        kind drops connections opened from its WAN side.

        @param kind: C{"masquerade"}, C{"symmetric"}, C{"firewall"} (the
            LAN is routed, not translated: its addresses are reachable
            but new inbound connections are dropped), or C{"double"} (a
            masquerade router behind another one, made as C{NAME-out}).
        @param behind: the router this one sits behind (its WAN side then
            is a host on that router's LAN); on the WAN if L{None}.
        @param delay: seconds every packet takes each way between the
            router and the WAN (a router on the WAN only).
        """
        if kind == DOUBLE:
            if behind is not None:
                raise LabError("a double NAT sits on the WAN")
            behind = self.natRouter(f"{name}-out", MASQUERADE, delay=delay)
            delay = 0.0
        if delay and behind is not None:
            raise LabError("only a router on the WAN has a delay")
        if kind == FIREWALL and behind is not None:
            raise LabError("a firewall router sits on the WAN")
        ns = self._newMachine(name)
        if behind is None:
            address = self._attachToWan(ns, "wan0", delay)
        else:
            address = self._attachBehind(behind, ns, "wan0")
        router = Router(name, ns, address, "wan0", router=behind, kind=kind,
                        lanNumber=self._lanNext)
        self._lanNext += 1
        self._lanHostNext[router.lanNumber] = FIRST_HOST
        spaces = self.namespaces
        spaces.ip(ns, "link", "add", "br0", "type", "bridge")
        spaces.ip(ns, "link", "set", "br0", "up")
        spaces.ip(ns, "addr", "add", f"{router.lanAddress}/24", "dev", "br0")
        spaces.sysctl(ns, "net.ipv4.ip_forward=1")
        for rule in routerRules(kind, "wan0"):
            spaces.iptables(ns, *rule)
        if behind is not None:
            behind.hosts.append(router)
        if kind == FIREWALL:
            self._routedLans.append(router)
            for machine in self.machines:
                if machine.public:
                    self._routeTo(machine.ns, router)
        self.machines.append(router)
        return router

    def hostBehind(self, router: Router, name: str) -> Machine:
        """
        A host on C{router}'s LAN (10.N.0.10 and up), its default route
        through the router.
        """
        if router not in self.machines or not isinstance(router, Router):
            raise LabError(f"{router.name!r} is not a router of this lab")
        ns = self._newMachine(name)
        host = Machine(name, ns, self._attachBehind(router, ns, "eth0"),
                       "eth0", router=router)
        router.hosts.append(host)
        self.machines.append(host)
        return host

    def packetLoss(self, machine: Machine, probability: float,
                   direction: str = "in") -> None:
        """
        Drop packets on C{machine}'s uplink at random.

        @param probability: the share of packets dropped, in (0, 1].
        @param direction: packets arriving at the machine (C{"in"}),
            leaving it (C{"out"}) or C{"both"}.
        """
        for rule in lossRules(machine.interface, probability, direction):
            self.namespaces.iptables(machine.ns, *rule)

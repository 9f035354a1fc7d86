"""
MemoryOverlay: real L{Node}s on one virtual clock and one memory network.

Everything random in a run comes from the overlay's seed: node ids, each
node's random source, the hosts' link delays.  Nodes are named ``n0``,
``n1``... and live at 10.0.x.y; every node listens on the same port of its
own host.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import (
    Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union,
)

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from p2poverlay.config import NodeConfig
from p2poverlay.memnet.clock import Livelock, SimulationClock
from p2poverlay.memnet.delays import WAN
from p2poverlay.memnet.network import MemoryNetwork
from p2poverlay.memnet.record import Reach, Recorder, components, mutualLinks
from p2poverlay.message import NEIGHBOUR
from p2poverlay.node import Node
from p2poverlay.records import PeerInfo
from p2poverlay.store import NodeStore

NodeRef = Union[str, Node]
# How far runUntil moves the clock between two looks at its predicate.
STEP = 0.01
# How often a plain Clock may be advanced to one instant before it is
# taken for a livelock.
MAX_ADVANCES_PER_INSTANT = 100_000


class NotReached(AssertionError):
    """A condition did not hold within its virtual timeout."""


def hostAddress(index: int) -> str:
    """The C{index}th host address: 10.0.0.1 ... 10.0.0.250, 10.0.1.1 ..."""
    if not 0 <= index < 250 * 256:
        raise ValueError(f"no address for host {index}")
    return f"10.0.{index // 250}.{index % 250 + 1}"


class MemoryOverlay:
    """
    Builds, runs and breaks an overlay of real nodes in memory.

    @ivar clock: the virtual time of the run (a L{SimulationClock} unless
        one is given).
    @ivar network: the L{MemoryNetwork} every node listens on and dials.
    @ivar records: a L{Recorder} for each node name; it stays with the name
        across restarts.
    @ivar log: every event the recorders saw, in order: C{(time, node,
        "message", kind, body, sender, via)}, C{(time, node, "up", peer,
        role)} and C{(time, node, "down", peer, reason)}.

    @param config: settings of every node (C{name}, C{listen} and C{join}
        are set per node).
    @param delay: the link delay model (L{p2poverlay.memnet.delays}).
    @param jitter: a per-segment delay model added to the link delay.
    @param sendBuffer: see L{MemoryNetwork}.
    @param port: the port every node listens on.
    @param history: whether the recorders keep every event (their
        C{messages}, C{peersUp}, C{peersDown}) and the overlay its C{log};
        without it, only what L{reach} and probes need.  A simulation
        leaves it off, so that its record of the run does not grow with
        the run and weigh on the nodes' memory.
    """

    def __init__(self, seed: object = 0, config: Optional[NodeConfig] = None,
                 delay=WAN, jitter=None, sendBuffer: Optional[int] = 65536,
                 port: int = 9000, clock: Optional[Clock] = None,
                 history: bool = True) -> None:
        self.seed = seed
        self.history = history
        self.clock = clock if clock is not None else SimulationClock()
        self.network = MemoryNetwork(self.clock, seed, delay, jitter,
                                     sendBuffer)
        self.config = config if config is not None else NodeConfig()
        self.port = port
        self.records: Dict[str, Recorder] = {}
        self.log: List[tuple] = []
        self._rng = random.Random(f"{seed}|overlay")
        self._ids = random.Random(f"{seed}|ids")
        self._nodes: Dict[str, Node] = {}
        self._hosts: Dict[str, str] = {}
        self._names: Dict[str, str] = {}
        self._incarnations: Dict[str, int] = {}
        self._origins: Dict[str, str] = {}
        self._retired: List[Node] = []

    # -- building --------------------------------------------------------

    def addNode(self, join: Iterable[Union[NodeRef, Tuple[str, int]]] = (),
                name: Optional[str] = None, start: bool = True,
                store: Optional[NodeStore] = None, **settings) -> Node:
        """
        Make a node on a new host and (unless C{start} is false) start it.

        @param join: nodes (or addresses) it joins through at start.
        @param store: an open L{NodeStore}: the node takes its id from it,
            as a node with a data directory does, and saves its peers
            there.  A store with no identity yet is given the overlay's id
            for the node first, so that the run stays the seed's.
        @param settings: L{NodeConfig} fields that differ for this node.
        """
        if isinstance(join, (str, Node)):
            join = [join]
        name = name if name is not None else f"n{len(self._nodes)}"
        if name in self._nodes:
            raise ValueError(f"there is a node {name!r} already")
        self._hosts[name] = hostAddress(len(self._nodes))
        nodeId = f"{self._ids.getrandbits(128):032x}"
        self._names[nodeId] = name
        self.records[name] = Recorder(name, self.clock, self.nameOf, self.log,
                                      self.history)
        config = replace(self.config, name=name, listen=f"tcp:{self.port}",
                         join=tuple(self._address(j) for j in join),
                         **settings)
        return self._incarnate(name, nodeId, config, start, store)

    def addNodes(self, count: int, via: Optional[NodeRef] = None,
                 every: float = 0.0, **settings) -> List[Node]:
        """
        Start C{count} nodes, each joining through C{via} or, by default,
        through a node picked at random among those running before it (the
        first node of an empty overlay joins nobody).

        @param every: virtual seconds between two starts; the overlay runs
            meanwhile.  With 0 they all start at the same instant.
        """
        added = []
        for index in range(count):
            if every and index:
                self.run(every)
            if via is not None:
                join = [via]
            else:
                running = self.running
                join = [self._rng.choice(running)] if running else []
            added.append(self.addNode(join, **settings))
        return added

    def _incarnate(self, name: str, nodeId: str, config: NodeConfig,
                   start: bool, store: Optional[NodeStore] = None) -> Node:
        """Make (and unless C{start} is false, start) a node of that name."""
        incarnation = self._incarnations.get(name, -1) + 1
        self._incarnations[name] = incarnation
        rng = random.Random(f"{self.seed}|node|{name}|{incarnation}")
        if store is not None:
            # Nodes in memory have no keys: their data directory keeps
            # the id they were given.
            saved = store.loadIdentity()
            if saved is None:
                store.saveIdentity(nodeId)
            else:
                nodeId = saved
        node = Node(config, reactor=self.clock, nodeId=nodeId, store=store,
                    network=self.network.host(self._hosts[name]), rng=rng)
        self._names[node.nodeId] = name
        node.addObserver(self.records[name])
        if name in self._nodes:
            self._retired.append(self._nodes[name])
        self._nodes[name] = node
        if start:
            node.startService()
        return node

    # -- looking up --------------------------------------------------------

    def node(self, name: str) -> Node:
        """The current node of that name."""
        return self._nodes[name]

    @property
    def names(self) -> List[str]:
        """Every node name, in the order the nodes were added."""
        return list(self._nodes)

    @property
    def running(self) -> List[str]:
        """The names of the nodes running now."""
        return [name for name, node in self._nodes.items() if node.running]

    @property
    def everyNode(self) -> List[Node]:
        """Every node made so far, those replaced by a restart too."""
        return self._retired + list(self._nodes.values())

    def origin(self, messageId: str) -> Optional[str]:
        """The name of the node that broadcast C{messageId}, if known."""
        return self._origins.get(messageId)

    def nameOf(self, nodeId: str) -> str:
        """The name of the node with C{nodeId} (its short id if none)."""
        return self._names.get(nodeId, nodeId[:8])

    def host(self, name: str) -> str:
        """The host address of a node."""
        return self._hosts[name]

    def _address(self, ref: Union[NodeRef, Tuple[str, int]]
                 ) -> Tuple[str, int]:
        if isinstance(ref, tuple):
            return ref
        name = ref.config.name if isinstance(ref, Node) else ref
        return (self._hosts[name], self.port)

    def _name(self, ref: NodeRef) -> str:
        return ref.config.name if isinstance(ref, Node) else ref

    # -- acting ------------------------------------------------------------

    def broadcast(self, origin: NodeRef, body: str) -> str:
        """Broadcast C{body} from C{origin}; return the message id."""
        name = self._name(origin)
        messageId, _ = self._nodes[name].broadcast(body)
        self._origins[messageId] = name
        return messageId

    def send(self, sender: NodeRef, recipient: NodeRef,
             body: str) -> "Deferred[PeerInfo]":
        """Send a direct message to C{recipient} by its node id."""
        return self._nodes[self._name(sender)].send(
            self._nodes[self._name(recipient)].nodeId, body)

    # -- faults ----------------------------------------------------------

    def crash(self, *nodes: NodeRef, silent: bool = False) -> None:
        """
        Kill C{nodes} at once (L{Node.abort}): their peers see the
        connections reset.

        @param silent: take their hosts down first, as a power cut: nothing
            reaches the peers, whose failure detection has to notice.
        """
        for ref in nodes:
            name = self._name(ref)
            if silent:
                self.network.takeDown(self._hosts[name])
            node = self._nodes[name]
            if node.running:
                node.abort()

    def crashFraction(self, fraction: float,
                      silent: bool = False) -> List[str]:
        """Crash that fraction of the running nodes, picked at random."""
        running = self.running
        victims = self._rng.sample(running, round(fraction * len(running)))
        self.crash(*victims, silent=silent)
        return sorted(victims, key=self.names.index)

    def restart(self, node: NodeRef, store: Optional[NodeStore] = None,
                **settings) -> Node:
        """
        Start a new node in place of a stopped one: same name, id, host and
        port, its host up again, but nothing remembered.

        @param store: an open L{NodeStore}: the new node takes its id and
            its saved peers from it (see L{addNode}).
        @param settings: L{NodeConfig} fields that differ from the old
            node's.
        """
        name = self._name(node)
        old = self._nodes[name]
        if old.running:
            raise ValueError(f"{name} is still running")
        self.network.bringUp(self._hosts[name])
        return self._incarnate(name, old.nodeId,
                               replace(old.config, **settings), True, store)

    def stop(self, node: NodeRef) -> "Deferred[None]":
        """Stop a node gracefully: it says BYE to its peers."""
        return self._nodes[self._name(node)].stopService()

    def partition(self, *groups: Iterable[NodeRef]) -> None:
        """
        Split the network between groups of nodes: see
        L{MemoryNetwork.partition}.
        """
        self.network.partition(*[[self._hosts[self._name(n)] for n in group]
                                 for group in groups])

    def heal(self) -> None:
        """End the partition."""
        self.network.heal()

    # -- time ------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.seconds()

    def run(self, seconds: float) -> None:
        """Let C{seconds} of virtual time pass."""
        advanceTo(self.clock, self.clock.seconds() + seconds)

    def runUntil(self, predicate: Callable[[], bool], timeout: float = 60.0,
                 what: str = "the condition", step: float = STEP) -> float:
        """
        Move time on in steps of C{step} seconds until C{predicate()} holds.

        @return: the virtual seconds it took.
        @raise NotReached: if it still does not hold after C{timeout}
            seconds.
        """
        start = self.clock.seconds()
        deadline = start + timeout
        while not predicate():
            now = self.clock.seconds()
            if now >= deadline:
                raise NotReached(f"{what}: not reached within {timeout:g} s "
                                 f"of virtual time (t={now:.3f})")
            advanceTo(self.clock, min(now + step, deadline))
        return self.clock.seconds() - start

    # -- checks ----------------------------------------------------------

    def neighbours(self, node: NodeRef) -> Set[str]:
        """The names of a node's neighbours (its direct links left out)."""
        return {self.nameOf(peer.node_id)
                for peer in self._nodes[self._name(node)].peers.snapshot()
                if peer.role == NEIGHBOUR}

    def graph(self) -> Dict[str, Set[str]]:
        """Each running node's neighbours, as both ends of a link see it."""
        return mutualLinks({name: self.neighbours(name)
                            for name in self.running})

    def components(self) -> List[Set[str]]:
        """The connected parts of the neighbour graph, largest first."""
        return components(self.graph())

    def isConnected(self) -> bool:
        """Is every running node linked to every other through neighbours?"""
        return len(self.components()) <= 1

    def degrees(self) -> Dict[str, int]:
        """How many neighbours each running node has."""
        return {name: len(peers) for name, peers in self.graph().items()}

    def reach(self, messageId: str,
              among: Optional[Sequence[NodeRef]] = None) -> Reach:
        """
        Who delivered broadcast C{messageId}: by default every running node
        but its origin.
        """
        names = [self._name(n) for n in among] if among is not None \
            else self.running
        origin = self._origins.get(messageId)
        return Reach(messageId, {name: self.records[name].count(messageId)
                                 for name in names if name != origin})

    def everyoneGot(self, messageId: str) -> Callable[[], bool]:
        """A predicate for L{runUntil}: every running node has C{messageId}."""
        return lambda: not self.reach(messageId).missing


def advanceTo(clock: Clock, when: float) -> None:
    """
    Run C{clock}'s calls due by C{when}, each at its own time, and set the
    time to C{when}; a L{SimulationClock} does it itself.
    """
    if isinstance(clock, SimulationClock):
        clock.advanceTo(when)
        return
    sameInstant, last = 0, None
    while True:
        due = min((call.getTime() for call in clock.getDelayedCalls()),
                  default=None)
        if due is None or due > when:
            break
        sameInstant = sameInstant + 1 if due == last else 0
        if sameInstant > MAX_ADVANCES_PER_INSTANT:
            raise Livelock(f"calls keep falling due at t={due:.6f}")
        last = due
        clock.advance(_toReach(clock.seconds(), due))
    clock.advance(_toReach(clock.seconds(), when))


def _toReach(now: float, when: float) -> float:
    """The smallest step from C{now} that gets a float clock to C{when}."""
    if when <= now:
        return 0.0
    step = when - now
    while now + step < when:
        step = math.nextafter(step, math.inf)
    return step

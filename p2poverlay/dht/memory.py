"""
Many DHTs in one process: L{DHTNetwork} runs a real L{Kademlia} service
per node on one virtual clock, and carries its requests and answers with
a virtual one-way delay instead of over links.

Everything a node decides is the real code: its routing table, joining,
the eviction ping, refresh, lookups, serving with its per-peer limit.
Only the transport is simulated, which lets a lookup be measured among
10,000 nodes in minutes (the full in-memory overlay,
L{p2poverlay.memnet}, also forms links, exchanges addresses and pings,
and costs far more per node).  A crashed node answers nothing: its
requests time out after C{dhtRequestTimeout}, as over a dead link.
"""

from __future__ import annotations

import random
from typing import Dict, List, Optional

from twisted.internet.defer import Deferred

from p2poverlay.config import NodeConfig
from p2poverlay.dht.lookup import FIND_TARGET, EndRule, LookupResult
from p2poverlay.dht.routing import Contact
from p2poverlay.dht.rpc import DHTRequests, NoAnswer
from p2poverlay.dht.service import Kademlia
from p2poverlay.dispatch import Dispatcher
from p2poverlay.memnet.clock import SimulationClock
from p2poverlay.memnet.delays import UniformDelay
from p2poverlay.message import DIRECT
from p2poverlay.records import OUTBOUND, PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.signing import Verifier

# Simulated nodes listen on 10.x.y.z:4000, one address each.
PORT = 4000
WAN = UniformDelay(0.005, 0.150)


class _End:
    """One end of a simulated request: who is at the other end, as a link
    tells it, and where what is sent to it goes."""

    __slots__ = ("info", "lastUsed", "closing", "_deliver")

    def __init__(self, info: PeerInfo, deliver) -> None:
        self.info = info
        self.lastUsed = 0.0
        self.closing = False
        self._deliver = deliver

    def sendMessage(self, message) -> None:
        self._deliver(message)


class _CarriedRequests(DHTRequests):
    """L{DHTRequests} whose requests the L{DHTNetwork} carries."""

    def __init__(self, network: "DHTNetwork", node: "SimulatedNode") -> None:
        config = node.config
        super().__init__(network.clock, node.registry, network.noLinks,
                         config.dhtRequestTimeout, config.dhtRequestRate,
                         config.dhtRequestBurst)
        self.network = network
        self.node = node

    def request(self, contact: Contact, make) -> Deferred:
        self.sent += 1
        return self.network.carry(self.node, contact, make(self.node.rid()))

    def cancelAll(self) -> None:
        self.running = False


class SimulatedNode:
    """One node of a L{DHTNetwork}: its L{Kademlia} and what it looks like."""

    def __init__(self, network: "DHTNetwork", nodeId: str, host: str,
                 config: NodeConfig) -> None:
        self.nodeId = nodeId
        self.host = host
        self.config = config
        self.registry = PeerRegistry()
        self.running = True
        self._rids = 0
        self.info = PeerInfo(nodeId, host, PORT, "", OUTBOUND,
                             network.clock.seconds(), role=DIRECT)
        self.dht = Kademlia(nodeId, config, network.clock, network.random,
                            self.registry, None, Dispatcher(),
                            network.verifier, _CarriedRequests(network, self))

    def rid(self) -> str:
        self._rids += 1
        return f"{self._rids:x}"


class DHTNetwork:
    """
    Nodes that know each other only through the DHT, on a virtual clock.

    @param delay: the one-way delay of each message (something with a
        C{draw(rng)}, as L{p2poverlay.memnet.delays}).
    """

    def __init__(self, config: Optional[NodeConfig] = None, seed: int = 0,
                 delay=WAN) -> None:
        self.config = config or NodeConfig(dht=True)
        self.clock = SimulationClock()
        self.random = random.Random(seed)
        self.delay = delay
        self.verifier = Verifier(acceptUnsigned=True)
        self.nodes: List[SimulatedNode] = []
        self.byId: Dict[str, SimulatedNode] = {}

    # -- nodes ------------------------------------------------------------

    def addNode(self, bootstrap: Optional[SimulatedNode] = None
                ) -> SimulatedNode:
        """A new node, joining through C{bootstrap} (or a random live node)."""
        index = len(self.nodes) + 1
        host = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        node = SimulatedNode(self, f"{self.random.getrandbits(128):032x}",
                             host, self.config)
        alive = self.alive()
        if bootstrap is None and alive:
            bootstrap = self.random.choice(alive)
        self.nodes.append(node)
        self.byId[node.nodeId] = node
        node.dht.start()
        if bootstrap is not None:
            node.dht.peerReached(bootstrap.info, None)
        return node

    def addNodes(self, count: int, every: float = 0.05) -> List[SimulatedNode]:
        """C{count} nodes, one every C{every} virtual seconds, then every
        join run to its end."""
        added = []
        for _ in range(count):
            added.append(self.addNode())
            self.clock.advance(every)
        # A node has joined once its own lookup and, later, its bucket
        # lookups have run.  (All at once may never be: refreshes go on.)
        joining = set(added)

        def joined() -> bool:
            joining.difference_update([n for n in joining if n.dht.settled])
            return not joining

        self.runUntil(joined, timeout=3600)
        return added

    def alive(self) -> List[SimulatedNode]:
        return [n for n in self.nodes if n.running]

    def crash(self, node: SimulatedNode) -> None:
        """C{node} stops at once, answering nothing from now on."""
        node.running = False
        node.dht.stop()

    # -- time -------------------------------------------------------------

    def run(self, seconds: float, step: float = 1.0) -> None:
        """Let C{seconds} of virtual time pass."""
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.clock.advance(min(step, end - self.clock.seconds()))

    def runUntil(self, condition, timeout: float, step: float = 0.05) -> None:
        """Advance the clock until C{condition()}, at most C{timeout} s.

        @raise TimeoutError: if it never held.
        """
        end = self.clock.seconds() + timeout
        while not condition():
            if self.clock.seconds() >= end:
                raise TimeoutError(f"not done after {timeout:g} virtual s")
            self.clock.advance(step)

    def lookup(self, source: SimulatedNode, target: SimulatedNode,
               endRule: EndRule = FIND_TARGET) -> "Deferred[LookupResult]":
        """C{source}'s lookup of C{target}'s id."""
        return source.dht.lookup(target.dht.table.ownId, target.nodeId,
                                 endRule=endRule)

    # -- carrying ---------------------------------------------------------

    @staticmethod
    def noLinks(host: str, port: int, role: str) -> "Deferred[PeerInfo]":
        """Nodes of this network make no links: L{carry} takes requests."""
        raise NotImplementedError("a DHTNetwork carries requests itself")

    def carry(self, asker: SimulatedNode, contact: Contact,
              request) -> Deferred:
        """
        Deliver C{request} to C{contact}'s node after a delay; fire with
        its answer, a delay after it sent one, or fail with L{NoAnswer}
        after the request timeout (the asker's, as it follows answers).
        """
        done: Deferred = Deferred()
        requests = asker.dht.requests
        timeout, sent = requests.wait.seconds, self.clock.seconds()

        def silent() -> None:
            requests.unanswered += 1
            done.errback(NoAnswer(f"{contact.nodeId[:8]} did not answer "
                                  f"within {timeout:g} s"))

        timer = self.clock.callLater(timeout, silent)
        node = self.byId.get(contact.nodeId)
        if node is None or not node.running:
            return done

        def answered(answer) -> None:
            if timer.active() and asker.running:
                timer.cancel()
                requests.answerCame(sent)
                done.callback((answer, _End(node.info, None)))

        def reply(answer) -> None:
            self.clock.callLater(self.delay.draw(self.random), answered,
                                 answer)

        def arrive() -> None:
            if not node.running:
                return
            if not node.dht.joined:
                # The first node: a first link reached it, as a real one
                # learns when the second node dials it.
                node.dht.peerReached(asker.info, None)
            node.dht.findNodeReceived(_End(asker.info, reply), request)

        self.clock.callLater(self.delay.draw(self.random), arrive)
        return done

"""
The memory overlay, L{p2poverlay.memnet}: its clock, its transports and
faults, and real Nodes over it.  Every test moves a virtual clock on;
nothing opens a socket and nothing sleeps.
"""

from __future__ import annotations

import random
from typing import List, Optional

import pytest
from twisted.internet.error import (
    CannotListenError, ConnectionAborted, ConnectionDone, ConnectionLost,
    ConnectionRefusedError, TimeoutError,
)
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from p2poverlay.config import NodeConfig
from p2poverlay.memnet import (
    FixedDelay, Livelock, LogNormalDelay, MemoryNetwork, MemoryOverlay,
    NotReached, SimulationClock, UniformDelay, components, hostAddress,
)
from p2poverlay.network import INetwork
from p2poverlay.records import LEFT, RECONNECTING
from p2poverlay.store import NodeStore

# Small bounds, and peer exchange often enough that every node finds room
# within seconds.
SMALL = NodeConfig(minPeers=3, maxPeers=6, exchangeInterval=1.0, dht=False)


# -- the clock ---------------------------------------------------------------


def assertReachesEveryone(overlay, origin: str, body: str,
                          settle: float = 5):
    """
    Broadcast C{body} from C{origin}: every running node gets it, and
    C{settle} virtual seconds on, none has it twice.

    @return: the message id and its L{Reach}.
    """
    messageId = overlay.broadcast(origin, body)
    overlay.runUntil(overlay.everyoneGot(messageId), 10, "the broadcast")
    overlay.run(settle)
    reach = overlay.reach(messageId)
    assert reach.complete, reach
    return messageId, reach


def test_clockRunsEachCallAtItsOwnTime():
    clock = SimulationClock()
    seen = []

    def first():
        seen.append(("first", clock.seconds()))
        clock.callLater(0.5, lambda: seen.append(("then", clock.seconds())))

    clock.callLater(1.0, first)
    clock.callLater(1.0, lambda: seen.append(("same time", clock.seconds())))
    clock.advance(10)
    assert seen == [("first", 1.0), ("same time", 1.0), ("then", 1.5)]
    assert clock.seconds() == 10


def test_clockHonoursCancelResetAndDelay():
    clock = SimulationClock()
    seen = []

    def note(what):
        return lambda: seen.append((what, clock.seconds()))

    cancelled = clock.callLater(1, note("cancelled"))
    earlier = clock.callLater(5, note("earlier"))
    later = clock.callLater(2, note("later"))
    cancelled.cancel()
    earlier.reset(3)
    later.delay(2)
    assert [c.getTime() for c in clock.getDelayedCalls()] == [3, 4]
    clock.advance(5)
    assert seen == [("earlier", 3), ("later", 4)]
    assert clock.getDelayedCalls() == []


def test_clockStopsALivelock():
    clock = SimulationClock(maxCallsPerInstant=100)

    def again():
        clock.callLater(0, again)

    clock.callLater(1, again)
    with pytest.raises(Livelock):
        clock.advance(2)


# -- delays ------------------------------------------------------------------


def test_delayModelsStayInTheirBounds():
    rng = random.Random(1)
    uniform = [UniformDelay(0.005, 0.150).draw(rng) for _ in range(1000)]
    assert 0.005 <= min(uniform) < 0.02 and 0.135 < max(uniform) <= 0.150
    tail = [LogNormalDelay(0.005, 0.04, 0.5).draw(rng) for _ in range(1000)]
    assert all(0.005 <= d <= 0.5 for d in tail)
    assert FixedDelay(0.02).draw(rng) == 0.02


def test_linkDelayDependsOnSeedAndPairOnly():
    one = MemoryNetwork(Clock(), seed=5)
    other = MemoryNetwork(Clock(), seed=5)
    pairs = [("10.0.0.1", "10.0.0.2"), ("10.0.0.3", "10.0.0.1"),
             ("10.0.0.2", "10.0.0.3")]
    first = [one.delayBetween(a, b) for a, b in pairs]
    second = [other.delayBetween(b, a) for a, b in reversed(pairs)][::-1]
    assert first == second
    assert len(set(first)) == 3
    assert MemoryNetwork(Clock(), seed=6).delayBetween(*pairs[0]) != first[0]


# -- transports ------------------------------------------------------------


class Recording(Protocol):
    """Records what arrives, when, and how the connection ended."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.chunks: List[tuple] = []
        self.made: Optional[float] = None
        self.lost: Optional[Failure] = None

    def connectionMade(self) -> None:
        self.made = self.clock.seconds()

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append((self.clock.seconds(), data))

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


FIFTY_MS = FixedDelay(0.05)


class Pair:
    """Two hosts of a memory network; B listens on port 9000."""

    def __init__(self, delay=FIFTY_MS, **kw) -> None:
        self.clock = SimulationClock()
        self.network = MemoryNetwork(self.clock, seed=1, delay=delay, **kw)
        self.a = self.network.host("10.0.0.1")
        self.b = self.network.host("10.0.0.2")
        self.accepted: List[Recording] = []
        factory = Factory.forProtocol(lambda: Recording(self.clock))
        factory.buildProtocol = self._accept
        endpoint = self.b.serverEndpoint("tcp:9000")
        self.port = self._result(endpoint.listen(factory))

    def _accept(self, addr):
        protocol = Recording(self.clock)
        protocol.addr = addr
        self.accepted.append(protocol)
        return protocol

    def dial(self, host="10.0.0.2", port=9000, timeout=10.0):
        results = []
        endpoint = self.a.clientEndpoint(host, port, timeout)
        endpoint.connect(Factory.forProtocol(
            lambda: Recording(self.clock))).addBoth(results.append)
        return results

    def connect(self):
        results = self.dial()
        self.clock.advance(1)
        (client,) = results
        assert isinstance(client, Recording), client
        return client, self.accepted[-1]

    @staticmethod
    def _result(deferred):
        results = []
        deferred.addBoth(results.append)
        return results[0]


def test_hostsAreNetworks():
    pair = Pair()
    assert verifyObject(INetwork, pair.a)
    assert pair.network.host("10.0.0.1") is pair.a


def test_connectionTakesOneDelayEachWay():
    pair = Pair()
    results = pair.dial()
    pair.clock.advance(0.099)
    assert results == [] and pair.accepted[0].made == pytest.approx(0.05)
    pair.clock.advance(0.002)
    client, server = results[0], pair.accepted[0]
    assert client.made == pytest.approx(0.1)
    assert server.addr.host == "10.0.0.1"
    assert server.transport.getPeer() == client.transport.getHost()
    assert client.transport.getPeer().port == 9000
    assert pair.port.getHost().port == 9000


@pytest.mark.parametrize("seed", range(5))
def test_writesArriveInOrderAfterTheDelayWhateverTheJitter(seed):
    pair = Pair(delay=FixedDelay(0.05), jitter=UniformDelay(0, 0.3))
    pair.network.seed = seed
    client, server = pair.connect()
    rng = random.Random(seed)
    sent = []
    for index in range(200):
        chunk = b"%d," % index
        sent.append((pair.clock.seconds(), chunk))
        client.transport.write(chunk)
        pair.clock.advance(rng.choice([0, 0, 0.001, 0.01, 0.1]))
    pair.clock.advance(5)
    assert server.data == b"".join(chunk for _, chunk in sent)
    # No byte comes before its write plus the link delay.
    offset = 0
    arrivals = []
    for when, chunk in server.chunks:
        arrivals += [when] * len(chunk)
    for when, chunk in sent:
        assert arrivals[offset] >= when + 0.05
        offset += len(chunk)
    assert len({when for when, _ in server.chunks}) > 20


def test_loseConnectionDeliversWhatWasWrittenThenClosesBoth():
    pair = Pair()
    client, server = pair.connect()
    client.transport.write(b"last words")
    client.transport.loseConnection()
    pair.clock.advance(0.049)
    assert server.data == b"" and server.lost is None
    pair.clock.advance(0.002)
    assert server.data == b"last words"
    assert server.lost.check(ConnectionDone)
    assert client.lost.check(ConnectionDone)
    assert pair.network.connections() == []


def test_abortDropsWhatWasNotDeliveredAndResetsBoth():
    pair = Pair()
    client, server = pair.connect()
    server.transport.write(b"never read")
    client.transport.write(b"never sent")
    client.transport.abortConnection()
    pair.clock.advance(1)
    assert server.data == b"" and client.data == b""
    assert client.lost.check(ConnectionAborted)
    assert server.lost.check(ConnectionLost)
    assert not server.lost.check(ConnectionDone)
    assert pair.network.connections() == []


def test_noListenerRefusesAfterARoundTrip():
    pair = Pair()
    results = pair.dial(port=9001)
    pair.clock.advance(0.099)
    assert results == []
    pair.clock.advance(0.002)
    assert results[0].check(ConnectionRefusedError)


def test_unknownOrDownHostTimesOut():
    pair = Pair()
    nobody = pair.dial(host="10.0.0.99", timeout=3)
    pair.network.takeDown("10.0.0.2")
    down = pair.dial(timeout=3)
    pair.clock.advance(2.99)
    assert nobody == [] and down == []
    pair.clock.advance(0.02)
    assert nobody[0].check(TimeoutError) and down[0].check(TimeoutError)


def test_pausedReaderReceivesNothingUntilResumed():
    pair = Pair()
    client, server = pair.connect()
    server.transport.pauseProducing()
    client.transport.write(b"one,")
    client.transport.write(b"two")
    pair.clock.advance(1)
    assert server.data == b""
    server.transport.resumeProducing()
    pair.clock.advance(0)
    assert server.data == b"one,two"


@implementer(IPushProducer)
class Producer:
    def __init__(self) -> None:
        self.events: List[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


def test_unreadDataPastTheSendBufferPausesTheProducer():
    pair = Pair(sendBuffer=1000)
    client, server = pair.connect()
    producer = Producer()
    client.transport.registerProducer(producer, True)
    server.transport.pauseProducing()
    client.transport.write(b"x" * 900)
    assert producer.events == []
    client.transport.write(b"x" * 200)
    assert producer.events == ["pause"]
    pair.clock.advance(5)
    assert producer.events == ["pause"]
    server.transport.resumeProducing()
    pair.clock.advance(0)
    assert len(server.data) == 1100
    assert producer.events == ["pause", "resume"]
    client.transport.loseConnection()
    pair.clock.advance(1)
    assert producer.events == ["pause", "resume", "stop"]


def test_partitionSilencesALinkUntilHealed():
    pair = Pair()
    client, server = pair.connect()
    pair.network.partition(["10.0.0.1"], ["10.0.0.2"])
    client.transport.write(b"held")
    blocked = pair.dial(timeout=5)
    pair.clock.advance(10)
    assert server.data == b"" and server.lost is None
    assert blocked[0].check(TimeoutError)
    pair.network.heal()
    pair.clock.advance(0.049)
    assert server.data == b""
    pair.clock.advance(0.002)
    assert server.data == b"held"


def test_aDialGetsThroughIfThePartitionHealsInTime():
    pair = Pair()
    pair.network.partition(["10.0.0.1"], ["10.0.0.2"])
    results = pair.dial(timeout=10)
    pair.clock.advance(2.5)
    pair.network.heal()
    pair.clock.advance(2)
    assert isinstance(results[0], Recording)


def test_aHostBackUpResetsConnectionsItForgot():
    pair = Pair()
    client, server = pair.connect()
    # A power cut: the host goes quiet, and its side of the connection is
    # gone without a word.
    pair.network.takeDown("10.0.0.2")
    server.transport.abortConnection()
    client.transport.write(b"lost")
    pair.clock.advance(10)
    assert client.lost is None and server.data == b""
    pair.network.bringUp("10.0.0.2")
    client.transport.write(b"answered with a reset")
    pair.clock.advance(1)
    assert client.lost.check(ConnectionLost)
    assert not client.lost.check(ConnectionDone)


def test_listenDescriptions():
    clock = Clock()
    host = MemoryNetwork(clock).host("10.0.0.1")
    factory = Factory.forProtocol(Protocol)

    def listen(description):
        results = []
        endpoint = host.serverEndpoint(description)
        endpoint.listen(factory).addBoth(results.append)
        return results[0]

    first, second = listen("tcp:0"), listen("tcp:port=0")
    assert first.getHost().port != second.getHost().port
    port = listen("tcp:9000:interface=10.0.0.1")
    assert port.getHost().host == "10.0.0.1"
    assert listen("tcp:9000").check(CannotListenError)
    assert listen("tcp:9001:interface=10.9.9.9").check(CannotListenError)
    port.stopListening()
    assert listen("tcp:9000").getHost().port == 9000
    for bad in ("unix:/tmp/x", "tcp", "tcp:99999", "tcp:9000:colour=red"):
        with pytest.raises(ValueError):
            host.serverEndpoint(bad)


# -- nodes in memory -------------------------------------------------------


def settled(overlay: MemoryOverlay, config: NodeConfig = SMALL):
    """Connected, and every node within its degree bounds."""
    def check():
        degrees = overlay.degrees().values()
        return overlay.isConnected() and all(
            config.minPeers <= d <= config.maxPeers for d in degrees)
    return check


def test_hostAddresses():
    assert hostAddress(0) == "10.0.0.1"
    assert hostAddress(249) == "10.0.0.250"
    assert hostAddress(250) == "10.0.1.1"
    assert len({hostAddress(i) for i in range(10_000)}) == 10_000


def test_aNodeJoinsThroughAnother():
    overlay = MemoryOverlay(seed=1, config=SMALL)
    first = overlay.addNode()
    second = overlay.addNode(start=False)
    second.startService()
    joined = []
    second.join(overlay.host("n0"), 9000).addBoth(joined.append)
    overlay.runUntil(lambda: joined, 5, "the join")
    assert joined[0].node_id == first.nodeId
    overlay.runUntil(lambda: overlay.neighbours("n0") == {"n1"}, 5,
                     "n0 sees n1")
    assert overlay.neighbours("n1") == {"n0"}
    assert [name for _, name in overlay.records["n0"].peersUp] == ["n1"]
    assert [name for _, name in overlay.records["n1"].peersUp] == ["n0"]
    assert second.peers.snapshot()[0].host == overlay.host("n0")
    assert first.peers.snapshot()[0].host == overlay.host("n1")


def test_threeNodesDiscoverEachOtherByPeerExchange():
    overlay = MemoryOverlay(seed=2, config=SMALL)
    overlay.addNode()
    overlay.addNode(join="n0")
    overlay.addNode(join="n0")
    overlay.runUntil(lambda: overlay.neighbours("n1") == {"n0", "n2"}, 10,
                     "n1 and n2 meet")
    assert overlay.graph() == {"n0": {"n1", "n2"}, "n1": {"n0", "n2"},
                               "n2": {"n0", "n1"}}
    assert overlay.node("n2").config.join == ((overlay.host("n0"), 9000),)


def test_twentyNodesFormABoundedConnectedOverlayAndBroadcastOnce():
    overlay = MemoryOverlay(seed=3, config=SMALL)
    overlay.addNodes(20, every=0.1)
    overlay.runUntil(settled(overlay), 30, "a settled overlay")
    for origin in ("n0", "n13"):
        messageId, reach = assertReachesEveryone(overlay, origin,
                                                 f"from {origin}")
        assert len(reach.counts) == 19
        assert overlay.records[origin].count(messageId) == 0


def test_aDirectMessageByIdIsDeliveredAndConfirmed():
    overlay = MemoryOverlay(seed=4, config=SMALL)
    overlay.addNodes(10, every=0.1)
    overlay.runUntil(settled(overlay), 30, "a settled overlay")
    book = overlay.node("n0").addressBook
    overlay.runUntil(lambda: len(book) == 9, 10, "n0 learns of everyone")
    far = next(name for name in overlay.names[1:]
               if name not in overlay.neighbours("n0"))
    confirmed = []
    overlay.send("n0", far, "psst").addBoth(confirmed.append)
    overlay.runUntil(lambda: confirmed, 5, "the confirmation")
    assert confirmed[0].node_id == overlay.node(far).nodeId
    (delivery,) = [m for m in overlay.records[far].messages
                   if m.kind == "direct"]
    assert (delivery.body, delivery.sender) == ("psst", "n0")
    assert far not in overlay.neighbours("n0")


def test_aSilentCrashIsDetectedRedialedAndHealedByARestart():
    overlay = MemoryOverlay(seed=5, config=SMALL)
    overlay.addNodes(8, every=0.1)
    overlay.runUntil(settled(overlay), 30, "a settled overlay")
    victim = overlay.node("n2")
    peers = sorted(overlay.neighbours("n2"))
    crashedAt = overlay.now
    overlay.crash("n2", silent=True)
    overlay.runUntil(
        lambda: all("n2" not in overlay.neighbours(p) for p in peers), 30,
        "the peers notice the crash")
    # Nothing told them: their failure detection had to.
    timeout = SMALL.peerTimeout
    for peer in peers:
        (down,) = [d for d in overlay.records[peer].peersDown if d[1] == "n2"]
        assert down[0] - crashedAt > timeout - 2 * SMALL.pingInterval
        assert down[2].startswith("no response")
        entry = overlay.node(peer).addressBook.get(victim.nodeId)
        assert entry.state == RECONNECTING
    overlay.run(20)
    reborn = overlay.restart("n2")
    assert reborn is not victim and reborn.nodeId == victim.nodeId
    overlay.runUntil(
        lambda: all("n2" in overlay.neighbours(p) for p in peers), 60,
        "the peers reconnect")
    overlay.runUntil(settled(overlay), 30, "a settled overlay")


def test_aThirdCrashingAtOnceLeavesTheRestWhole():
    overlay = MemoryOverlay(seed=6, config=SMALL)
    overlay.addNodes(30, every=0.1)
    overlay.runUntil(settled(overlay), 30, "a settled overlay")
    crashed = overlay.crashFraction(0.3)
    assert len(crashed) == 9 and len(overlay.running) == 21
    overlay.runUntil(settled(overlay), 60, "the survivors settle")
    assertReachesEveryone(overlay, overlay.running[0], "still here")


def test_aPartitionSplitsTheOverlayAndHealingMendsIt():
    overlay = MemoryOverlay(seed=7, config=SMALL)
    overlay.addNodes(16, every=0.1)
    overlay.runUntil(settled(overlay), 30, "a settled overlay")
    left, right = set(overlay.names[:8]), set(overlay.names[8:])
    overlay.partition(left, right)

    def split():
        return all(overlay.neighbours(n) <= left for n in left) \
            and all(overlay.neighbours(n) <= right for n in right)

    overlay.runUntil(split, 30, "the split")
    during = overlay.broadcast("n0", "during")
    overlay.run(5)
    assert set(overlay.reach(during).missing) == right
    overlay.heal()
    overlay.runUntil(overlay.isConnected, 60, "the overlay mends")
    assertReachesEveryone(overlay, "n0", "after")


def test_aGracefulStopSaysBye():
    overlay = MemoryOverlay(seed=8, config=SMALL)
    overlay.addNodes(6, every=0.1)
    overlay.runUntil(settled(overlay), 30, "a settled overlay")
    leaver = overlay.node("n1")
    peers = overlay.neighbours("n1")
    stopped = []
    overlay.stop("n1").addBoth(stopped.append)
    overlay.run(1)
    assert stopped == [None]
    for peer in peers:
        (down,) = [d for d in overlay.records[peer].peersDown if d[1] == "n1"]
        assert down[2] == "node shutting down"
        assert overlay.node(peer).addressBook.get(leaver.nodeId).state == LEFT
    for name in overlay.running:
        overlay.stop(name)
    overlay.run(5)
    assert overlay.network.connections() == []
    assert overlay.clock.getDelayedCalls() == []


def test_aNodeWithADataDirectoryKeepsItsIdAndRedialsItsSavedPeers(tmp_path):
    overlay = MemoryOverlay(seed=10, config=SMALL)
    overlay.addNode()
    overlay.addNode(join="n0")
    store = NodeStore(str(tmp_path))
    store.open()
    first = overlay.addNode(join="n0", store=store)
    # The store had no identity: it is given the overlay's id for the node.
    assert store.loadIdentity() == first.nodeId
    assert overlay.nameOf(first.nodeId) == "n2"
    overlay.runUntil(lambda: overlay.neighbours("n2") == {"n0", "n1"}, 10,
                     "n2 meets n0 and n1")
    overlay.stop("n2")
    overlay.run(1)
    store.close()

    store = NodeStore(str(tmp_path))
    store.open()
    again = overlay.restart("n2", store=store, join=())
    assert again.nodeId == first.nodeId
    assert {p.node_id for p in again.addressBook.all()} == {
        overlay.node("n0").nodeId, overlay.node("n1").nodeId}
    overlay.runUntil(lambda: overlay.neighbours("n2") == {"n0", "n1"}, 10,
                     "n2 redials its saved peers")
    overlay.stop("n2")
    overlay.run(1)
    store.close()


def test_aSeedWithNoRoomForInboundIsNotBanned():
    """Its BYE before any HELLO is a refusal, not a protocol error."""
    overlay = MemoryOverlay(seed=1, config=SMALL)
    overlay.addNode(maxInbound=2)
    overlay.addNodes(4, via="n0")
    overlay.run(10)
    seed = overlay.host("n0")
    banned = [name for name in overlay.names[1:]
              if overlay.node(name).misbehaviour.isBanned(seed)]
    assert banned == []


def scenario(seed: int):
    """A run with joins, broadcasts, a crash, a stop and a partition."""
    overlay = MemoryOverlay(seed=seed, config=SMALL)
    overlay.addNodes(16, every=0.05)
    overlay.run(10)
    overlay.broadcast("n3", "one")
    overlay.crash("n5")
    overlay.stop("n9")
    overlay.partition(overlay.names[:4], overlay.names[4:])
    overlay.run(8)
    overlay.heal()
    overlay.send("n1", "n12", "direct")
    overlay.broadcast("n1", "two")
    overlay.run(8)
    return overlay


def test_theSameSeedGivesTheSameRun():
    first, second = scenario(11), scenario(11)
    assert len(first.log) > 100
    assert first.log == second.log
    assert first.graph() == second.graph()
    assert first.now == second.now


def test_anotherSeedGivesAnotherOverlay():
    assert scenario(11).graph() != scenario(12).graph()


def test_aHundredNodesOverWideAreaDelays():
    """Links of 5 to 150 ms one way (WAN): the overlay settles all the same."""
    config = NodeConfig(minPeers=4, maxPeers=8, exchangeInterval=1.0,
                        pingInterval=5.0, peerTimeout=15.0)
    overlay = MemoryOverlay(seed=13, config=config)
    overlay.addNodes(100, every=0.05)
    overlay.runUntil(settled(overlay, config), 60, "a settled overlay",
                     step=0.1)
    assertReachesEveryone(overlay, "n0", "to all", settle=2)


def test_aPlainClockWillDo():
    overlay = MemoryOverlay(seed=9, config=SMALL, clock=Clock())
    overlay.addNode()
    overlay.addNodes(2, via="n0")
    overlay.runUntil(lambda: len(overlay.graph()["n1"]) == 2, 10,
                     "a triangle")
    assert overlay.graph()["n1"] == {"n0", "n2"}


def test_runUntilSaysWhatWasNotReached():
    overlay = MemoryOverlay(seed=1)
    overlay.addNode()
    expected = "a second node: not reached within 2 s"
    with pytest.raises(NotReached, match=expected):
        overlay.runUntil(lambda: len(overlay.running) > 1, 2,
                         "a second node")
    assert overlay.now == pytest.approx(2)


def test_componentsOfAGraph():
    graph = {"a": {"b"}, "b": {"a"}, "c": set(), "d": {"e"}, "e": {"d"}}
    assert components(graph) == [{"a", "b"}, {"d", "e"}, {"c"}]

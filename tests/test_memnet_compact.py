"""
What the memory network and overlay keep, kept small: an idle pipe holds
no queue, a connection lets go of its dial, hosts hand out ports round
their ranges, and a simulation's recorders keep only what its figures
need.  None of it may change what arrives, or when.
"""

from __future__ import annotations

from p2poverlay.config import NodeConfig
from p2poverlay.memnet import MemoryOverlay
from p2poverlay.memnet.network import EPHEMERAL_PORTS
from p2poverlay.memnet.pipe import Pipe
from test_memnet import Pair

SMALL = NodeConfig(minPeers=3, maxPeers=6, exchangeInterval=1.0)


def test_an_idle_pipe_holds_no_queue_and_a_busy_one_delivers_in_order():
    pair = Pair()
    client, server = pair.connect()
    pipe = client.transport.outgoing
    assert isinstance(pipe, Pipe) and pipe.queue is None
    for i in range(5):
        client.transport.write(b"%d," % i)
        pair.clock.advance(0.001)
    assert pipe.queue is not None and len(pipe.queue) == 5
    pair.clock.advance(0.05)
    assert server.data == b"0,1,2,3,4,"
    assert pipe.queue is None and pipe.unconsumed == 0
    # And again, after the queue went.
    client.transport.write(b"more")
    pair.clock.advance(0.06)
    assert server.data.endswith(b"more") and pipe.queue is None


def test_a_connection_closing_mid_delivery_drops_the_rest():
    pair = Pair()
    client, server = pair.connect()
    client.transport.write(b"first")
    pair.clock.advance(0.06)
    client.transport.write(b"lost")
    server.transport.abortConnection()
    pair.clock.advance(1)
    assert server.data == b"first"
    assert client.lost is not None and server.lost is not None


def test_a_connected_dial_is_let_go():
    pair = Pair()
    client, _ = pair.connect()
    assert client.transport.onConnected is None
    # A dial given up still resets a late answer (it keeps its dial).
    results = pair.dial(timeout=0.05)
    pair.clock.advance(1)
    assert len(results) == 1 and results[0].check(Exception)


def test_hosts_hand_out_ephemeral_ports_round_their_range():
    pair = Pair()
    ports = [pair.a.ephemeralPort() for _ in range(len(EPHEMERAL_PORTS) + 2)]
    assert ports[:3] == [49152, 49153, 49154]
    assert ports[-2:] == [49152, 49153]
    assert sorted(set(ports)) == list(EPHEMERAL_PORTS)


def test_a_simulation_keeps_no_history_and_the_same_figures():
    runs = []
    for history in (True, False):
        overlay = MemoryOverlay(seed=3, config=SMALL, history=history)
        for _ in range(8):
            overlay.addNode(join=[] if not overlay.names else "n0")
        overlay.runUntil(overlay.isConnected, 60, "connected")
        messageId = overlay.broadcast("n3", "hello")
        overlay.runUntil(overlay.everyoneGot(messageId), 10, "the broadcast")
        overlay.run(3)
        reach = overlay.reach(messageId)
        firsts = {}
        for name in overlay.names:
            first = overlay.records[name].first(messageId)
            firsts[name] = first and (first.time, first.sender, first.via)
        runs.append((dict(reach.counts), firsts, overlay.degrees()))
        records = overlay.records.values()
        if history:
            assert overlay.log and all(r.peersUp for r in records)
        else:
            assert overlay.log == []
            assert not any(r.messages or r.peersUp or r.peersDown
                           for r in records)
    assert runs[0] == runs[1]
    assert len(runs[0][0]) == 7 and set(runs[0][0].values()) == {1}


def test_every_waiter_of_a_closing_connection_hears_of_it():
    overlay = MemoryOverlay(seed=4, config=SMALL)
    overlay.addNode()
    overlay.addNode(join="n0")
    overlay.runUntil(lambda: overlay.neighbours("n0") == {"n1"}, 10, "a link")
    (connection,) = overlay.node("n0").peers.connections()
    assert connection.peer is not None and connection.closeReason is None
    closed = []
    connection.whenClosed().addCallback(closed.append)
    connection.whenClosed().addCallback(closed.append)
    overlay.node("n1").stopService()
    overlay.run(5)
    assert closed == [None, None]
    assert connection.closing and connection.closeReason is not None

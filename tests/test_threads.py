"""The thread-safe way in: BlockingNode, hammered from several threads."""

import threading

import pytest_twisted
from twisted.internet import threads

from p2poverlay.threads import BlockingNode
from helpers import address, waitFor

THREADS = 8
PER_THREAD = 25


@pytest_twisted.inlineCallbacks
def test_many_threads_send_broadcast_and_read_peers(overlay):
    a = yield overlay.start(name="a")
    b = yield overlay.start(join=a, name="b")
    c = yield overlay.start(join=a, name="c")
    yield waitFor(lambda: all(len(n.peers) == 2 for n in (a, b, c)))
    blocking = BlockingNode(a)
    errors = []
    start = threading.Barrier(THREADS)

    def worker(index):
        try:
            start.wait(timeout=10)
            for i in range(PER_THREAD):
                peers = blocking.peers()
                assert {p.name for p in peers} == {"b", "c"}
                target = address(b) if i % 2 else "c"
                peer = blocking.send(target, f"t{index}-{i}")
                assert peer.name == ("b" if i % 2 else "c")
                messageId, neighbours = blocking.broadcast(f"b{index}-{i}")
                assert neighbours == 2
        except Exception as e:  # reported to the reactor thread below
            errors.append(e)

    yield threads.deferToThreadPool(
        a.reactor, a.reactor.getThreadPool(), lambda: [
            t.join(timeout=60) for t in [
                _started(threading.Thread(target=worker, args=(n,)))
                for n in range(THREADS)]])
    assert errors == []
    total = THREADS * PER_THREAD
    direct = {n: overlay.recorder(n).bodies("direct") for n in (b, c)}
    assert len(direct[b]) + len(direct[c]) == total
    assert sorted(direct[b] + direct[c]) == sorted(
        f"t{t}-{i}" for t in range(THREADS) for i in range(PER_THREAD))
    yield waitFor(lambda: all(
        len(overlay.recorder(n).bodies("broadcast")) == total for n in (b, c)),
        what="every broadcast")
    for n in (b, c):
        assert len(set(overlay.recorder(n).bodies("broadcast"))) == total


def _started(thread):
    thread.start()
    return thread

"""
Keys are free: on the in-memory overlay (each node its own host, a
virtual clock), node ids first met less than ten minutes ago hold only a
newcomer's share of a settled node's neighbour slots.
"""

from p2poverlay import admission
from memoverlay import memoryOverlay, start

TEN_MINUTES = admission.NEWCOMER_TIME


def joined(overlay, node, target) -> bool:
    """Has C{node}, dialing C{target}, become its neighbour (and stayed)?"""
    node.join(overlay.host(target.config.name),
              target.listenPort).addErrback(lambda _: None)
    overlay.run(2)
    return node.nodeId in target.peers


def test_newcomers_hold_a_quarter_of_a_settled_nodes_slots():
    overlay = memoryOverlay(seed=4, minPeers=3, maxPeers=12,
                            autoConnect=False)
    t = start(overlay, name="t")
    # A node starting up takes anyone: these three are newcomers too.
    veterans = [start(overlay, join=t, name=f"v{i}") for i in range(3)]
    assert len(t.peers) == 3
    overlay.run(TEN_MINUTES + 1)
    assert len(t.peers) == 3  # still there, and no longer new
    newcomers = [start(overlay, name=f"n{i}") for i in range(5)]
    share = int(12 * admission.NEWCOMER_SHARE)
    assert [joined(overlay, n, t) for n in newcomers] == \
        [True] * share + [False] * (5 - share)
    assert all(v.nodeId in t.peers for v in veterans)
    assert len(t.peers) == 3 + share
    # Once the turned-away ids are no longer new, they are welcome.
    overlay.run(TEN_MINUTES + 1)
    assert joined(overlay, newcomers[share], t)

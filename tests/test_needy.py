"""
Nodes in need (L{p2poverlay.needy}): who is told of, how often, for how
long, and how few one host's made-up keys get in.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock

from p2poverlay.needy import MAX_PER_GROUP, NEED_TIME, NodesInNeed
from p2poverlay.peeraddress import PeerAddress


def address(n: int, host: str = "192.0.2.1") -> PeerAddress:
    return PeerAddress(f"{n:032x}", host, 4000 + n)


def anyone(_: PeerAddress) -> bool:
    return True


def needs(minPeers: int = 4):
    clock = Clock()
    return clock, NodesInNeed(clock, minPeers)


def test_a_node_in_need_is_told_of_twice_as_often_as_it_lacks():
    clock, needy = needs(minPeers=4)
    rng = random.Random(1)
    needy.heard(address(1), 3, "192.0.2.1")  # lacks one neighbour
    assert needy.take(5, anyone, rng) == [address(1)]
    assert needy.take(5, anyone, rng) == [address(1)]
    assert needy.take(5, anyone, rng) == []
    assert address(1).node_id not in needy


def test_nodes_with_their_neighbours_or_unsaid_counts_are_not_kept():
    clock, needy = needs(minPeers=4)
    needy.heard(address(1), 4, "192.0.2.1")
    needy.heard(address(2), -1, "192.0.2.2")
    needy.heard(PeerAddress(f"{3:032x}", "192.0.2.3", 0), 0, "192.0.2.3")
    assert len(needy) == 0
    # A node that says it has found its neighbours is told of no more.
    needy.heard(address(4), 0, "192.0.2.4")
    needy.heard(address(4), 5, "192.0.2.4")
    assert len(needy) == 0


def test_a_node_in_need_is_told_of_for_a_while_only():
    clock, needy = needs()
    needy.heard(address(1), 0, "192.0.2.1")
    clock.advance(NEED_TIME)
    assert needy.take(5, anyone, random.Random(1)) == []
    assert len(needy) == 0


def test_take_gives_eligible_nodes_at_random_at_most_as_many_as_wanted():
    clock, needy = needs()
    for n in range(10):
        needy.heard(address(n, f"192.0.{n}.1"), 0, f"192.0.{n}.1")
    given = needy.take(3, lambda a: a.node_id != address(0).node_id,
                       random.Random(2))
    assert len(given) == 3 and address(0) not in given
    assert len(set(given)) == 3
    needy.forget(address(5).node_id)
    assert address(5).node_id not in needy


def test_one_address_group_holds_a_few_places_unless_it_is_this_host():
    clock, needy = needs()
    # Keys cost nothing: one host making up ids gets a few places.
    for n in range(3 * MAX_PER_GROUP):
        needy.heard(address(n, "198.51.100.7"), 0, "198.51.100.7")
    assert len(needy) == MAX_PER_GROUP
    needy.heard(address(100, "203.0.113.9"), 0, "203.0.113.9")
    assert address(100).node_id in needy
    # Other nodes on this node's own host are its operator's.
    for n in range(200, 200 + 3 * MAX_PER_GROUP):
        needy.heard(address(n, "127.0.0.1"), 0, "127.0.0.1", local=True)
    assert len(needy) == MAX_PER_GROUP + 1 + 3 * MAX_PER_GROUP

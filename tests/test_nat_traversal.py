"""
Across NATs, in the network lab: nodes nobody can dial are reached
through relays, and the relayed connection turns direct where it can:
reversed where one side can be dialed, punched where both sit behind
NATs that map endpoint-independently; a symmetric NAT's stays relayed.
Every case in a sparse overlay, where the two nodes are not neighbours.
"""

from __future__ import annotations

import re
import time

import pytest

from p2poverlay.netlab import MASQUERADE, SYMMETRIC, Lab, whyUnavailable
from test_nat_reachability import DECIDED, reachLine

REASON = whyUnavailable()
pytestmark = pytest.mark.skipif(
    REASON is not None, reason=f"NETWORK LAB NOT RUN: {REASON}")

SPARSE = ("--min-peers", "1", "--max-peers", "2")


@pytest.fixture
def lab(tmp_path):
    with Lab(tmp_path) as made:
        try:
            yield made
        finally:
            print(made.transcripts())


def behind(lab, kind: str, name: str, seed, *options: str):
    router = lab.natRouter(f"r{name.lower()}", kind)
    return lab.node(lab.hostBehind(router, name.lower()), name, "--join",
                    seed.address, *SPARSE, *options)


def linkLine(node, other, pattern: str, timeout: float = DECIDED) -> str:
    """Type C{peers} until the line of C{other} matches C{pattern}."""
    deadline = time.monotonic() + timeout
    found, lines = "", []
    while time.monotonic() < deadline:
        lines = node.command("peers")
        found = next((line for line in lines if other.nodeId[:8] in line),
                     "")
        if re.search(pattern, found):
            return found
        time.sleep(1.0)
    raise AssertionError(f"{node.name}: the line of {other.name} "
                         f"({other.nodeId[:8]}) {found!r} never matched "
                         f"{pattern!r} in {lines!r}")


def sendAndExpect(sender, receiver, body: str) -> None:
    sender.type(f"send {receiver.nodeId} {body}")
    sender.expect(rf"^delivered to .*{receiver.nodeId[:8]}")
    receiver.expect(rf"^\[direct\] .*: {re.escape(body)}$")


@pytest.mark.parametrize("first, second, link", [
    (MASQUERADE, MASQUERADE, r"\(punched\)"),
    (SYMMETRIC, MASQUERADE, r"\(relayed through [0-9a-f]{8}\)"),
])
def test_two_nodes_behind_nats_reach_each_other(lab, first, second, link):
    """
    Two private nodes, each linked to one public node only: a message
    from one reaches the other through a relay, and a broadcast reaches
    both; their connection is punched through where both NATs allow it.
    """
    seed = lab.node(lab.publicHost("seed"), "S")
    relay = lab.node(lab.publicHost("relay"), "R", "--join", seed.address)
    a = behind(lab, first, "A", seed)
    b = behind(lab, second, "B", relay)
    for node in (a, b):
        reachLine(node, r"^private")
    # B is known through its relay once it has one.
    deadline = time.monotonic() + DECIDED
    while not [line for line in a.command("known")
               if b.nodeId[:8] in line and "via" in line]:
        assert time.monotonic() < deadline, "A never heard of B's relay"
        time.sleep(1.0)
    sendAndExpect(a, b, "through the relay")
    linkLine(a, b, link)
    sendAndExpect(a, b, "and once more")
    sendAndExpect(b, a, "and back")
    a.type("broadcast to all")
    b.expect(r"^\[broadcast\] .*: to all$")


def test_a_public_node_reaches_a_private_one_and_is_dialed_back(lab):
    """From a public node to a private one: through the relay, then
    direct, the private node dialing out (connection reversal)."""
    seed = lab.node(lab.publicHost("seed"), "S")
    lab.node(lab.publicHost("relay"), "R", "--join", seed.address)
    # Linked to S and R only (no DHT lookups dialing P), it can only be
    # reached through one of them.
    h = behind(lab, SYMMETRIC, "H", seed, "--no-dht", "--min-peers", "2")
    reachLine(h, r"^private")
    p = lab.node(lab.publicHost("p"), "P", "--join", seed.address, *SPARSE)
    reachLine(p, r"^public")
    deadline = time.monotonic() + DECIDED
    while not [line for line in p.command("known")
               if h.nodeId[:8] in line and "via" in line]:
        assert time.monotonic() < deadline, "P never heard of H's relay"
        time.sleep(1.0)
    sendAndExpect(p, h, "knock knock")
    linkLine(p, h, r"\(reversed\)")
    sendAndExpect(p, h, "directly now")

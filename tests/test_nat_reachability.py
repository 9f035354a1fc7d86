"""
Reachability across hosts and NATs, in the network lab: real nodes learn
from their peers' observations and dial-backs whether others can dial
them, say so in C{info}, and a node that cannot be dialed stops
advertising an address.
"""

from __future__ import annotations

import re
import time

import pytest

from p2poverlay.netlab import FIREWALL, MASQUERADE, SYMMETRIC, Lab, whyUnavailable

REASON = whyUnavailable()
pytestmark = pytest.mark.skipif(
    REASON is not None, reason=f"NETWORK LAB NOT RUN: {REASON}")

# Two probes that time out (the connect timeout, 10 s) and the pause
# between them, with room for a slow machine.
DECIDED = 90.0


@pytest.fixture
def lab(tmp_path):
    with Lab(tmp_path) as made:
        try:
            yield made
        finally:
            print(made.transcripts())


def reachLine(node, pattern: str, timeout: float = DECIDED) -> str:
    """Type C{info} until its reach line matches C{pattern}; return it."""
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        start = node.mark()
        node.type("info")
        _, match = node.waitFor(r"^  reach:   (.*)$", start, 10.0)
        line = match.group(1)
        if re.search(pattern, line):
            return line
        time.sleep(1.0)
    raise AssertionError(f"{node.name}: reach line {line!r} never matched "
                         f"{pattern!r}")


def publicNodes(lab, count: int = 3):
    first = lab.node(lab.publicHost("p0"), "P0")
    others = [lab.node(lab.publicHost(f"p{i}"), f"P{i}", "--join",
                       first.address) for i in range(1, count)]
    return [first] + others


def test_public_nodes_learn_they_are_public_at_their_address(lab):
    """
    On the WAN bridge with no NAT, peers agree where each node is, and a
    dial-back gets through: each is public at its own address.
    """
    nodes = publicNodes(lab)
    for node in nodes:
        reachLine(node, rf"^public at {re.escape(node.address)} "
                        rf"\(dialed back by \d+, no NAT\)$")


@pytest.mark.parametrize("kind, nat", [
    (MASQUERADE, "NAT maps endpoint-independent"),
    (SYMMETRIC, "NAT maps per destination \\(symmetric\\)"),
    (FIREWALL, "no NAT"),
])
def test_a_node_behind_a_router_learns_it_is_private(lab, kind, nat):
    """
    Behind each kind of router a node's peers agree on the address they
    see, dial it back in vain, and it is private, knowing how its NAT
    maps; public nodes are public all the while.
    """
    public = publicNodes(lab)
    router = lab.natRouter("r", kind)
    h = lab.node(lab.hostBehind(router, "h"), "H", "--join",
                 public[0].address)
    line = reachLine(h, r"^private")
    assert re.fullmatch(rf"private: not reachable from outside \({nat}\)",
                        line), line
    for node in public:
        reachLine(node, rf"^public at {re.escape(node.address)} ")


def dialableEntries(node, nodeId: str):
    """C{known} lines of C{node} that give C{nodeId} an address to dial."""
    return [line for line in node.command("known")
            if nodeId[:8] in line and not re.search(r":0\b", line)]


def test_a_private_node_withdraws_its_address(lab):
    """
    Its first peers heard a listening port in its HELLO; once it is
    private they hear it withdrawn, and a node joining later is told no
    address for it.
    """
    public = publicNodes(lab)
    router = lab.natRouter("r", MASQUERADE)
    h = lab.node(lab.hostBehind(router, "h"), "H", "--join",
                 public[0].address)
    reachLine(h, r"^private")
    deadline = time.monotonic() + 30.0
    while any(dialableEntries(node, h.nodeId) for node in public):
        assert time.monotonic() < deadline, [
            dialableEntries(node, h.nodeId) for node in public]
        time.sleep(1.0)
    late = lab.node(lab.publicHost("late"), "L", "--join", public[0].address)
    late.expect(r"^\* connected: ")
    time.sleep(3.0)  # Peer exchange has had its say.
    assert dialableEntries(late, h.nodeId) == []

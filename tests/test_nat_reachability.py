"""
Reachability across hosts and NATs, in the network lab: real nodes learn
from their peers' observations and dial-backs whether others can dial
them, say so in C{info}, and a node that cannot be dialed stops
advertising an address.
"""

from __future__ import annotations

import re
import time


from helpers import needsNamespaces
from p2poverlay.netlab import FIREWALL, MASQUERADE, SYMMETRIC

pytestmark = needsNamespaces

# Two probes that time out (the connect timeout, 10 s) and the pause
# between them, with room for a slow machine.
DECIDED = 90.0


REACH = "  reach:   "


def reachLine(node, pattern: str, timeout: float = DECIDED) -> str:
    """
    Type C{info} until its reach line matches C{pattern} (a C{^} anchors
    it at the start of what the line says); return what it says.
    """
    anchored = pattern.startswith("^")
    body = pattern[1:] if anchored else ".*" + pattern
    match = node.poll("info", "^" + re.escape(REACH) + body, timeout)
    return match.string[len(REACH):]


def publicNodes(lab, count: int = 3):
    first = lab.node(lab.publicHost("p0"), "P0")
    others = [lab.node(lab.publicHost(f"p{i}"), f"P{i}", "--join",
                       first.address) for i in range(1, count)]
    return [first] + others


KINDS = [
    (MASQUERADE, "NAT maps endpoint-independent"),
    (SYMMETRIC, "NAT maps per destination \\(symmetric\\)"),
    (FIREWALL, "no NAT"),
]


def directEntries(node, nodeId: str):
    """C{known} lines of C{node} that give C{nodeId} an address of its own
    to dial (not port 0, not a relay's)."""
    return [line for line in node.command("known")
            if nodeId[:8] in line and not re.search(r":0\b", line)
            and ", via " not in line]


def test_each_node_learns_whether_others_can_dial_it(lab):
    """
    Three public nodes and one node behind each kind of router, all in one
    overlay.  Peers agree where each node is: a dial-back reaches the
    public ones, each at its own address, and fails behind every router,
    whose node is private and knows how its NAT maps.  The private nodes
    withdraw the address their first peers heard, and a node joining
    later is told no address of theirs (only their relays).
    """
    public = publicNodes(lab)
    private = []
    for index, (kind, nat) in enumerate(KINDS):
        router = lab.natRouter(f"r{index}", kind)
        private.append((lab.node(lab.hostBehind(router, f"h{index}"),
                                 f"H{index}", "--join", public[0].address),
                        nat))
    for node in public:
        reachLine(node, rf"^public at {re.escape(node.address)} "
                        rf"\(dialed back by \d+, no NAT\)$")
    for node, nat in private:
        # Where its peers see it: its router's WAN side, or itself
        # behind a firewall that does not translate.
        seen = node.host.address if node.host.router.kind == FIREWALL \
            else node.host.router.address
        line = reachLine(node, r"^private")
        assert re.fullmatch(rf"private: seen at {re.escape(seen)}, not "
                            rf"reachable from outside \({nat}\)",
                            line), (node.name, line)
    deadline = time.monotonic() + 30.0
    while any(directEntries(p, h.nodeId) for p in public for h, _ in private):
        assert time.monotonic() < deadline, [
            directEntries(p, h.nodeId) for p in public for h, _ in private]
        time.sleep(1.0)
    late = lab.node(lab.publicHost("late"), "L", "--join", public[0].address)
    late.expect(r"^\* connected: ")
    time.sleep(3.0)  # Peer exchange has had its say.
    for h, _ in private:
        assert directEntries(late, h.nodeId) == [], h.name

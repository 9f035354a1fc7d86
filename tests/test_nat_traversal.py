"""
Across NATs, in the network lab: nodes nobody can dial are reached
through relays, and the relayed connection turns direct where it can:
reversed where one side can be dialed, punched where both sit behind
NATs that map endpoint-independently; a symmetric NAT's stays relayed.
Every case in a sparse overlay, where the two nodes are not neighbours.
"""

from __future__ import annotations

import re


from helpers import needsNamespaces
from p2poverlay.netlab import MASQUERADE, SYMMETRIC
from test_nat_reachability import DECIDED, reachLine

pytestmark = needsNamespaces

SPARSE = ("--min-peers", "1", "--max-peers", "2")


def behind(lab, kind: str, name: str, seed, *options: str):
    router = lab.natRouter(f"r{name.lower()}", kind)
    return lab.node(lab.hostBehind(router, name.lower()), name, "--join",
                    seed.address, *SPARSE, *options)


def linkLine(node, other, pattern: str, timeout: float = DECIDED) -> str:
    """Type C{peers} until the line of C{other} matches C{pattern}."""
    return node.poll("peers", re.escape(other.nodeId[:8]) + ".*" + pattern,
                     timeout).string


def sendAndExpect(sender, receiver, body: str) -> None:
    sender.type(f"send {receiver.nodeId} {body}")
    sender.expect(rf"^delivered to .*{receiver.nodeId[:8]}")
    receiver.expect(rf"^\[direct\] .*: {re.escape(body)}$")


def relayedRecordOf(node, other, timeout: float = DECIDED) -> None:
    """Wait until C{node} knows C{other} as reached through a relay."""
    node.poll("known", re.escape(other.nodeId[:8]) + ".*, via ", timeout)


def test_nodes_behind_nats_reach_each_other(lab):
    """
    In a sparse overlay of two public nodes: two private nodes behind NATs
    that keep their ports punch through to each other; a pair with a
    symmetric NAT stays relayed; a public node reaches a private one
    through its relay, and is then dialed back by it (reversal).  Every
    message arrives, either way, and a broadcast reaches every node.
    """
    seed = lab.node(lab.publicHost("seed"), "S")
    relay = lab.node(lab.publicHost("relay"), "R", "--join", seed.address)
    a = behind(lab, MASQUERADE, "A", seed)
    b = behind(lab, MASQUERADE, "B", relay)
    c = behind(lab, SYMMETRIC, "C", seed)
    d = behind(lab, MASQUERADE, "D", relay)
    # Linked to S and R only (no DHT lookups dialing P), H can only be
    # reached through one of them.
    h = behind(lab, SYMMETRIC, "H", seed, "--no-dht", "--min-peers", "2")
    for node in (a, b, c, d, h):
        reachLine(node, r"^private")
    p = lab.node(lab.publicHost("p"), "P", "--join", seed.address, *SPARSE)
    reachLine(p, r"^public")
    for sender, receiver, link in (
            (a, b, r"\(punched\)"),
            (c, d, r"\(relayed through [0-9a-f]{8}\)"),
            (p, h, r"\(reversed\)")):
        relayedRecordOf(sender, receiver)
        sendAndExpect(sender, receiver, f"{sender.name} to {receiver.name}")
        linkLine(sender, receiver, link)
        sendAndExpect(sender, receiver, "once more")
        sendAndExpect(receiver, sender, "and back")
    assert re.search(
        r"punched through to .*" + b.nodeId[:8] + r".* on try [123]: TCP up "
        r"\d+ ms and the link \d+ ms after the relayed one", a.logged()), \
        "A's log does not say how long its punch took"
    assert re.search(
        r"dialed back by .*" + h.nodeId[:8] + r".*: the link \d+ ms after "
        r"the relayed one", p.logged()), \
        "P's log does not say how long the reversal took"
    a.type("broadcast to all")
    for node in (b, c, d, h, p):
        node.expect(r"^\[broadcast\] .*: to all$")

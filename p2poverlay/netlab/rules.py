"""
The firewall rules of each router kind and of packet loss, as C{iptables}
argument lists (run inside the router's or host's namespace only).
"""

from __future__ import annotations

from typing import List

# Router kinds: how the router maps its LAN to its WAN address.
MASQUERADE = "masquerade"   # endpoint-independent mapping
SYMMETRIC = "symmetric"     # a new public port for every connection
FIREWALL = "firewall"       # no translation, new inbound dropped
DOUBLE = "double"           # a masquerade router behind another one
KINDS = (MASQUERADE, SYMMETRIC, FIREWALL, DOUBLE)

Rule = List[str]


def routerRules(kind: str, wan: str) -> List[Rule]:
    """
    The rules of a router of C{kind} whose WAN interface is C{wan}: every
    kind drops connections opened from the WAN side and lets replies in;
    the NAT kinds also rewrite the LAN's source addresses.

    @raise ValueError: C{kind} is not one of L{KINDS}.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown router kind {kind!r} "
                         f"(one of {', '.join(KINDS)})")
    rules: List[Rule] = []
    for chain in ("FORWARD", "INPUT"):
        rules.append(["-A", chain, "-i", wan, "-m", "conntrack",
                      "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"])
        rules.append(["-A", chain, "-i", wan, "-m", "conntrack",
                      "--ctstate", "NEW", "-j", "DROP"])
        rules.append(["-A", chain, "-i", wan, "-j", "DROP"])
    if kind in (MASQUERADE, DOUBLE):
        rules.append(["-t", "nat", "-A", "POSTROUTING", "-o", wan,
                      "-j", "MASQUERADE"])
    elif kind == SYMMETRIC:
        rules.append(["-t", "nat", "-A", "POSTROUTING", "-o", wan,
                      "-j", "MASQUERADE", "--random-fully"])
    return rules


def lossRules(interface: str, probability: float,
              direction: str = "in") -> List[Rule]:
    """
    Rules dropping each packet crossing C{interface} with C{probability}:
    those arriving (C{"in"}), leaving (C{"out"}) or both (C{"both"}).
    They go first in their chains, before any router rule accepts.

    @raise ValueError: a probability outside (0, 1], or a bad direction.
    """
    if not 0 < probability <= 1:
        raise ValueError(f"loss probability {probability!r} not in (0, 1]")
    if direction not in ("in", "out", "both"):
        raise ValueError(f"loss direction {direction!r}: in, out or both")
    drop = ["-m", "statistic", "--mode", "random",
            "--probability", f"{probability:.4f}", "-j", "DROP"]
    rules: List[Rule] = []
    if direction in ("in", "both"):
        rules += [["-I", "INPUT", "1", "-i", interface, *drop],
                  ["-I", "FORWARD", "1", "-i", interface, *drop]]
    if direction in ("out", "both"):
        rules += [["-I", "OUTPUT", "1", "-o", interface, *drop],
                  ["-I", "FORWARD", "1", "-o", interface, *drop]]
    return rules

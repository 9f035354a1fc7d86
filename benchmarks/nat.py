"""
Across NATs, in the network lab (root only): pairs of nodes behind NAT
routers of each kind, in one sparse overlay of two public nodes, each
pair's first node sending to its second, whom it never met.

For each pair: whether the message arrived (directly or relayed), how
the link ended (punched, reversed, relayed), the time from the send to
its delivery, and from the send to a direct link (as C{peers} shows it,
asked every 0.1 s).  The baselines: every
pair, and libp2p's measured hole-punching success (70 %).  Pairs run at
once, so the figures include the load of the whole lab on two cores.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

from benchmarks.report import Figure, Results
from p2poverlay.netlab import (
    MASQUERADE, SYMMETRIC, Lab, LabNode, whyUnavailable,
)

BENCH = "nat"
SPARSE = ("--min-peers", "1", "--max-peers", "2")
# libp2p's hole punching on the internet (Trautwein et al., 2024).
LIBP2P_PUNCH_SUCCESS = 70.0
# Pairs by the kinds of their two NATs; symmetric ones stay relayed.
MATRIX = [(MASQUERADE, MASQUERADE), (MASQUERADE, SYMMETRIC),
          (SYMMETRIC, SYMMETRIC)]
DECIDED = 120.0
TRIES, RETRY = 3, 10.0


def run(results: Results, pairs: int, stable: float = 0.0) -> None:
    """
    @param stable: then keep the lab running this many seconds, and count
        how often each node's reachability changed in all (its log says
        each change).
    """
    reason = whyUnavailable()
    if reason is not None:
        print(f"  skipped: {reason}", flush=True)
        results.fact(BENCH, "skipped", reason)
        return
    with tempfile.TemporaryDirectory() as workdir, Lab(Path(workdir)) as lab:
        outcomes = measure(lab, pairs)
        if stable:
            print(f"  the lab runs on for {stable:.0f} s", flush=True)
            time.sleep(stable)
            changes = [_changes(node) for node in lab.processes
                       if isinstance(node, LabNode)]
    report(results, outcomes)
    if stable:
        results.add(Figure(
            BENCH, f"reachability changes per node, most, over "
                   f"{stable / 60:.0f} minutes after the trials "
                   f"({len(changes)} nodes)",
            max(changes), "changes", "the one decision each node makes", 1,
            maxValue=1))


def _changes(node) -> int:
    """How often a lab node's reachability changed, as its log says."""
    return node.logged().count(
        "[p2poverlay.reachability.Reachability#info] reachability: ")


def measure(lab: Lab, pairs: int) -> List[Dict]:
    seed = lab.node(lab.publicHost("seed"), "S")
    relay = lab.node(lab.publicHost("relay"), "R", "--join", seed.address)
    made: List[Tuple[str, str, object, object]] = []
    for index in range(pairs):
        for first, second in MATRIX:
            name = f"{first[:3]}{second[:3]}{index}"
            a = _behind(lab, first, f"a{name}", seed)
            b = _behind(lab, second, f"b{name}", relay)
            made.append((first, second, a, b))
    print(f"  {len(made)} pairs of nodes behind NATs started", flush=True)
    for _, _, a, b in made:
        for node in (a, b):
            node.poll("info", r"^  reach:   private", DECIDED)
    outcomes = []
    for first, second, a, b in made:
        outcomes.append(_trial(first, second, a, b))
        print(f"  {first}/{second}: {outcomes[-1]['link']}", flush=True)
    return outcomes


def _behind(lab: Lab, kind: str, name: str, seed) -> object:
    router = lab.natRouter(f"r{name}", kind)
    return lab.node(lab.hostBehind(router, f"h{name}"), name.upper(),
                    "--join", seed.address, *SPARSE)


def _trial(first: str, second: str, a, b) -> Dict:
    """A sends to B, whom it may never have heard of (it finds B by the
    DHT, or by peer exchange), trying up to L{TRIES} times."""
    outcome = {"nats": f"{first}/{second}", "delivered": False,
               "link": "none", "delivery": None, "direct": None,
               "tries": 0}
    for attempt in range(1, TRIES + 1):
        outcome["tries"] = attempt
        start = a.mark()
        began = time.monotonic()
        a.type(f"send {b.nodeId} across")
        try:
            _, match = a.waitFor(r"^(delivered to|error: )", start, 100.0)
        except AssertionError:
            continue
        if match.group(1) == "delivered to":
            break
        time.sleep(RETRY)
    else:
        return outcome
    outcome.update(delivered=True, delivery=time.monotonic() - began)
    symmetric = SYMMETRIC in (first, second)
    try:
        line = a.poll("peers", re.escape(b.nodeId[:8]) + ".*"
                      + (r"\(relayed" if symmetric else r"\(punched\)"),
                      30.0, every=0.1).string
    except AssertionError:
        return outcome
    if "(punched)" in line:
        outcome.update(link="punched", direct=time.monotonic() - began)
    else:
        outcome["link"] = "relayed"
    return outcome


def report(results: Results, outcomes: List[Dict]) -> None:
    results.fact(BENCH, "trials", outcomes)
    results.fact(BENCH, "sends tried again",
                 sum(o["tries"] - 1 for o in outcomes))
    count = len(outcomes)
    delivered = [o for o in outcomes if o["delivered"]]
    results.add(Figure(BENCH, f"pairs that reach each other, {count} pairs",
                       100 * len(delivered) / count, "%", "every pair", 100,
                       minValue=100))
    open_ = [o for o in outcomes if SYMMETRIC not in o["nats"]]
    if open_:
        direct = [o for o in open_ if o["link"] == "punched"]
        results.add(Figure(
            BENCH, f"pairs with no symmetric NAT that end direct, "
                   f"{len(open_)} pairs",
            100 * len(direct) / len(open_), "%",
            "libp2p hole punching on the internet", LIBP2P_PUNCH_SUCCESS,
            minValue=95))
        if direct:
            results.add(Figure(
                BENCH, "send to a direct link (median)",
                statistics.median(o["direct"] for o in direct), "s",
                "send to delivery through the relay",
                statistics.median(o["delivery"] for o in delivered)))
    relayedOnly = [o for o in outcomes if SYMMETRIC in o["nats"]]
    if relayedOnly:
        results.add(Figure(
            BENCH, f"pairs with a symmetric NAT still relayed, "
                   f"{len(relayedOnly)} pairs",
            100 * sum(o["link"] == "relayed" for o in relayedOnly)
            / len(relayedOnly), "%", "every such pair", 100))

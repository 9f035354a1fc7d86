"""
Across NATs, in the network lab (root only), in phases: each phase a
fresh lab with two public nodes (a seed and a relay) and two groups of
nodes, each node behind a router of its own of the phase's kinds, with a
delay on every router's uplink, all in one sparse overlay.  In
L{GROUP} rounds every node of the first group sends to a node of the
second, whom it never met, at once (a Latin square: every ordered pair
once, each node in one send per round).

For each pair: whether the message arrived (directly or relayed), how
the link ended (punched, reversed, relayed), and for a punch or a
reversal how long after the relayed link the direct one came, in round
trips between the two (the sender's node logs the milliseconds; the
lab's pings give the round trip).  Where peers see each node is checked
against its router's WAN address.  In the symmetric pair phase, 1 MiB
goes through a relay on one circuit.  The baselines: every pair, and
libp2p's measured hole-punching success (70 %).
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks.report import Figure, Results
from p2poverlay.netlab import (
    DOUBLE, FIREWALL, MASQUERADE, SYMMETRIC, Lab, LabNode, whyUnavailable,
)

BENCH = "nat"
SPARSE = ("--min-peers", "1", "--max-peers", "2")
# libp2p's hole punching on the internet (Trautwein et al., 2024).
LIBP2P_PUNCH_SUCCESS = 70.0
PUBLIC = "public"  # a group of public hosts, no router
DELAY = 0.020  # one way on each router's (or public host's) uplink
LOSS = 0.02  # each way, on a lossy router's uplink
DECIDED = 120.0
TRIES, RETRY = 3, 5.0
LINK_DEADLINE = 30.0
CHUNK, CHUNKS = 32 * 1024, 32  # 1 MiB through a relay


@dataclass(frozen=True)
class Phase:
    """Two groups' router kinds; C{lossy}: the first group's drop packets."""
    first: str
    second: str
    lossy: bool = False

    @property
    def name(self) -> str:
        first = "lossy " + self.first if self.lossy else self.first
        return f"{first}/{self.second}"

    @property
    def direct(self) -> str:
        """How a pair should end: punched, reversed or relayed."""
        if self.first == PUBLIC:
            return "reversed"
        if SYMMETRIC in (self.first, self.second):
            return "relayed"
        return "punched"


PHASES = [Phase(MASQUERADE, MASQUERADE), Phase(FIREWALL, MASQUERADE),
          Phase(DOUBLE, FIREWALL), Phase(MASQUERADE, DOUBLE, lossy=True),
          Phase(SYMMETRIC, MASQUERADE), Phase(SYMMETRIC, SYMMETRIC),
          Phase(PUBLIC, SYMMETRIC)]


def run(results: Results, group: int, stable: float = 0.0,
        phases: Optional[List[str]] = None) -> None:
    """
    @param group: nodes in each group: C{group} squared pairs per phase.
    @param stable: then keep the last phase's lab running this many
        seconds, and count how often each node's reachability changed in
        all (its log says each change).
    @param phases: the names of the phases to run (all if L{None}).
    """
    reason = whyUnavailable()
    if reason is not None:
        print(f"  skipped: {reason}", flush=True)
        results.fact(BENCH, "skipped", reason)
        return
    chosen = [p for p in PHASES if phases is None or p.name in phases]
    outcomes: List[Dict] = []
    seenRight: List[bool] = []
    relayed: Optional[Dict] = None
    changes: List[int] = []
    with tempfile.TemporaryDirectory() as workdir:
        for number, phase in enumerate(chosen):
            last = number == len(chosen) - 1
            with Lab(Path(workdir) / f"phase{number}") as lab:
                began = time.monotonic()
                first, second = _groups(lab, phase, group)
                seenRight += _decided(phase, first + second)
                rtts = _toSeed(lab, first + second)
                trials = _rounds(phase, first, second, rtts)
                outcomes += trials
                print(f"  {phase.name}: {_tally(trials)} "
                      f"({time.monotonic() - began:.0f} s)", flush=True)
                if phase.direct == "relayed" and phase.first == SYMMETRIC \
                        and relayed is None:
                    relayed = _megabyte(first[0], second[0])
                if last and stable:
                    print(f"  the lab runs on for {stable:.0f} s", flush=True)
                    time.sleep(stable)
                    changes = [_changes(n) for n in lab.processes
                               if isinstance(n, LabNode)]
    report(results, outcomes, seenRight, relayed)
    if stable:
        results.add(Figure(
            BENCH, f"reachability changes per node, most, over "
                   f"{stable / 60:.0f} minutes after the trials "
                   f"({len(changes)} nodes)",
            max(changes), "changes", "the one decision each node makes", 1,
            maxValue=1))


def _changes(node: LabNode) -> int:
    """How often a lab node's reachability changed, as its log says."""
    return node.logged().count(
        "[p2poverlay.reachability.Reachability#info] reachability: ")


# -- a phase's lab -------------------------------------------------------------

def _groups(lab: Lab, phase: Phase, size: int
            ) -> Tuple[List[LabNode], List[LabNode]]:
    seed = lab.node(lab.publicHost("seed"), "S")
    relay = lab.node(lab.publicHost("relay"), "R", "--join", seed.address)
    groups: Tuple[List[LabNode], List[LabNode]] = ([], [])
    for index in range(size):
        for letter, kind, nodes in (("a", phase.first, groups[0]),
                                    ("b", phase.second, groups[1])):
            name = f"{letter}{index}"
            if kind == PUBLIC:
                host = lab.publicHost(f"h{name}", delay=DELAY)
            else:
                router = lab.natRouter(f"r{name}", kind, delay=DELAY)
                if phase.lossy and letter == "a":
                    lab.packetLoss(router, LOSS, "both")
                host = lab.hostBehind(router, f"h{name}")
            joins = seed if index % 2 else relay
            nodes.append(lab.node(host, name.upper(), "--join",
                                  joins.address, *SPARSE, wait=False))
    for node in groups[0] + groups[1]:
        node.waitForBanner()
    return groups


def _toSeed(lab: Lab, nodes: List[LabNode]) -> Dict[str, float]:
    """Each node's shortest ping round trip to the seed (no delay of its
    own, so two nodes' sum is the round trip between them), seconds."""
    seed = lab.processes[0]
    assert isinstance(seed, LabNode)
    return {n.name: lab.roundTrip(n.host, seed.host.address) for n in nodes}


def _decided(phase: Phase, nodes: List[LabNode]) -> List[bool]:
    """Wait until every node knows whether it can be dialed, and can be
    found by id (a private one once its relayed record is stored); return
    whether each one's peers see it where its router (or it) faces the
    WAN."""
    right = []
    for node in nodes:
        state = "public" if node.host.router is None else "private"
        line = node.poll("info", rf"^  reach:   {state}\b.*", DECIDED).string
        right.append(_facing(node) in line)
    for node in nodes:
        node.poll("info", r"^  dht:     .*, findable$", DECIDED)
    return right


def _facing(node: LabNode) -> str:
    """The host this node's peers should see it at."""
    router = node.host.router
    if router is None or router.kind == FIREWALL:
        return node.host.address
    while router.router is not None:
        router = router.router
    return router.address


# -- trials --------------------------------------------------------------------

def _rounds(phase: Phase, first: List[LabNode], second: List[LabNode],
            rtts: Dict[str, float]) -> List[Dict]:
    size = len(first)
    trials: List[Dict] = []
    with ThreadPoolExecutor(size) as pool:
        for shift in range(size):
            pairs = [(first[i], second[(i + shift) % size])
                     for i in range(size)]
            trials += pool.map(
                lambda pair: _trial(phase, *pair,
                                    rtts[pair[0].name] + rtts[pair[1].name]),
                pairs)
    return trials


def _trial(phase: Phase, a: LabNode, b: LabNode, rtt: float) -> Dict:
    """A sends to B by node id, trying up to L{TRIES} times, then waits
    for the link to end the way the phase says it should."""
    outcome: Dict = {"phase": phase.name, "pair": f"{a.name}->{b.name}",
                     "delivered": False, "link": "none", "tries": 0,
                     "delivery": None, "rtt": rtt}
    for attempt in range(1, TRIES + 1):
        outcome["tries"] = attempt
        start = a.mark()
        began = time.monotonic()
        a.type(f"send {b.nodeId} {a.name} to {b.name}")
        try:
            _, match = a.waitFor(
                rf"^(delivered to .*{b.nodeId[:8]}|error: .*{b.nodeId[:8]}.*)",
                start, 100.0)
        except AssertionError:
            outcome["error"] = "no answer within 100 s"
            continue
        if match.group(1).startswith("delivered to"):
            outcome.update(delivered=True,
                           delivery=time.monotonic() - began)
            break
        outcome["error"] = match.group(1)
        time.sleep(RETRY)
    else:
        # What the sender's log says of B, for the report.
        outcome["log"] = [line for line in a.logged().splitlines()
                          if b.nodeId[:8] in line][-6:]
        return outcome
    expected = {"punched": r"\(punched\)", "reversed": r"\(reversed\)|key \S+$",
                "relayed": r"\(relayed through"}[phase.direct]
    try:
        line = a.poll("peers", re.escape(b.nodeId[:8]) + ".*(" + expected
                      + ")", LINK_DEADLINE, every=0.5).string
    except AssertionError:
        line = "".join(p for p in a.command("peers") if b.nodeId[:8] in p)
    outcome["link"] = ("punched" if "(punched)" in line else
                       "reversed" if "(reversed)" in line else
                       "relayed" if "(relayed through" in line else
                       "direct" if line else "none")
    outcome.update(_timing(a, b, outcome["link"]))
    return outcome


PUNCHED = re.compile(r"punched through to .*{peer}.* on try (?P<try>\d): TCP "
                     r"up (?P<tcp>\d+) ms and the link (?P<link>\d+) ms")
REVERSED = re.compile(r"dialed back by .*{peer}.*: the link (?P<link>\d+) ms")


def _timing(a: LabNode, b: LabNode, link: str) -> Dict:
    """How long after the relayed link the direct one came, as A logs."""
    pattern = {"punched": PUNCHED, "reversed": REVERSED}.get(link)
    if pattern is None:
        return {}
    match = re.search(pattern.pattern.replace("{peer}", b.nodeId[:8]),
                      a.logged())
    if match is None:
        return {}
    return {f"{key} ms" if key != "try" else "punch try": int(value)
            for key, value in match.groupdict().items()}


def _megabyte(a: LabNode, b: LabNode) -> Dict:
    """A sends B 1 MiB over their relayed link, in L{CHUNKS} messages."""
    before = _linkLine(a, b)
    start = a.mark()
    began = time.monotonic()
    for index in range(CHUNKS):
        a.type(f"send {b.nodeId} {index:04d}" + "x" * (CHUNK - 4))
    delivered = 0
    for _ in range(CHUNKS):
        try:
            start, _match = a.waitFor(r"^(delivered to|error: )", start, 60.0)
        except AssertionError:
            break
        delivered += _match.group(1) == "delivered to"
        start += 1
    seconds = time.monotonic() - began
    arrived = len(b.matching(r"^\[direct\] .*: \d{4}x+$"))
    after = _linkLine(a, b)
    return {"delivered": delivered, "arrived": arrived, "seconds": seconds,
            "same circuit": before == after and "(relayed through" in after,
            "before": before, "after": after}


def _linkLine(a: LabNode, b: LabNode) -> str:
    return "".join(p for p in a.command("peers") if b.nodeId[:8] in p)


def _tally(trials: List[Dict]) -> str:
    links: Dict[str, int] = {}
    for trial in trials:
        links[trial["link"]] = links.get(trial["link"], 0) + 1
    delivered = sum(t["delivered"] for t in trials)
    return f"{delivered}/{len(trials)} delivered, " + ", ".join(
        f"{count} {link}" for link, count in sorted(links.items()))


# -- figures -------------------------------------------------------------------

def report(results: Results, outcomes: List[Dict], seenRight: List[bool],
           relayed: Optional[Dict]) -> None:
    results.fact(BENCH, "trials", outcomes)
    results.fact(BENCH, "sends tried again",
                 sum(o["tries"] - 1 for o in outcomes if o["tries"]))
    count = len(outcomes)
    delivered = [o for o in outcomes if o["delivered"]]
    results.add(Figure(BENCH, f"pairs that reach each other, {count} pairs",
                       100 * len(delivered) / count, "%", "every pair", 100,
                       minValue=100))
    for phase in PHASES:
        mine = [o for o in outcomes if o["phase"] == phase.name]
        if mine:
            results.fact(BENCH, f"{phase.name} pairs", _tally(mine))
    open_ = [o for o in outcomes
             if not any(SYMMETRIC in part for part in o["phase"].split("/"))]
    if open_:
        direct = [o for o in open_ if o["link"] == "punched"]
        results.add(Figure(
            BENCH, f"pairs with no symmetric NAT that end direct "
                   f"(punched), {len(open_)} pairs",
            100 * len(direct) / len(open_), "%",
            "libp2p hole punching on the internet", LIBP2P_PUNCH_SUCCESS,
            minValue=95))
        _roundTrips(results, "punched", direct)
    reversed_ = [o for o in outcomes if o["phase"].startswith(PUBLIC)]
    if reversed_:
        direct = [o for o in reversed_ if o["link"] in ("reversed", "direct")]
        results.add(Figure(
            BENCH, f"public/symmetric pairs that end direct, "
                   f"{len(reversed_)} pairs",
            100 * len(direct) / len(reversed_), "%", "every such pair", 100))
        _roundTrips(results, "reversed",
                    [o for o in direct if o["link"] == "reversed"])
    symmetric = [o for o in outcomes if o not in open_
                 and o not in reversed_]
    if symmetric:
        results.add(Figure(
            BENCH, f"pairs with a symmetric NAT still relayed, "
                   f"{len(symmetric)} pairs",
            100 * sum(o["link"] == "relayed" for o in symmetric)
            / len(symmetric), "%", "every such pair", 100))
    if seenRight:
        results.add(Figure(
            BENCH, f"nodes whose peers see them at their router's WAN "
                   f"address, {len(seenRight)} nodes",
            100 * sum(seenRight) / len(seenRight), "%", "every node", 100,
            minValue=100))
    if relayed is not None:
        results.fact(BENCH, "1 MiB through a relay", relayed)
        # What arrived while one circuit carried it all (none if the
        # circuit was replaced or reset on the way).
        arrived = relayed["arrived"] if relayed["same circuit"] else 0
        results.add(Figure(
            BENCH, f"1 MiB through a relay, on one circuit, in "
                   f"{relayed['seconds']:.1f} s",
            arrived * CHUNK / (1 << 20), "MiB", "1 MiB", 1.0, minValue=1.0))


def _roundTrips(results: Results, kind: str, trials: List[Dict]) -> None:
    """The direct link's delay after the relayed one, in round trips."""
    timed = [o for o in trials if "link ms" in o and o["rtt"] > 0]
    if not timed:
        return
    for key, what in (("tcp", "TCP up"), ("link", "the link up")):
        ratios = sorted(o[f"{key} ms"] / 1000 / o["rtt"] for o in timed
                        if f"{key} ms" in o)
        if not ratios:
            continue
        p95 = ratios[min(len(ratios) - 1, int(0.95 * len(ratios)))]
        results.add(Figure(
            BENCH, f"{kind}: {what} after the relayed link, round trips, "
                   f"median (p95 {p95:.1f}; {len(ratios)} pairs, round trip "
                   f"{1000 * statistics.median(o['rtt'] for o in timed):.0f}"
                   f" ms)",
            statistics.median(ratios), "round trips", "3 round trips", 3.0,
            maxValue=3.0 if key == "tcp" else None))

"""
The simulator: N real Nodes in one process on a virtual clock
(L{p2poverlay.memnet}), keyless and in plaintext, over links with a one-way
delay uniform from 5 to 150 ms (L{p2poverlay.memnet.WAN}), each pair of
hosts its own, all drawn from the seed.  The same seed gives the same
figures (real time and memory aside).

Scenarios, as the Plumtree and HyParView papers report them:

- steady state: broadcasts one at a time from random nodes, over Plumtree
  (the nodes' "tree" mode) against flooding on the same overlay in the same
  run: reliability (share of live nodes that delivered), payload messages
  per delivery, relative message redundancy (RMR, M{m / (n - 1) - 1}),
  last delivery hop and time to the last node, in virtual time;
- mass failure: X % of the nodes crash at once (killed: their peers see
  the connections reset); the reliability of each of the next broadcasts
  against what flooding the graph left could reach, and the virtual time
  until the overlay is connected again and a broadcast reaches every
  live node again;
- churn: a share of the nodes replaced per virtual minute (one crashes, a
  new one joins through a random live node): reliability and degrees.

The scenarios live in L{benchmarks.simscenarios}; this module turns them
into figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import resource
import sys
import time
from statistics import mean
from typing import Dict, List, Optional

from benchmarks.machine import rssBytes
from benchmarks.report import Figure, Results
from benchmarks.simscenarios import (
    SIM_CONFIG, WARMUP, OutOfTime, Progress, churn, formOverlay,
    massFailure, steadyState,
)

BENCHMARK = "sim"


def summarize(spreads) -> Dict[str, float]:
    """The mean figures of several broadcasts (L{Spread}s)."""
    if not spreads:
        return dict(reliability=math.nan, minReliability=math.nan,
                    payloadsPerDelivery=math.nan, rmr=math.nan,
                    lastHop=math.nan, maxLastHop=math.nan,
                    lastDelivery=math.nan, maxLastDelivery=math.nan)
    return dict(
        reliability=mean(s.reliability for s in spreads),
        minReliability=min(s.reliability for s in spreads),
        payloadsPerDelivery=mean(s.payloadsPerDelivery for s in spreads),
        rmr=mean(s.rmr for s in spreads),
        lastHop=mean(s.lastHop for s in spreads),
        maxLastHop=max(s.lastHop for s in spreads),
        lastDelivery=mean(s.lastDelivery for s in spreads) * 1000,
        maxLastDelivery=max(s.lastDelivery for s in spreads) * 1000)


def steadyFigures(size: int, seed: object, broadcasts: int, warmup: int,
                  progress: Progress, realLimit: Optional[float] = None
                  ) -> dict:
    """
    Form an overlay of C{size} nodes; broadcast over flooding, then over
    the tree.  Real time and memory come with it, apart.  Memory per node
    is the growth of RSS over the forming, divided by the nodes: their
    state and the simulated network that carries it (its transports stand
    in for a real node's sockets), not a record of the run (the overlay
    keeps none: see L{formOverlay}).

    @param realLimit: real seconds the forming may take at most (see
        L{formOverlay}).
    """
    started, rss = time.perf_counter(), rssBytes()
    overlay = formOverlay(size, seed, progress, realLimit=realLimit)
    formedReal, formedVirtual = time.perf_counter() - started, overlay.now
    memory = (rssBytes() - rss) / size
    spreads = steadyState(overlay, seed, broadcasts, warmup, progress)
    figures = {mode: summarize(got) for mode, got in spreads.items()}
    degrees = sorted(overlay.degrees().values())
    figures["overlay"] = dict(formed=formedVirtual, minDegree=degrees[0],
                              maxDegree=degrees[-1],
                              meanDegree=mean(degrees))
    figures["cost"] = dict(
        formReal=formedReal, real=time.perf_counter() - started,
        virtual=overlay.now, memoryPerNode=memory)
    return figures


def addConfig(results: Results, seed: object) -> None:
    """The simulated nodes' settings, the links' delays and the seed."""
    results.fact(BENCHMARK, "config", dict(
        SIM_CONFIG, delay="uniform 5-150 ms one way", seed=seed))


def addSteady(results: Results, size: int, figures: dict) -> None:
    tree, flood = figures["tree"], figures["flood"]
    label = f"sim {size:,} nodes"
    baseline = "flooding, same overlay"
    for name, key, unit, target in (
            ("reliability", "reliability", "share", dict(minValue=1.0)),
            ("lowest reliability", "minReliability", "share",
             dict(minValue=1.0)),
            ("payload transmissions per delivery", "payloadsPerDelivery",
             "msgs", dict(maxValue=1.05)),
            ("relative message redundancy", "rmr", "ratio", {}),
            ("last delivery hop, mean", "lastHop", "hops", {}),
            ("last delivery hop, max", "maxLastHop", "hops", {}),
            ("time to the last node, mean", "lastDelivery", "virtual-ms", {}),
            ("time to the last node, max", "maxLastDelivery", "virtual-ms",
             {})):
        results.add(Figure(BENCHMARK, f"{label}: tree broadcast {name}",
                           tree[key], unit, baseline, flood[key], **target))
    cost = figures["cost"]
    results.add(Figure(
        BENCHMARK, f"{label}: real seconds per virtual second",
        cost["real"] / cost["virtual"], "s/s", "the virtual clock", 1.0,
        note=f"{cost['real']:.0f} s real for {cost['virtual']:.0f} s "
             f"virtual; formed in {cost['formReal']:.0f} s real"))
    results.add(Figure(
        BENCHMARK, f"{label}: memory per node in the simulator",
        cost["memoryPerNode"] / 1024, "KiB", "the 100 KiB target", 100.0,
        maxRatio=1.0))
    overlay = figures["overlay"]
    results.add(Figure(BENCHMARK, f"{label}: highest degree",
                       overlay["maxDegree"], "peers", "maxPeers",
                       SIM_CONFIG["maxPeers"], maxRatio=1.0))
    results.fact(BENCHMARK, label, figures)


def addFailure(results: Results, size: int, fraction: float,
               figures: dict) -> None:
    how = "silently (power cut)" if figures["silent"] else "(killed)"
    label = f"sim {size:,} nodes, {fraction:.0%} crashed at once {how}"
    first = figures["probes"][0]
    results.add(Figure(
        BENCHMARK, f"{label}: reliability of the first broadcast",
        first["reliability"], "share",
        "what flooding the graph left could reach", first["reachable"]))
    worst = min(figures["probes"][:figures["listed"]],
                key=lambda p: p["reliability"])
    results.add(Figure(
        BENCHMARK, f"{label}: lowest reliability of the next "
                   f"{figures['listed']} broadcasts",
        worst["reliability"], "share",
        "what flooding the graph left could reach", worst["reachable"]))
    results.add(Figure(
        BENCHMARK, f"{label}: virtual time until reliability is 100 % again",
        figures["healed"], "virtual-s",
        "virtual time until the overlay is connected again",
        figures["connected"], note=f"{figures['real']:.0f} s real"))
    results.fact(BENCHMARK, label, figures)


def addChurn(results: Results, size: int, figures: dict) -> None:
    label = (f"sim {size:,} nodes, churn {figures['rate']:.0%} a virtual "
             f"minute for {figures['minutes']:g} min")
    results.add(Figure(
        BENCHMARK, f"{label}: broadcast reliability, mean",
        figures["reliability"], "share",
        "what flooding the graph could reach", figures["reachable"],
        minValue=1.0))
    results.add(Figure(
        BENCHMARK, f"{label}: broadcast reliability, lowest",
        figures["minReliability"], "share",
        "what flooding the graph could reach", figures["minReachable"]))
    results.add(Figure(
        BENCHMARK, f"{label}: highest degree", figures["maxDegree"], "peers",
        "maxPeers", SIM_CONFIG["maxPeers"], maxRatio=1.0))
    results.add(Figure(
        BENCHMARK, f"{label}: lowest degree of nodes up a minute or more",
        figures["minDegree"], "peers", "minPeers", SIM_CONFIG["minPeers"],
        note=f"{figures['real']:.0f} s real"))
    results.fact(BENCHMARK, label, figures)


def run(results: Results, size: dict,
        progress: Optional[Progress] = None) -> None:
    """
    Every scenario at the sizes of C{size}: C{steady} (node counts),
    C{broadcasts}, C{warmup}, C{failures} (fractions), C{failureSize},
    C{churnSize}, C{churnRate}, C{churnMinutes}, C{seed}.

    @param progress: where progress goes (printed every 5 s by default).
    """
    seed = size.get("seed", 1)
    progress = progress if progress is not None else Progress()
    addConfig(results, seed)
    for nodes in size["steady"]:
        progress.begin(f"steady state, {nodes:,} nodes", nodes)
        addSteady(results, nodes, steadyFigures(
            nodes, seed, size["broadcasts"], size["warmup"], progress))
    for silent in size.get("silent", (False, True)):
        for fraction in size["failures"]:
            nodes = size["failureSize"]
            progress.begin(f"{fraction:.0%} of {nodes:,} nodes crash"
                           f"{' silently' if silent else ''}", nodes)
            started = time.perf_counter()
            figures = massFailure(nodes, seed, fraction, progress, silent)
            figures["real"] = time.perf_counter() - started
            addFailure(results, nodes, fraction, figures)
    if size.get("churnMinutes"):
        nodes = size["churnSize"]
        progress.begin(f"churn, {nodes:,} nodes", nodes)
        started = time.perf_counter()
        figures = churn(nodes, seed, size["churnRate"], size["churnMinutes"],
                        progress)
        figures["real"] = time.perf_counter() - started
        addChurn(results, nodes, figures)


def deterministicFigures(results: Results) -> List[tuple]:
    """The figures of a run that depend on the seed alone (not on time)."""
    return [(f.name, f.value, f.baseline) for f in results.figures
            if "real seconds" not in f.name and "memory" not in f.name]


def main(argv=None) -> int:
    """
    ``python -m benchmarks.sim --nodes N [--profile PATH]``: one overlay of
    N nodes in steady state, with the real time and memory it took, and
    (with C{--profile}) where the time went.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sim",
        description="Form one simulated overlay and broadcast over it, "
                    "flooding then Plumtree; print its figures, real time "
                    "and memory.")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--real-limit", type=float, metavar="SECONDS",
                        help="stop forming after this much real time and "
                             "say how far it got")
    parser.add_argument("--profile", metavar="PATH",
                        help="run under cProfile, save the stats to PATH "
                             "and print the top functions")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the figures as 'python -m "
                             "benchmarks --json' does (for benchmarks.simplot)")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.broadcasts < 1:
        parser.error("--nodes must be at least 2 and --broadcasts at least 1")
    progress = Progress()
    progress.begin(f"steady state, {args.nodes:,} nodes", args.nodes)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    started, rss = time.perf_counter(), rssBytes()
    try:
        figures = steadyFigures(args.nodes, args.seed, args.broadcasts,
                                WARMUP, progress, args.real_limit)
    except OutOfTime as out:
        overlay = out.overlay
        progress.show(overlay, " (out of real time)", force=True)
        figures = dict(partial=dict(
            started=len(overlay.names), virtual=overlay.now,
            real=time.perf_counter() - started,
            components=len(overlay.components()),
            memoryPerNode=(rssBytes() - rss) / max(1, len(overlay.names))))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
        for order in ("tottime", "cumulative"):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats(
                order).print_stats(25)
            print(stream.getvalue())
    figures["peakRSS"] = resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(figures, indent=1))
    if args.json and "partial" not in figures:
        results = Results()
        addConfig(results, args.seed)
        addSteady(results, args.nodes, figures)
        results.dump(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

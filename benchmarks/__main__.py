"""
Run the benchmarks: ``python -m benchmarks [--quick] [--only NAME]``.

Each benchmark runs in a fresh Python process (so memory and file
descriptors of one do not weigh on the next); every figure is printed
beside its baseline and their ratio, then summed up in one table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time

from benchmarks import machine
from benchmarks.report import Results

BENCHMARKS = ["direct", "latency", "broadcast", "overlay", "processes",
              "attack", "tls", "signing", "sim", "console", "dht"]
# Run only when asked for by name: the network lab needs root, and starts
# dozens of processes.
ON_REQUEST = ["nat"]

# Sizes for each mode: full, --quick (about a minute) and --smoke (tests).
SIZES = {
    "full": dict(count=20000, rounds=2000, broadcast=[50, 200, 1000],
                 warmup=3, measured=10, overlay=1000, processes=30,
                 processRounds=5, tlsRounds=300,
                 attack=dict(nodes=5, broadcasts=20, interval=1.0,
                             timeout=20.0, ihave=4, peers=2, idle=48),
                 sim=dict(steady=[1000, 10000], broadcasts=20, warmup=3,
                          failures=[0.2, 0.4, 0.6, 0.8], failureSize=1000,
                          churnSize=1000, churnRate=0.01, churnMinutes=60),
                 console=dict(rounds=2000, warmup=100),
                 dht=dict(sizes=[100, 1000], lookups=200,
                          dhtOnly=[100, 1000, 10000]),
                 dhtSockets=dict(nodes=60, lookups=100),
                 nat=dict(group=10, stable=600.0)),
    "quick": dict(count=3000, rounds=300, broadcast=[20, 50], warmup=2,
                  measured=4, overlay=100, processes=8, processRounds=2,
                  tlsRounds=60,
                  attack=dict(nodes=5, broadcasts=8, interval=0.5,
                              timeout=10.0, ihave=2, peers=1, idle=24),
                  sim=dict(steady=[200], broadcasts=10, warmup=3,
                           failures=[0.2, 0.4, 0.6, 0.8], failureSize=200,
                           churnSize=200, churnRate=0.01, churnMinutes=10),
                  console=dict(rounds=300, warmup=30),
                  dht=dict(sizes=[100, 300], lookups=200,
                           dhtOnly=[100, 1000]),
                  dhtSockets=dict(nodes=30, lookups=40),
                  nat=dict(group=3)),
    "smoke": dict(count=300, rounds=40, broadcast=[10], warmup=1,
                  measured=2, overlay=20, processes=4, processRounds=1,
                  tlsRounds=10,
                  attack=dict(nodes=3, broadcasts=2, interval=1.0,
                              timeout=10.0, ihave=1, peers=1, idle=4),
                  sim=dict(steady=[30], broadcasts=3, warmup=2,
                           failures=[0.4], failureSize=30, churnSize=30,
                           churnRate=0.05, churnMinutes=2),
                  console=dict(rounds=20, warmup=5),
                  dht=dict(sizes=[20], lookups=20, dhtOnly=[50]),
                  dhtSockets=dict(nodes=8, lookups=4),
                  nat=dict(group=1)),
}


def parseArgs(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of p2poverlay, each against a baseline "
                    "measured in the same run.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="small sizes (about a minute on 2 cores)")
    size.add_argument("--smoke", action="store_true",
                      help="tiny sizes, to check that everything runs")
    parser.add_argument("--only", action="append",
                        choices=BENCHMARKS + ON_REQUEST,
                        metavar="NAME",
                        help="run only this benchmark (repeatable): "
                             + ", ".join(BENCHMARKS) + "; and, only by name, "
                             + ", ".join(ON_REQUEST) + " (root: the network lab)")
    parser.add_argument("--plot", metavar="PNG",
                        help="write the broadcast plot here (none by "
                             "default; docs/performance.png is the one "
                             "the docs show)")
    parser.add_argument("--sim-plots", metavar="DIR",
                        help="write the simulator's plots into DIR "
                             "(sim-steady.png, sim-failure.png, "
                             "sim-churn.png; docs/ holds the docs' ones)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 2 if a figure misses its "
                             "target")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every figure as JSON")
    parser.add_argument("--rst", metavar="PATH",
                        help="also write the figures as a reStructuredText "
                             "table")
    parser.add_argument("--profile", action="store_true",
                        help="run in this process under cProfile and print "
                             "the top functions")
    parser.add_argument("--in-process", action="store_true",
                        help=argparse.SUPPRESS)
    parser.add_argument("--bare-memory", nargs=2, type=int,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sizes(args) -> dict:
    return SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]


async def runInProcess(names, size: dict, results: Results) -> None:
    from benchmarks import (
        attack, broadcast, console_latency, dht, dhtsockets, direct,
        formation, multiprocess, signing, sim, tlscost,
    )
    for name in names:
        print(f"== {name}", flush=True)
        if name == "direct":
            await direct.throughput(results, [100, 1000], size["count"])
        elif name == "latency":
            await direct.latency(results, size["rounds"])
        elif name == "broadcast":
            await broadcast.run(results, size["broadcast"], size["warmup"],
                                size["measured"])
        elif name == "overlay":
            for plaintext in (True, False):
                await formation.run(results, size["overlay"],
                                    timeout=60 + size["overlay"] * 0.2,
                                    plaintext=plaintext)
        elif name == "processes":
            multiprocess.run(results, size["processes"],
                             size["processRounds"])
        elif name == "attack":
            attack.run(results, **size["attack"])
        elif name == "tls":
            await tlscost.run(results, size["count"], size["tlsRounds"])
        elif name == "signing":
            await signing.run(results, size["count"])
        elif name == "sim":
            sim.run(results, size["sim"])
        elif name == "console":
            console_latency.run(results, **size["console"])
        elif name == "dht":
            dht.run(results, **size["dht"])
            await dhtsockets.run(results, **size["dhtSockets"])
        elif name == "nat":
            from benchmarks import nat
            nat.run(results, **size["nat"])


def reactorRun(coroutineFunction) -> None:
    """Run an async function in the reactor; exit 1 if it fails."""
    from twisted.internet import task
    from twisted.internet.defer import ensureDeferred

    def main(reactor):
        return ensureDeferred(coroutineFunction())

    task.react(main)


def runChild(name: str, args) -> Results:
    """One benchmark in a fresh interpreter; its output goes straight through."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        command = [sys.executable, "-m", "benchmarks", "--in-process",
                   "--only", name, "--json", out]
        if args.quick:
            command.append("--quick")
        if args.smoke:
            command.append("--smoke")
        code = subprocess.call(command)
        if code != 0 or not os.path.exists(out):
            print(f"!! benchmark {name} failed (exit status {code})",
                  flush=True)
            return None
        return Results.load(out)


def summary(results: Results, info: dict, elapsed: float) -> None:
    print()
    print(f"Machine: {info['cpu']}, {info['cores']} cores; Python "
          f"{info['python']}, Twisted {info['twisted']}")
    print(f"All figures ({elapsed:.0f} s), each beside its baseline:")
    for figure in results.figures:
        print(figure.line())


def main(argv=None) -> int:
    args = parseArgs(argv)
    if args.bare_memory:
        from benchmarks.formation import bareMemory
        async def measure():
            print(await bareMemory(*args.bare_memory), flush=True)

        machine.raiseFileLimit()
        reactorRun(measure)  # does not return: task.react exits
    names = args.only or BENCHMARKS
    size = sizes(args)
    results = Results()
    started = time.perf_counter()
    info = machine.describe()
    if args.in_process or args.profile:
        profiler = cProfile.Profile() if args.profile else None

        async def everything():
            if profiler:
                profiler.enable()
            try:
                await runInProcess(names, size, results)
            finally:
                if profiler:
                    profiler.disable()
            if args.json:
                results.dump(args.json)
            if profiler:
                for order in ("cumulative", "tottime"):
                    stream = io.StringIO()
                    pstats.Stats(profiler, stream=stream).sort_stats(
                        order).print_stats(20)
                    print(stream.getvalue())

        reactorRun(everything)
        return 0
    print(f"p2poverlay benchmarks ({'smoke' if args.smoke else 'quick' if args.quick else 'full'}"
          f" sizes): {', '.join(names)}", flush=True)
    failed = []
    for name in names:
        got = runChild(name, args)
        if got is None:
            failed.append(name)
        else:
            results.merge(got)
    results.facts["machine"] = info
    summary(results, info, time.perf_counter() - started)
    if args.plot:
        from benchmarks.plot import plot
        plot(results, args.plot)
    if args.sim_plots:
        from benchmarks.simplot import writePlots
        writePlots(results.facts, args.sim_plots)
    if args.json:
        results.dump(args.json)
    if args.rst:
        from benchmarks.report import rstTable
        with open(args.rst, "w", encoding="utf-8") as f:
            f.write(rstTable(results.figures))
    return exitStatus(results, failed, args.strict)


def exitStatus(results, failed, strict: bool) -> int:
    """1 if a benchmark failed to run; 2 if strict and a target was missed."""
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    missed = [f.name for f in results.figures if f.met is False]
    if missed and strict:
        print(f"missed {len(missed)} target(s): {'; '.join(missed)}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

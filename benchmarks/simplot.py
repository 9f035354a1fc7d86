"""
The simulator's plots, from the JSON of a run
(``python -m benchmarks --only sim --json RESULTS.json``):
``python -m benchmarks.simplot RESULTS.json [--out docs]`` writes

- C{sim-steady.png}: at each steady-state size, Plumtree against flooding
  on the same overlay: payload transmissions per delivery, last delivery
  hop and time to the last node;
- C{sim-failure.png}: after each mass failure, the reliability of each
  broadcast against the virtual time since the crash, beside what
  flooding the graph left could reach, with the time the overlay was
  connected again and the time it healed marked;
- C{sim-churn.png}: under churn, reliability per virtual minute, and the
  band of degrees between the lowest and the highest with the nodes'
  minPeers and maxPeers.

A scenario missing from the JSON skips its plot (with a line saying so).
Scenarios are told apart by their figures, not by their labels.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Callable, Dict, List, Optional

BENCHMARK = "sim"
FILES = ("sim-steady.png", "sim-failure.png", "sim-churn.png")
MODES = (("tree", "Plumtree (tree)", "tab:blue"),
         ("flood", "flooding, same overlay", "tab:orange"))
FRACTION_COLOURS = ("tab:green", "tab:blue", "tab:purple", "tab:red")
# The target for the tree: payload transmissions per delivery.
TARGET_PAYLOADS = 1.05


def scenarios(facts: dict) -> Dict[str, list]:
    """
    The simulator's scenarios among a run's C{facts}, by kind: C{steady},
    C{failure} and C{churn}, each a list of (label, figures).
    """
    found: Dict[str, list] = {"steady": [], "failure": [], "churn": []}
    for label, figures in facts.get(BENCHMARK, {}).items():
        if not isinstance(figures, dict):
            continue
        if "tree" in figures and "flood" in figures:
            found["steady"].append((label, figures))
        elif "probes" in figures:
            found["failure"].append((label, figures))
        elif "timeline" in figures:
            found["churn"].append((label, figures))
    found["steady"].sort(key=lambda item: _size(item[0]))
    found["failure"].sort(key=lambda item: (item[1].get("silent", False),
                                            item[1].get("fraction", 0)))
    return found


def _size(label: str) -> int:
    """The node count in a label such as C{"sim 1,000 nodes"}."""
    words = label.split()
    digits = words[1].replace(",", "") if len(words) > 1 else ""
    return int(digits) if digits.isdigit() else 0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def plotSteady(plt, found: list, path: str) -> None:
    """Grouped bars per size, tree against flooding."""
    panels = (
        ("payloadsPerDelivery", None, "%.2f",
         "payload transmissions per delivery", "Payloads sent per delivery"),
        ("lastHop", "maxLastHop", "%.1f", "hops", "Last delivery hop"),
        ("lastDelivery", "maxLastDelivery", "%.0f", "virtual ms",
         "Time to the last node"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    names = [label.replace("sim ", "", 1) for label, _ in found]
    width = 0.38
    for ax, (key, maxKey, fmt, unit, title) in zip(axes, panels):
        for offset, (mode, legend, colour) in zip((-width / 2, width / 2),
                                                  MODES):
            xs = [index + offset for index in range(len(found))]
            values = [figures[mode][key] for _, figures in found]
            bars = ax.bar(xs, values, width, color=colour,
                          label=f"{legend} (mean)")
            ax.bar_label(bars, fmt=fmt, fontsize=8, label_type="center",
                         color="white")
            if maxKey:
                ax.plot(xs, [figures[mode][maxKey] for _, figures in found],
                        "_", color="black", markersize=18, mew=2,
                        label="highest of the broadcasts")
        ax.set_xticks(range(len(found)), names)
        ax.set(ylabel=unit, title=title)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].axhline(TARGET_PAYLOADS, color="red", linestyle="--",
                    linewidth=1, label=f"target: at most {TARGET_PAYLOADS:g}")
    _figureLegend(fig, axes.flat)
    fig.suptitle("Simulator, steady state: broadcasts one at a time from "
                 "random nodes, Plumtree against flooding on the same overlay")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(plt, fig, path)


def _figureLegend(fig, axes) -> None:
    """One legend below the panels, each label once."""
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center",
               ncol=4, fontsize=9)


def _times(figures: dict) -> str:
    """When the overlay was connected again and when it healed."""
    def at(key: str) -> str:
        value = figures.get(key)
        return f"{value:.0f} s" if _finite(value) else "never"
    return f"connected again {at('connected')}, healed {at('healed')}"


def plotFailure(plt, found: list, path: str) -> None:
    """One panel per crash fraction and kind (killed, silent)."""
    kinds = sorted({bool(figures.get("silent")) for _, figures in found})
    fractions = sorted({figures["fraction"] for _, figures in found})
    fig, axes = plt.subplots(len(kinds), len(fractions), squeeze=False,
                             sharey=True,
                             figsize=(3.5 * len(fractions) + 0.8,
                                      3.2 * len(kinds) + 1.0))
    for _, figures in found:
        row = kinds.index(bool(figures.get("silent")))
        column = fractions.index(figures["fraction"])
        ax = axes[row][column]
        colour = FRACTION_COLOURS[column % len(FRACTION_COLOURS)]
        probes = figures["probes"]
        sent = [p["sent"] for p in probes]
        ax.plot(sent, [p["reachable"] for p in probes], "-", color="grey",
                linewidth=2, alpha=0.6,
                label="what flooding the graph could reach")
        ax.plot(sent, [p["reliability"] for p in probes], "o-",
                color=colour, markersize=3, linewidth=1,
                label="reliability of the broadcast")
        for key, style, name in (("connected", ":", "overlay connected again"),
                                 ("healed", "--", "healed: 100 % again")):
            if _finite(figures.get(key)):
                ax.axvline(figures[key], color="black", linestyle=style,
                           linewidth=1, label=name)
        how = "silent (power cut)" if figures.get("silent") else "killed"
        ax.set_title(f"{figures['fraction']:.0%} crashed, {how}\n"
                     f"{_times(figures)}", fontsize=9)
        ax.set_ylim(-0.03, 1.05)
        ax.grid(True, alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("virtual s from the crash to the broadcast")
    for row in axes:
        row[0].set_ylabel("share of live nodes reached")
    _figureLegend(fig, axes.flat)
    size = _size(found[0][0])
    fig.suptitle("Simulator, mass failure"
                 f"{f' of {size:,} nodes' if size else ''}: reliability of "
                 "each broadcast after the crash")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(plt, fig, path)


def plotChurn(plt, found: list, config: dict, path: str) -> None:
    """Per churn run: reliability, degree band and nodes replaced."""
    fig, axes = plt.subplots(3, len(found), squeeze=False, sharex="col",
                             figsize=(8 * len(found), 8),
                             gridspec_kw=dict(height_ratios=(2, 2, 1)))
    for column, (label, figures) in enumerate(found):
        top, middle, bottom = (axes[row][column] for row in range(3))
        timeline = figures["timeline"]
        mids = [e["minute"] + 0.5 for e in timeline]
        top.plot(mids, [e["reachable"] for e in timeline], "-",
                 color="grey", linewidth=3, alpha=0.5,
                 label="what flooding the graph could reach, mean")
        top.plot(mids, [e["reliability"] for e in timeline], "o-",
                 color="tab:blue", label="reliability, mean")
        top.plot(mids, [e["minReliability"] for e in timeline], "v:",
                 color="tab:red", markersize=5, label="reliability, lowest")
        top.set(ylabel="share of linked\nnodes reached", ylim=(-0.03, 1.05),
                title=label.replace("sim ", "Simulator, ", 1)
                + "\nreliability of the broadcasts sent in each minute")
        top.legend(fontsize=8, loc="lower left")
        # Each minute's degrees span that minute, as stairs.
        edges = [e["minute"] for e in timeline] + [timeline[-1]["minute"] + 1]
        lows = [e["minDegree"] for e in timeline]
        highs = [e["maxDegree"] for e in timeline]
        middle.fill_between(edges, lows + lows[-1:], highs + highs[-1:],
                            step="post", color="tab:blue", alpha=0.3,
                            label="lowest (of nodes up 1 min or more) to "
                                  "highest degree")
        for key, style in (("minPeers", "--"), ("maxPeers", ":")):
            if key in config:
                middle.axhline(config[key], color="black", linestyle=style,
                               linewidth=1, label=f"{key} = {config[key]}")
        middle.set(ylabel="degree (peers)", ylim=(0, None))
        middle.legend(fontsize=8, loc="lower right")
        bottom.plot([0] + [e["minute"] + 1 for e in timeline],
                    [0] + [e["replaced"] for e in timeline], "-",
                    color="tab:green")
        bottom.set(xlabel="virtual minutes since the churn began",
                   ylabel="nodes replaced\nso far", ylim=(0, None))
        for ax in (top, middle, bottom):
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path)


def _save(plt, fig, path: str) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pyplot():
    """matplotlib's pyplot on the file-only backend; ImportError if absent."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def writePlots(facts: dict, directory: str,
               out: Callable[[str], None] = print) -> Optional[List[str]]:
    """
    Write the plots of the scenarios present in C{facts} into
    C{directory} (made if need be).

    @param out: where the one-line notes go.
    @return: the paths written, or None if matplotlib is not installed.
    """
    try:
        plt = pyplot()
    except ImportError:
        out("matplotlib is not installed (pip install '.[bench]'): "
            "no simulator plots written")
        return None
    found = scenarios(facts)
    config = facts.get(BENCHMARK, {}).get("config", {})
    os.makedirs(directory, exist_ok=True)
    written = []
    for (kind, draw), name in zip(
            (("steady", plotSteady), ("failure", plotFailure),
             ("churn", lambda plt, got, path: plotChurn(plt, got, config,
                                                        path))), FILES):
        path = os.path.join(directory, name)
        if not found[kind]:
            out(f"no {kind} scenario in the results: {path} not written")
            continue
        draw(plt, found[kind], path)
        out(f"plot written to {path}")
        written.append(path)
    return written


def main(argv=None) -> int:
    """
    ``python -m benchmarks.simplot RESULTS.json... [--out DIR]``: 0 if a plot
    was written, 1 if none was (matplotlib missing, no scenario).
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.simplot",
        description="Plot the simulator's scenarios from the JSON of "
                    "'python -m benchmarks --only sim --json RESULTS.json'.")
    parser.add_argument("results", metavar="RESULTS.json", nargs="+",
                        help="one run's JSON, or several (their scenarios "
                             "are plotted together)")
    parser.add_argument("--out", default="docs", metavar="DIR",
                        help="where the PNG files go (default: docs)")
    args = parser.parse_args(argv)
    facts: dict = {}
    for path in args.results:
        try:
            with open(path, encoding="utf-8") as f:
                more = json.load(f)["facts"]
            if not isinstance(more, dict):
                raise TypeError("facts is not an object")
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"cannot read {path}: {e!r}", file=sys.stderr)
            return 1
        for benchmark, values in more.items():
            if isinstance(values, dict):
                facts.setdefault(benchmark, {}).update(values)
    written = writePlots(facts, args.out)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())

"""The performance plot: broadcast cost and speed against N, tree vs flood."""

from __future__ import annotations

from benchmarks.report import Results


def plot(results: Results, path: str) -> bool:
    """Write the PNG; False (with a message) if there is nothing to plot."""
    series = results.facts.get("broadcast", {}).get("series")
    if not series:
        print(f"no broadcast results: {path} not written")
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed (pip install '.[bench]'): "
              f"{path} not written")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("tree", "o-"), ("flood", "s--")):
        points = sorted((s["n"], s) for s in series if s["mode"] == mode)
        ns = [n for n, _ in points]
        left.plot(ns, [s["payloadsPerDelivery"] for _, s in points], style,
                  label=mode)
        right.plot(ns, [s["timeToLast"] * 1e3 for _, s in points], style,
                   label=mode)
    left.set(xlabel="nodes (N)", ylabel="payload transmissions per delivery",
             title="Broadcast cost", xscale="log")
    right.set(xlabel="nodes (N)", ylabel="ms until the last node has it",
              title="Broadcast time", xscale="log")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot written to {path}")
    return True

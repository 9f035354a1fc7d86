"""
The benchmark command runs end to end (in its smallest mode) and prints
every figure beside its baseline and their ratio.  No timing is checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIGURE = re.compile(
    r"^  (?P<name>.+?): (?P<value>[-\d.,e+]+|nan|inf) (?P<unit>\S+)"
    r" \| baseline (?P<baseline>.+?): (?:[-\d.,e+]+|nan|inf) (?P=unit)"
    r" \| ratio (?P<ratio>[-\d.]+|inf|nan)")


def test_benchmark_command_prints_every_figure_with_baseline_and_ratio(tmp_path):
    results = tmp_path / "results.json"
    plot = tmp_path / "plot.png"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json",
         str(results), "--plot", str(plot)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    figures = json.loads(results.read_text())["figures"]
    benchmarks = {f["benchmark"] for f in figures}
    assert benchmarks == {"direct", "latency", "broadcast", "overlay",
                          "processes", "attack", "tls", "signing",
                          "sim", "console", "dht"}, benchmarks
    summary = out[out.index("All figures"):]
    printed = {m.group("name"): m for m in
               map(FIGURE.match, summary.splitlines()) if m}
    for figure in figures:
        assert figure["name"] in printed, (figure["name"], summary)
        assert figure["baselineName"] == printed[figure["name"]]["baseline"]
    # Every benchmark the brief asks for, and the facts the docs rely on.
    names = " ".join(f["name"] for f in figures)
    for expected in ("direct messages, 100 B body",
                     "direct messages, 1000 B body", "p50", "p99",
                     "payload transmissions per delivery",
                     "bytes per delivery", "time until the last node",
                     "delivery", "time to form", "max degree", "diameter",
                     "memory per node", "broadcast reached"):
        assert expected in names, expected
    assert "rate limit lifted" in out
    # Under attack, each against the same overlay not under attack.
    attack = {f["name"]: f for f in figures if f["benchmark"] == "attack"}
    for name in ("under attack: honest broadcast time to all, p50",
                 "under attack: honest broadcast time to all, max",
                 "under attack: honest broadcast reached",
                 "under attack: victim RSS (peak)"):
        assert attack[name]["baselineName"] == "not under attack", name
        assert printed[name]["ratio"] not in ("nan", "inf"), printed[name]
    assert attack["under attack: victim RSS (peak)"]["baseline"] > 0
    # The flood did arrive: the attacker sent lines and the victim read them.
    assert attack["under attack: attacker sent"]["value"] > 0
    read = json.loads(results.read_text())["facts"]["attack"]
    assert read["under attack"]["messages_in"].get("IHAVE", 0) > 0
    assert read["under attack"]["messages_in"].get("PEERS", 0) > 0
    assert read["attacker"]["idle"]["connected"] > 0
    # What TLS costs, against plaintext and against bare pyOpenSSL.
    tls = {f["name"]: f for f in figures if f["benchmark"] == "tls"}
    assert tls["direct messages over TLS, 100 B body"]["baselineName"] == \
        "the same in plaintext"
    assert tls["CPU to set up a verified link (both ends)"]["baseline"] > 0
    handshake = tls["TLS handshake CPU per side (node link over TLS less in "
                    "plaintext, halved)"]
    assert handshake["baselineName"].startswith("bare pyOpenSSL TLS 1.3")
    assert handshake["maxRatio"] == 1.3 and handshake["baseline"] > 0
    memory = tls["memory per node link end over TLS"]
    assert memory["baselineName"].startswith("bare Twisted TLS")
    assert memory["maxRatio"] == 1.3 and memory["baseline"] > 0
    assert "memory per node link end in plaintext" in tls
    # Console to console, each against the bare relay of its kind in the
    # same run (the target), and TLS against the plaintext relay too.
    console = {f["name"]: f for f in figures if f["benchmark"] == "console"}
    for name, relay, target in (
            ("over TLS", "TLS", 1.2),
            ("over TLS against the plaintext relay", "TCP", None),
            ("in plaintext", "TCP", 1.2)):
        for label in ("p50", "p90", "p99"):
            figure = console[f"console to console latency, nodes "
                             f"{name}, {label}"]
            assert figure["baselineName"] == \
                f"bare Twisted stdin-{relay}-stdout relay, {label}"
            assert figure["baseline"] > 0 and figure["value"] > 0
            assert figure["maxRatio"] == target
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "not written" in out
    else:
        assert plot.read_bytes().startswith(b"\x89PNG")


def test_strict_exits_2_on_a_missed_target_and_failed_runs_1(capsys):
    from benchmarks.__main__ import exitStatus
    from benchmarks.report import Figure, Results
    met = Figure("direct", "fast", 2.0, "msg/s", "bare", 1.0, minRatio=0.5)
    missed = Figure("direct", "slow", 0.1, "msg/s", "bare", 1.0, minRatio=0.5)
    results = Results()
    results.add(met)
    assert exitStatus(results, [], strict=True) == 0
    results.add(missed)
    assert exitStatus(results, [], strict=False) == 0
    assert exitStatus(results, [], strict=True) == 2
    assert "missed 1 target(s): slow" in capsys.readouterr().out
    assert exitStatus(results, ["overlay"], strict=True) == 1


def test_the_attacker_sends_valid_lines_that_fit():
    from benchmarks.attacker import PEERS_ENTRIES, ihaveLine, peersLine
    from p2poverlay.config import NodeConfig
    from p2poverlay.message import MAX_IDS, IHave, P2PMessage, Peers
    limit = NodeConfig().maxLineLength
    ihave, peers = ihaveLine(), peersLine()
    for line in (ihave, peers):
        assert line.endswith(b"\n") and len(line) <= limit, len(line)
    first = P2PMessage.decode(ihave[:-1])
    assert isinstance(first, IHave) and len(set(first.ids)) == MAX_IDS
    assert not set(first.ids) & set(P2PMessage.decode(ihaveLine()[:-1]).ids)
    made = P2PMessage.decode(peers[:-1])
    assert isinstance(made, Peers) and len(made.peers) == PEERS_ENTRIES
    assert all(p.host.startswith("127.") and p.host != "127.0.0.1"
               for p in made.peers)


def test_formation_spreads_nodes_over_enough_workers_for_their_files():
    from benchmarks.formation import FILE_SHARE, descriptorsPerNode, workersFor
    from p2poverlay.config import NodeConfig
    config = NodeConfig()
    assert workersFor(20, config, 20000) == 2, "one per core at least"
    workers = workersFor(1000, config, 20000)
    assert workers == 4
    perWorker = -(-1000 // workers)
    assert perWorker * descriptorsPerNode(config) <= FILE_SHARE * 20000
    assert workersFor(1000, config, 1 << 20) == 2

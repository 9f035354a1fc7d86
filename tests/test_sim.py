"""
The simulator (C{python -m benchmarks --only sim}) and what it measures a
broadcast by: the same seed gives the same figures, and hops, payloads,
reliability and redundancy come out as counted by hand on small graphs.
No timing is checked.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import sim
from benchmarks.report import Results
from benchmarks.simscenarios import OutOfTime, Progress, formOverlay
from p2poverlay.config import NodeConfig
from p2poverlay.memnet import FixedDelay, MemoryOverlay
from p2poverlay.memnet.broadcasts import (
    Probe, hops, payloadsSent, reachable, setBroadcastMode,
)

TINY = dict(steady=[12], broadcasts=2, warmup=1, failures=[0.5],
            failureSize=12, churnSize=12, churnRate=0.1, churnMinutes=1,
            seed=4)


def runSim(size: dict, lines: list) -> Results:
    results = Results()
    sim.run(results, size, Progress(every=0.0, out=lines.append))
    return results


def test_sameSeedGivesTheSameFigures():
    first, second = [], []
    a = sim.deterministicFigures(runSim(TINY, first))
    b = sim.deterministicFigures(runSim(TINY, second))
    assert a == b
    names = [name for name, _, _ in a]
    for expected in ("tree broadcast reliability",
                     "tree broadcast payload transmissions per delivery",
                     "tree broadcast relative message redundancy",
                     "tree broadcast last delivery hop, max",
                     "tree broadcast time to the last node, max",
                     "50% crashed at once (killed): reliability of the first",
                     "50% crashed at once silently (power cut): reliability",
                     "until reliability is 100 % again",
                     "churn 10% a virtual minute for 1 min: broadcast "
                     "reliability, mean", "highest degree"):
        assert any(expected in name for name in names), expected
    # Progress: nodes up, virtual and real time, while it runs.
    assert any("nodes up" in line and "virtual" in line and "real" in line
               for line in first)
    # Flooding is the baseline of every steady-state tree figure.
    results = runSim(dict(TINY, failures=[], churnMinutes=0), [])
    tree = [f for f in results.figures if "tree broadcast" in f.name]
    assert tree and all(f.baselineName == "flooding, same overlay"
                        for f in tree)
    flood = {f.name: f.baseline for f in tree}
    assert flood["sim 12 nodes: tree broadcast payload transmissions per "
                 "delivery"] > 1


def chain(count: int, **settings) -> MemoryOverlay:
    """Nodes n0 - n1 - ... each linked to the one before only."""
    overlay = MemoryOverlay(seed=2, delay=FixedDelay(0.01), config=NodeConfig(
        minPeers=1, maxPeers=2, autoConnect=False, **settings))
    overlay.addNode()
    for index in range(1, count):
        overlay.addNode([f"n{index - 1}"])
        overlay.run(1)
    overlay.run(2)
    return overlay


def test_hopsAndPayloadsAlongAChain():
    overlay = chain(4)
    assert overlay.graph() == {"n0": {"n1"}, "n1": {"n0", "n2"},
                               "n2": {"n1", "n3"}, "n3": {"n2"}}
    probe = Probe.start(overlay, "n0", "along")
    overlay.run(2)
    assert hops(overlay, probe.message_id, "n0") == \
        {"n0": 0, "n1": 1, "n2": 2, "n3": 3}
    spread = probe.spread(overlay)
    assert (spread.expected, spread.delivered, spread.payloads,
            spread.lastHop) == (3, 3, 3, 3)
    assert spread.reliability == 1.0 and spread.rmr == 0.0
    assert spread.lastDelivery == pytest.approx(0.03)


def test_floodingATriangleSendsEachPayloadTwice():
    overlay = chain(3)
    overlay.node("n2").join(overlay.host("n0"), 9000)
    overlay.run(2)
    assert overlay.degrees() == {"n0": 2, "n1": 2, "n2": 2}
    setBroadcastMode(overlay, "flood")
    before = payloadsSent(overlay)
    probe = Probe.start(overlay, "n0", "round")
    assert probe.payloadsBefore == before
    overlay.run(2)
    spread = probe.spread(overlay)
    # n0 to both; each of n1 and n2 on to the other.
    assert spread.payloads == 4 and spread.payloadsPerDelivery == 2.0
    assert spread.rmr == 1.0 and spread.lastHop == 1


def test_reliabilityCountsTheNodesCutOff():
    overlay = chain(4)
    overlay.crash("n2")
    overlay.run(1)
    assert reachable(overlay, "n0") == 1
    probe = Probe.start(overlay, "n0", "cut")
    overlay.run(2)
    spread = probe.spread(overlay)
    assert (spread.expected, spread.delivered) == (2, 1)
    assert spread.reliability == 0.5
    nobody = Probe.start(overlay, "n3", "alone").spread(overlay, among=["n3"])
    assert nobody.expected == 0 and nobody.reliability == 1.0
    assert math.isnan(nobody.payloadsPerDelivery)


def test_broadcastModeIsTreeOrFlood():
    overlay = chain(2)
    with pytest.raises(ValueError, match="'tree' or 'flood'"):
        setBroadcastMode(overlay, "gossip")
    setBroadcastMode(overlay, "flood")
    assert overlay.node("n0").broadcaster.tree is False
    setBroadcastMode(overlay, "tree")
    assert overlay.node("n0").broadcaster.tree is True


def test_commandRefusesATinyOverlay(capsys):
    with pytest.raises(SystemExit) as exited:
        sim.main(["--nodes", "1"])
    assert exited.value.code == 2
    assert "--nodes must be at least 2" in capsys.readouterr().err


def test_formingStopsWhenItsRealTimeIsUp():
    lines: list = []
    with pytest.raises(OutOfTime) as out:
        formOverlay(40, 1, Progress(every=0.0, out=lines.append),
                    realLimit=0.0)
    assert 0 < len(out.value.overlay.names) < 40
    assert lines and "nodes up" in lines[-1]

"""
The simulator's plots (C{python -m benchmarks.simplot}) from a run's JSON,
and the churn timeline they draw.  No timing is checked.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import sim
from benchmarks.report import Results
from benchmarks.simplot import FILES, scenarios, writePlots
from benchmarks.simscenarios import SIM_CONFIG, Progress, churn

ROOT = Path(__file__).resolve().parent.parent
# Each scenario, killed and silent, at a size that runs in seconds.
SMALL = dict(steady=[12], broadcasts=2, warmup=1, failures=[0.5],
             failureSize=12, churnSize=12, churnRate=0.1, churnMinutes=2,
             seed=4)


def quiet() -> Progress:
    return Progress(every=1e9, out=lambda line: None)


@pytest.fixture(scope="module")
def resultsFile(tmp_path_factory) -> Path:
    results = Results()
    sim.run(results, SMALL, quiet())
    path = tmp_path_factory.mktemp("sim") / "results.json"
    results.dump(str(path))
    return path


def simplot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.simplot", *args],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=50)


def test_churnTimelineHasOneEntryPerMinuteAddingUpToTheRun():
    figures = churn(16, 3, rate=0.1, minutes=2.5, progress=quiet())
    timeline = figures["timeline"]
    assert [entry["minute"] for entry in timeline] == [0, 1, 2]
    assert sum(e["broadcasts"] for e in timeline) == figures["broadcasts"]
    # A broadcast every 10 s: six a minute, three in the last half minute.
    assert [e["broadcasts"] for e in timeline] == [6, 6, 3]
    replaced = [e["replaced"] for e in timeline]
    assert replaced == sorted(replaced) and replaced[-1] == figures["replaced"]
    assert replaced[0] > 0
    assert min(e["minReliability"] for e in timeline) == \
        figures["minReliability"]
    assert min(e["minReachable"] for e in timeline) == figures["minReachable"]
    assert max(e["maxDegree"] for e in timeline) == figures["maxDegree"]
    assert min(e["minDegree"] for e in timeline) == figures["minDegree"]
    mean = sum(e["reliability"] * e["broadcasts"] for e in timeline) \
        / figures["broadcasts"]
    assert math.isclose(mean, figures["reliability"])
    for entry in timeline:
        assert 0 <= entry["minReliability"] <= entry["reliability"] <= 1
        assert entry["minDegree"] <= entry["maxDegree"] \
            <= SIM_CONFIG["maxPeers"]
    assert churn(16, 3, rate=0.1, minutes=2.5, progress=quiet()) == figures


def test_theThreePlotsAreWrittenFromARunsJSON(resultsFile, tmp_path):
    pytest.importorskip("matplotlib")
    facts = json.loads(resultsFile.read_text())["facts"]
    found = scenarios(facts)
    assert [len(found[kind]) for kind in ("steady", "failure", "churn")] \
        == [1, 2, 1]
    done = simplot(str(resultsFile), "--out", str(tmp_path / "plots"))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in FILES:
        path = tmp_path / "plots" / name
        assert path.read_bytes().startswith(b"\x89PNG"), name
        assert f"plot written to {path}" in done.stdout
    assert "not written" not in done.stdout


def test_aMissingScenarioSkipsItsPlotWithOneLine(resultsFile, tmp_path):
    pytest.importorskip("matplotlib")
    facts = json.loads(resultsFile.read_text())["facts"]
    facts["sim"] = {label: figures for label, figures in facts["sim"].items()
                    if "churn" not in label and "crashed" not in label}
    lines: list = []
    written = writePlots(facts, str(tmp_path), out=lines.append)
    assert written == [str(tmp_path / "sim-steady.png")]
    assert lines[1:] == [
        f"no failure scenario in the results: {tmp_path / FILES[1]} "
        "not written",
        f"no churn scenario in the results: {tmp_path / FILES[2]} "
        "not written"]
    assert not (tmp_path / FILES[2]).exists()
    # Nothing of the simulator at all: nothing written, status 1.
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"figures": [], "facts": {}}))
    done = simplot(str(empty), "--out", str(tmp_path / "none"))
    assert done.returncode == 1
    assert done.stdout.count("not written") == 3 and not done.stderr


def test_withoutMatplotlibOneLineAndStatus1(resultsFile, tmp_path):
    hide = ("import sys; sys.modules['matplotlib'] = None; "
            "from benchmarks.simplot import main; "
            f"sys.exit(main([{str(resultsFile)!r}, '--out', "
            f"{str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", hide], cwd=ROOT,
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "matplotlib is not installed (pip install '.[bench]'): no "
        "simulator plots written"]
    assert not done.stderr and not list(tmp_path.iterdir())


def test_unreadableResultsOneLineAndStatus1(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for path in (bad, tmp_path / "absent.json"):
        done = simplot(str(path), "--out", str(tmp_path / "out"))
        assert done.returncode == 1
        assert len(done.stderr.splitlines()) == 1
        assert done.stderr.startswith(f"cannot read {path}")


def test_benchmarkCommandWritesThePlotsWithSimPlots(tmp_path):
    pytest.importorskip("matplotlib")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "sim",
         "--sim-plots", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=55)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name

"""
An overlay of real ``twistd -n p2p`` processes under attack, against the
same overlay not under attack, in the same run.

One node, the victim, is the seed the others join.  An honest node
broadcasts, and the figures are the time until every other node printed
the broadcast and the victim's resident memory: first with no attack,
then while L{benchmarks.attacker} (a process of its own, from distinct
127.0.0.x addresses) floods the victim with ``IHAVE`` and ``PEERS`` and
holds idle connections to it.  The victim serves its JSON API on loopback,
so what it read and whom it closed come from its own metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from benchmarks.multiprocess import BANNER, SOURCE_ROOT, Child, waitFormed
from benchmarks.report import Figure, Results
from p2poverlay.config import NodeConfig

NAME = "attack"
MiB = 1024 * 1024


def freePort() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rssOf(pid: int) -> int:
    """The resident set size of process C{pid} in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpuSecondsOf(pid: int) -> float:
    """User and system CPU time process C{pid} has used (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            # The command name, in parentheses, may hold spaces.
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakRSS:
    """Samples a process's RSS every 50 ms in a thread and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rssOf(pid)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, rssOf(self.pid))

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


class WebAPI:
    """The victim's JSON API on loopback."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/"

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=10) as answer:
            return json.load(answer)

    def metrics(self) -> dict:
        return self.get("metrics")

    def connectedIds(self) -> List[str]:
        return [p["node_id"] for p in self.get("peers")["peers"]
                if p["state"] == "connected"]


def difference(after: Dict[str, int], before: Dict[str, int]) -> Dict[str, int]:
    """Counters that grew from C{before} to C{after}, by how much."""
    grown = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in grown.items() if v}


@dataclass
class Phase:
    """What one phase measured."""

    times: List[float] = field(default_factory=list)  # rounds that reached all
    reached: List[int] = field(default_factory=list)
    seconds: float = 0.0
    cpuSeconds: float = 0.0  # the victim's
    peakRSS: int = 0
    messagesIn: Dict[str, int] = field(default_factory=dict)
    bytesIn: Dict[str, int] = field(default_factory=dict)
    disconnects: Dict[str, int] = field(default_factory=dict)

    def linesPerSecond(self) -> float:
        return sum(self.messagesIn.values()) / self.seconds

    def time(self, which: str) -> float:
        if not self.times:
            return float("nan")
        if which == "p50":
            return statistics.median(self.times) * 1e3
        return max(self.times) * 1e3


def measure(children: List[Child], origin: Child, victim: Child,
            api: WebAPI, broadcasts: int, interval: float,
            timeout: float) -> Phase:
    """
    C{broadcasts} broadcasts from C{origin}, one every C{interval} seconds
    (or as soon as the last one reached every node or timed out), while the
    victim's RSS is sampled.
    """
    phase = Phase()
    others = [c for c in children if c is not origin]
    before = api.metrics()
    sampler = PeakRSS(victim.proc.pid)
    cpuBefore = cpuSecondsOf(victim.proc.pid)
    started = time.monotonic()
    try:
        for r in range(broadcasts):
            roundStart = time.monotonic()
            token = f"bench-attack-{r}-{time.time_ns()}"
            pattern = re.compile(re.escape(token))
            marks = [c.mark() for c in others]
            sent = origin.type(f"broadcast {token}")
            arrivals = []
            for child, mark in zip(others, marks):
                left = sent + timeout - time.perf_counter()
                try:
                    arrivals.append(child.waitFor(pattern, mark, left)[1])
                except RuntimeError:
                    pass
            phase.reached.append(len(arrivals))
            if len(arrivals) == len(others):
                phase.times.append(max(arrivals) - sent)
            # Pacing, so that both phases last about as long.
            time.sleep(max(0.0, roundStart + interval - time.monotonic()))
    finally:
        phase.peakRSS = sampler.stop()
    phase.seconds = time.monotonic() - started
    phase.cpuSeconds = cpuSecondsOf(victim.proc.pid) - cpuBefore
    after = api.metrics()
    phase.messagesIn = difference(after["messages_in"], before["messages_in"])
    phase.bytesIn = difference(after["bytes_in"], before["bytes_in"])
    phase.disconnects = difference(after["disconnects"], before["disconnects"])
    return phase


class AttackerProcess:
    """L{benchmarks.attacker} in a child process, stopped by its pid."""

    def __init__(self, port: int, ihave: int, peers: int, idle: int,
                 seconds: float) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = SOURCE_ROOT
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.attacker", str(port),
             "--ihave", str(ihave), "--peers", str(peers), "--idle",
             str(idle), "--seconds", str(seconds)],
            stdout=subprocess.PIPE, env=env, text=True)
        self.lines: List[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.strip())
                self.changed.notify_all()

    def waitReady(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while "ready" not in self.lines:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise RuntimeError("the attacker did not get going")
                self.changed.wait(min(remaining, 0.5))

    def stop(self) -> Optional[dict]:
        """SIGTERM, then SIGKILL if need be; what it reported, if it did."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(5)
        reports = [json.loads(line) for line in self.lines
                   if line.startswith("{")]
        return reports[-1] if reports else None


def started(child: Child) -> None:
    """Wait for C{child}'s banner; note its port and node id."""
    match = child.waitFor(BANNER)[2]
    child.port, child.nodeId = int(match["port"]), match["id"]


def run(results: Results, nodes: int, broadcasts: int, interval: float,
        timeout: float, ihave: int, peers: int, idle: int) -> None:
    """
    Measure C{broadcasts} honest broadcasts in an overlay of C{nodes}
    processes, without and then with the attack, and add the figures.

    @param ihave: connections flooding the victim with IHAVE.
    @param peers: connections flooding the victim with PEERS.
    @param idle: idle connections held to the victim.
    """
    children: List[Child] = []
    attacker: Optional[AttackerProcess] = None
    sent: Optional[dict] = None
    workdir = tempfile.mkdtemp(prefix="p2p-bench-attack-")
    try:
        webPort = freePort()
        victim = Child("victim", workdir, None,
                       ["--web", f"tcp:{webPort}:interface=127.0.0.1"])
        children.append(victim)
        started(victim)
        for i in range(1, nodes):
            children.append(Child(f"node{i}", workdir, victim.port))
        for child in children[1:]:
            started(child)
        want = min(NodeConfig().minPeers, nodes - 1)
        formTime = waitFormed(children, want, 60.0)
        api = WebAPI(webPort)
        origin = children[-1]
        honest = {c.nodeId for c in children[1:]}
        print(f"  {nodes} twistd processes (the victim is the seed); every "
              f"one has at least {want} peers after {formTime:.1f} s",
              flush=True)
        calm = measure(children, origin, victim, api, broadcasts, interval,
                       timeout)
        honestBefore = len(honest.intersection(api.connectedIds()))
        attacker = AttackerProcess(
            victim.port, ihave, peers, idle,
            seconds=broadcasts * (interval + timeout) + 30)
        attacker.waitReady(30.0)
        print(f"  attacking: {ihave} IHAVE and {peers} PEERS flooders, "
              f"{idle} idle connections", flush=True)
        stormy = measure(children, origin, victim, api, broadcasts,
                         interval, timeout)
        honestAfter = len(honest.intersection(api.connectedIds()))
        sent = attacker.stop()
        attacker = None
    finally:
        if attacker is not None:
            attacker.stop()
        for child in children:
            child.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    if sent is None:
        raise RuntimeError("the attacker reported nothing")
    report(results, nodes, broadcasts, calm, stormy, sent,
           honestBefore, honestAfter)


def report(results: Results, nodes: int, broadcasts: int, calm: Phase,
           stormy: Phase, sent: dict, honestBefore: int,
           honestAfter: int) -> None:
    others = nodes - 1
    note = (f"{nodes} twistd processes, {broadcasts} broadcasts each; "
            f"rounds that reached all: {len(stormy.times)} under attack, "
            f"{len(calm.times)} not")
    for which in ("p50", "max"):
        results.add(Figure(
            NAME, f"under attack: honest broadcast time to all, {which}",
            stormy.time(which), "ms", "not under attack", calm.time(which),
            note=note))
    results.add(Figure(
        NAME, "under attack: honest broadcast reached",
        100.0 * min(stormy.reached) / others, "%", "not under attack",
        100.0 * min(calm.reached) / others, note="worst round"))
    results.add(Figure(
        NAME, "under attack: victim RSS (peak)", stormy.peakRSS / MiB, "MiB",
        "not under attack", calm.peakRSS / MiB, note="VmRSS every 50 ms"))
    results.add(Figure(
        NAME, "under attack: victim CPU", 100.0 * stormy.cpuSeconds
        / stormy.seconds, "%", "not under attack",
        100.0 * calm.cpuSeconds / calm.seconds, note="of one core"))
    results.add(Figure(
        NAME, "under attack: lines the victim read", stormy.linesPerSecond(),
        "msg/s", "not under attack", calm.linesPerSecond()))
    messages = sum(t["messages"] for t in sent.values())
    volume = sum(t["bytes"] for t in sent.values())
    results.add(Figure(
        NAME, "under attack: attacker sent", messages / stormy.seconds,
        "msg/s", "honest lines the victim read, not under attack",
        calm.linesPerSecond(),
        note=f"{messages:,} IHAVE and PEERS lines, {volume / MiB:,.0f} MiB "
             f"in {stormy.seconds:.1f} s"))
    tried = sum(t["attempts"] for t in sent.values())
    turned = sum(t["closedByVictim"] + t["failed"] for t in sent.values())
    results.add(Figure(
        NAME, "under attack: attacker connections the victim closed or "
        "refused", turned, "conn", "attacker connections tried", tried,
        note=", ".join(f"{kind}: {t['closedByVictim'] + t['failed']} of "
                       f"{t['attempts']}" for kind, t in sent.items())))
    results.add(Figure(
        NAME, "under attack: victim's honest peers at the end",
        honestAfter, "peers", "before the attack", honestBefore))
    for label, phase in (("not under attack", calm), ("under attack", stormy)):
        results.fact(NAME, label, {
            "seconds": phase.seconds, "cpu_seconds": phase.cpuSeconds,
            "times": phase.times,
            "reached": phase.reached, "peak_rss": phase.peakRSS,
            "messages_in": phase.messagesIn, "bytes_in": phase.bytesIn,
            "disconnects": phase.disconnects})
    results.fact(NAME, "attacker", sent)
    print(f"  the victim read under attack: {stormy.messagesIn}; closed: "
          f"{stormy.disconnects}", flush=True)

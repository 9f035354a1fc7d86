"""
Real ``twistd -n p2p`` processes on this machine, driven through their
consoles: a broadcast from one reaches all the others, against a direct
message between two of them.  Every child is killed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import p2poverlay
from benchmarks.report import Figure, Results
from p2poverlay.config import NodeConfig

SOURCE_ROOT = str(Path(p2poverlay.__file__).resolve().parent.parent)
BANNER = re.compile(r"^node (?P<id>(?:[0-9a-f]{32}){1,2}) listening on [^ ]+:(?P<port>\d+);")
INFO = re.compile(r"^node (?:[0-9a-f]{32}){1,2} .* listening on \S+, (?P<peers>\d+) peers?$")
DEADLINE = 60.0


def twistdCommand() -> List[str]:
    beside = Path(sys.executable).parent / "twistd"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("twistd")
    if found:
        return [found]
    return [sys.executable, "-c",
            "import sys; from twisted.scripts.twistd import run; "
            "sys.argv[0] = 'twistd'; run()"]


class PipedProcess:
    """
    One program with its standard input and output on pipes; every line
    it prints is timestamped as it is read.
    """

    def __init__(self, name: str, cwd: str, command: Sequence[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = SOURCE_ROOT
        env["PYTHONUNBUFFERED"] = "1"
        self.name = name
        self.proc = subprocess.Popen(
            list(command), cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.lines: List[Tuple[float, str]] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = 0
        self.nodeId = ""

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.changed:
                self.lines.append((time.perf_counter(), line))
                self.changed.notify_all()

    def waitFor(self, regex: re.Pattern, start: int = 0,
                timeout: float = DEADLINE) -> Tuple[int, float, re.Match]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for index in range(start, len(self.lines)):
                    match = regex.search(self.lines[index][1])
                    if match:
                        return index, self.lines[index][0], match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(line for _, line in self.lines[-20:])
                    raise RuntimeError(
                        f"{self.name}: no line matching {regex.pattern!r}"
                        f"\n{tail}")
                self.changed.wait(min(remaining, 0.5))

    def mark(self) -> int:
        with self.changed:
            return len(self.lines)

    def type(self, line: str) -> float:
        """Type C{line} at the console; return when, taken before writing."""
        # Not after: the write releases the GIL, and a reader thread may
        # timestamp the answer before this thread gets it back.
        typed = time.perf_counter()
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return typed

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class Child(PipedProcess):
    """One twistd node with a console on pipes; lines are timestamped."""

    def __init__(self, name: str, cwd: str, join: Optional[int],
                 extra: Sequence[str] = (),
                 twistdOptions: Sequence[str] = ()) -> None:
        """
        @param extra: options of the node, after C{p2p}.
        @param twistdOptions: options of twistd itself, before C{p2p}.
        """
        args = ["-n", *twistdOptions, "p2p", "--port",
                "tcp:0:interface=127.0.0.1", "--data-dir", ""]
        if join is not None:
            args += ["--join", f"127.0.0.1:{join}"]
        args += extra
        super().__init__(name, cwd, twistdCommand() + args)

    def peerCount(self) -> int:
        start = self.mark()
        self.type("info")
        return int(self.waitFor(INFO, start)[2].group("peers"))


def waitFormed(children: List[Child], want: int, timeout: float) -> float:
    start = time.monotonic()
    while True:
        counts = [c.peerCount() for c in children]
        if min(counts) >= want:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"overlay did not form: peer counts {counts}")
        time.sleep(0.25)


def run(results: Results, count: int, rounds: int) -> None:
    children: List[Child] = []
    workdir = tempfile.mkdtemp(prefix="p2p-bench-")
    try:
        seed = Child("node0", workdir, None)
        children.append(seed)
        seed.port = int(seed.waitFor(BANNER)[2].group("port"))
        for i in range(1, count):
            children.append(Child(f"node{i}", workdir, seed.port))
        for child in children[1:]:
            child.port = int(child.waitFor(BANNER)[2].group("port"))
        want = min(NodeConfig().minPeers, count - 1)
        formTime = waitFormed(children, want, 120.0)
        print(f"  {count} twistd processes; every one has at least {want} "
              f"peers after {formTime:.1f} s", flush=True)
        origin, other = children[0], children[-1]
        broadcastTimes, directTimes, reached = [], [], []
        for r in range(rounds):
            token = f"bench-direct-{r}-{time.time_ns()}"
            start = other.mark()
            sent = origin.type(f"send 127.0.0.1:{other.port} {token}")
            _, at, _ = other.waitFor(re.compile(re.escape(token)), start)
            directTimes.append(at - sent)
            token = f"bench-broadcast-{r}-{time.time_ns()}"
            marks = [c.mark() for c in children[1:]]
            sent = origin.type(f"broadcast {token}")
            arrivals = []
            for child, mark in zip(children[1:], marks):
                try:
                    arrivals.append(child.waitFor(
                        re.compile(re.escape(token)), mark, 30.0)[1])
                except RuntimeError:
                    pass
            reached.append(len(arrivals))
            broadcastTimes.append(max(arrivals) - sent if arrivals
                                  else float("nan"))
    finally:
        for child in children:
            child.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    others = count - 1
    note = f"{count} twistd processes, median of {rounds}"
    results.add(Figure(
        "processes", f"{count} processes: broadcast reached",
        100.0 * min(reached) / others, "%", "direct message delivered",
        100.0, minValue=100.0, note=f"{min(reached)} of {others} (worst round)"))
    results.add(Figure(
        "processes", f"{count} processes: broadcast until the last node prints it",
        statistics.median(broadcastTimes) * 1e3, "ms",
        "direct message between two", statistics.median(directTimes) * 1e3,
        note=note))

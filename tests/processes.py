"""
Drive real C{twistd} processes from tests: start them, type console
commands, wait (always with a deadline) for lines of output, and make sure
every process is gone at the end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Union

import p2poverlay
from p2poverlay.netlab.process import ConsoleProcess

TWISTD = str(Path(sys.executable).parent / "twistd")

# The directory holding the p2poverlay package under test, so that twistd
# runs this tree's code even if another copy is installed.
SOURCE_ROOT = str(Path(p2poverlay.__file__).resolve().parent.parent)

# How long any single wait may take before the test fails.
DEADLINE = 10.0

BANNER = re.compile(
    r"^node (?P<id>[0-9a-f]{64}) listening on (?P<host>[^ ]+):(?P<port>\d+);")

INFO = re.compile(r"^node [0-9a-f]{64} .* listening on \S+, \d+ peers?$")

LOOPBACK_ENDPOINT = "tcp:{}:interface=127.0.0.1"


def childEnvironment(sourceTree: bool = True) -> dict:
    """
    The environment for a child process: this tree on C{PYTHONPATH} (unless
    C{sourceTree} is false) and unbuffered output.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "COVERAGE_PROCESS_START")}
    env["PYTHONUNBUFFERED"] = "1"
    if sourceTree:
        env["PYTHONPATH"] = SOURCE_ROOT
    return env


def runTwistd(args: List[str], cwd: Path, timeout: float = 30.0,
              stdin=subprocess.DEVNULL, sourceTree: bool = True,
              ) -> subprocess.CompletedProcess:
    """Run twistd to completion (or fail after C{timeout} seconds)."""
    return subprocess.run(
        [TWISTD, *args], cwd=cwd, stdin=stdin, capture_output=True,
        text=True, timeout=timeout, env=childEnvironment(sourceTree))


def freePort() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitUntil(predicate: Callable[[], bool], what: str,
              timeout: float = DEADLINE, interval: float = 0.02) -> None:
    """Poll C{predicate} until it is true; fail after C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pidAlive(pid: int) -> bool:
    """Whether process C{pid} exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


class TwistdProcess(ConsoleProcess):
    """
    One twistd process whose standard output is read line by line by a
    thread; its standard error goes to a file.
    """

    def __init__(self, name: str, args: List[str], cwd: Path,
                 console: bool = True) -> None:
        self.args = args
        super().__init__(name, [TWISTD, *args], cwd, env=childEnvironment(),
                         console=console)
        self.nodeId: Optional[str] = None
        self.port: Optional[int] = None

    # The name some tests use.
    _waitFor = ConsoleProcess.waitFor

    def waitForBanner(self) -> int:
        match = self.expect(BANNER)
        self.nodeId = match.group("id")
        self.port = int(match.group("port"))
        return self.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def closeInput(self) -> None:
        self.proc.stdin.close()

    def command(self, line: str) -> List[str]:
        """
        Type C{line} and return every line printed until the console ran
        it: the console runs commands in order, so the output of C{info},
        typed after it, marks the end.  Lines printed meanwhile by the node
        (a message arriving) are included.
        """
        start = self.mark()
        self.type(line)
        self.type("info")
        end, _ = self.waitFor(INFO, start, DEADLINE)
        return self.since(start, end)

    # -- life -----------------------------------------------------------

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout}s\n"
                f"{self.transcript()}") from None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """Make sure the process is gone (used at teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                pass
        self.closePipes()


# -- what a console says of another node --------------------------------------

def label(node: TwistdProcess) -> str:
    """How other nodes' consoles describe C{node}: ``address (shortid)``."""
    return re.escape(f"{node.address} ({node.nodeId[:8]})")


def connected(node: TwistdProcess) -> str:
    return rf"^\* connected: {label(node)}$"


def received(kind: str, sender: TwistdProcess, body: str) -> str:
    return rf"^\[{kind}\] {label(sender)}: {re.escape(body)}$"


class Processes:
    """Starts twistd nodes in one directory and kills them all at teardown."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: List[TwistdProcess] = []
        self.daemonPids: List[int] = []

    def start(self, name: str, args: List[str],
              console: bool = True) -> TwistdProcess:
        process = TwistdProcess(name, args, self.cwd, console=console)
        self.started.append(process)
        return process

    def node(self, name: str, *options: str,
             port: Union[int, str] = 0) -> TwistdProcess:
        """
        A foreground node with a console on 127.0.0.1, started and
        listening (its banner read).
        """
        process = self.start(name, [
            "-n", "p2p", "--port", LOOPBACK_ENDPOINT.format(port), *options])
        process.waitForBanner()
        return process

    def transcripts(self) -> str:
        return "\n".join(p.transcript() for p in self.started)

    def cleanup(self) -> None:
        for process in self.started:
            process.kill()
        for pid in self.daemonPids:
            if pidAlive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

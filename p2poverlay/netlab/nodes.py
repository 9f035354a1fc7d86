"""
Real C{twistd -n p2p} nodes running inside a lab host's namespace, driven
through their consoles.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import p2poverlay
from p2poverlay.netlab.namespaces import Namespaces
from p2poverlay.netlab.process import DEADLINE, ConsoleProcess
from p2poverlay.netlab.topology import Machine

# The directory holding the p2poverlay package this lab belongs to, so that
# the nodes run this tree's code even if another copy is installed.
SOURCE_ROOT = str(Path(p2poverlay.__file__).resolve().parent.parent)

NODE_PORT = 9000

# twistd run by this interpreter ("python -m twisted" is twist, not twistd).
TWISTD = "from twisted.scripts.twistd import run; run()"

BANNER = re.compile(
    r"^node (?P<id>[0-9a-f]{64}) listening on (?P<host>[^ ]+):(?P<port>\d+);")

INFO = re.compile(r"^node [0-9a-f]{64} .* listening on \S+, \d+ peers?$")


def nodeEnvironment() -> Dict[str, str]:
    """A child's environment: this tree first on C{PYTHONPATH}, unbuffered."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "COVERAGE_PROCESS_START")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = SOURCE_ROOT
    return env


class LabNode(ConsoleProcess):
    """
    A foreground node in C{host}'s namespace, listening on the host's
    address; C{nodeId} and C{port} are read from its banner.
    """

    def __init__(self, namespaces: Namespaces, host: Machine, name: str,
                 options: List[str], cwd: Path, port: int = NODE_PORT,
                 ) -> None:
        """
        @param namespaces: the lab's namespaces, C{host}'s among them.
        @param host: where the node runs.
        @param name: its label (its directory under C{cwd} too).
        @param options: more C{twistd p2p} options (C{--join}, ...).
        @param port: the port it listens on at the host's address.
        """
        workdir = cwd / name
        workdir.mkdir(parents=True, exist_ok=False)
        argv = namespaces.execArgv(
            host.ns, sys.executable, "-c", TWISTD, "--pidfile=", "-n",
            "p2p", "--port", f"tcp:{port}:interface={host.address}",
            "--data-dir", "", *options)
        super().__init__(name, argv, workdir, env=nodeEnvironment())
        self.host = host
        self.nodeId: Optional[str] = None
        self.port: Optional[int] = None

    def waitForBanner(self, timeout: float = DEADLINE) -> int:
        """Wait until it listens; return its port."""
        match = self.expect(BANNER, timeout)
        self.nodeId = match.group("id")
        self.port = int(match.group("port"))
        return self.port

    @property
    def address(self) -> str:
        """C{HOST:PORT} where it listens."""
        return f"{self.host.address}:{self.port}"

    def label(self) -> str:
        """How other consoles name this node: C{address (shortid)}."""
        assert self.nodeId is not None, "banner not read yet"
        return f"{self.address} ({self.nodeId[:8]})"

    def logged(self) -> str:
        """Everything the node has written to its log files so far."""
        return "".join(log.read_text(errors="replace")
                       for log in sorted(self.cwd.glob("p2p-*.log")))

    def command(self, line: str, timeout: float = DEADLINE) -> List[str]:
        """
        Type C{line} and return every line printed until the console ran
        it (the output of C{info}, typed after it, marks the end).
        """
        start = self.mark()
        self.type(line)
        self.type("info")
        end, _ = self.waitFor(INFO, start, timeout)
        if line.split()[:1] == ["info"]:
            # Its own output comes first: the end is the second info's.
            end, _ = self.waitFor(INFO, end + 1, timeout)
        return self.since(start, end)

    def poll(self, line: str, pattern: str, timeout: float = DEADLINE,
             every: float = 1.0) -> re.Match:
        """
        Type C{line} every C{every} seconds until a line of what it prints
        matches C{pattern} (a regex, searched); return the match.

        @raise AssertionError: none did within C{timeout} seconds (the
            last output is in the message).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        output: List[str] = []
        while True:
            output = self.command(line)
            for printed in output:
                match = regex.search(printed)
                if match:
                    return match
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: {line!r} printed no line "
                                     f"matching {pattern!r}: {output!r}")
            time.sleep(every)

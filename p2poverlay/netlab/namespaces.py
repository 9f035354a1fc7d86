"""
Network namespaces made and removed by one run: every command runs as
root, and nothing outside the namespaces recorded here is ever changed.
"""

from __future__ import annotations

import atexit
import itertools
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from typing import List, Optional, Sequence

# How long one ip/iptables/sysctl command may take.
COMMAND_TIMEOUT = 10.0

_serial = itertools.count()
_DELAY_WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "delaywire.py")


class LabError(Exception):
    """A lab command failed; the message is one line naming it."""


def run(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT,
        check: bool = True) -> subprocess.CompletedProcess:
    """
    Run C{argv} to completion and return the result (text output).

    @param argv: the command and its arguments.
    @param timeout: seconds before it counts as failed.
    @param check: raise L{LabError} if it exits with a non-zero status.
    """
    try:
        result = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{' '.join(argv)}: {e}") from None
    if check and result.returncode != 0:
        why = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise LabError(f"{' '.join(argv)}: exit status {result.returncode}"
                       f"{': ' + why[-1] if why else ''}")
    return result


def listNamespaces() -> List[str]:
    """The names of every network namespace that C{ip netns} knows."""
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class Namespaces:
    """
    The namespaces one lab made, under a name prefix of its own
    (C{p2l<pid % 10000><letter>}), each deleted by L{teardown} with every
    process and link inside it.
    """

    def __init__(self) -> None:
        serial = next(_serial)
        self.prefix = f"p2l{os.getpid() % 10000}{chr(97 + serial % 26)}"
        self.created: List[str] = []
        self.links: List[str] = []
        self.wires: List[subprocess.Popen] = []
        atexit.register(self.teardown)

    def name(self, short: str) -> str:
        """The full name of the lab's namespace C{short}."""
        return self.prefix + short

    def add(self, short: str) -> str:
        """
        Make the namespace C{short} (loopback up) and return its full name.

        @raise LabError: it exists already, or cannot be made.
        """
        full = self.name(short)
        if full in self.created:
            raise LabError(f"namespace {short!r} exists already")
        run(["ip", "netns", "add", full])
        self.created.append(full)
        self.ip(full, "link", "set", "lo", "up")
        return full

    def execArgv(self, ns: str, *argv: str) -> List[str]:
        """The command line that runs C{argv} inside namespace C{ns}."""
        self._check(ns)
        return ["ip", "netns", "exec", ns, *argv]

    def exec(self, ns: str, *argv: str, check: bool = True,
             timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run C{argv} inside namespace C{ns} (see L{run})."""
        return run(self.execArgv(ns, *argv), timeout=timeout, check=check)

    def ip(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        """Run C{ip ARGV} against namespace C{ns} only."""
        self._check(ns)
        return run(["ip", "-n", ns, *argv])

    def iptables(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        """Add or change a firewall rule of namespace C{ns}."""
        return self.exec(ns, "iptables", "-w", "5", *argv)

    def sysctl(self, ns: str, setting: str) -> None:
        """Set C{setting} (C{key=value}) inside namespace C{ns} only."""
        self.exec(ns, "sysctl", "-q", "-w", setting)

    def veth(self, nsA: str, ifA: str, nsB: str, ifB: str) -> None:
        """
        A veth pair made inside C{nsA} with its peer end moved straight
        into C{nsB}, so that it never exists in the machine's namespace.
        """
        self._check(nsB)
        self.ip(nsA, "link", "add", ifA, "type", "veth",
                "peer", "name", ifB, "netns", nsB)
        self._linked(nsA, ifA, nsB, ifB, "=")

    def delayWire(self, nsA: str, ifA: str, nsB: str, ifB: str,
                  delay: float) -> None:
        """
        Like L{veth}, but every frame crosses C{delay} seconds late each
        way (see L{p2poverlay.netlab.delaywire}); the two ends are TAP
        devices held by a process that L{teardown} stops.
        """
        self._check(nsB)
        wire = subprocess.Popen(
            self.execArgv(nsA, sys.executable, _DELAY_WIRE, ifA, nsB, ifB,
                          repr(delay)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.wires.append(wire)
        assert wire.stdout is not None
        deadline = time.monotonic() + COMMAND_TIMEOUT
        ready = b""
        while not ready.endswith(b"ready\n"):
            left = deadline - time.monotonic()
            if left <= 0 or wire.poll() is not None or not select.select(
                    [wire.stdout], [], [], left)[0]:
                wire.kill()
                why = wire.communicate()[1].decode(
                    errors="replace").strip().splitlines()
                raise LabError(f"delay wire {nsA}/{ifA}={nsB}/{ifB} did not "
                               f"start{': ' + why[-1] if why else ''}")
            ready += os.read(wire.stdout.fileno(), 64)
        self._linked(nsA, ifA, nsB, ifB, "~")

    def _linked(self, nsA: str, ifA: str, nsB: str, ifB: str,
                sign: str) -> None:
        """Record a new link (C{sign}: C{=} a veth, C{~} a delay wire)
        and bring both of its ends up."""
        self.links.append(f"{nsA}/{ifA}{sign}{nsB}/{ifB}")
        self.ip(nsA, "link", "set", ifA, "up")
        self.ip(nsB, "link", "set", ifB, "up")

    def _check(self, ns: str) -> None:
        if ns not in self.created:
            raise LabError(f"{ns!r} is not a namespace of this lab")

    def teardown(self) -> List[str]:
        """
        Kill every process left in the lab's namespaces and delete them
        (their links go with them); return one line per failure.  Safe to
        call more than once.
        """
        problems = []
        for wire in self.wires:
            wire.kill()
            wire.wait()
        self.wires.clear()
        for ns in reversed(self.created):
            pids = run(["ip", "netns", "pids", ns], check=False).stdout
            for pid in pids.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            result = run(["ip", "netns", "del", ns], check=False)
            if result.returncode != 0:
                problems.append(f"ip netns del {ns}: {result.stderr.strip()}")
        self.created.clear()
        self.links.clear()
        atexit.unregister(self.teardown)
        return problems


_reason: Optional[List[Optional[str]]] = None


def whyUnavailable() -> Optional[str]:
    """
    Why network namespaces cannot be made here, or L{None} when they can
    (root, C{ip} and C{iptables} present, C{ip netns add} and C{iptables}
    inside it work).  Checked once per process.
    """
    global _reason
    if _reason is None:
        _reason = [_probe()]
    return _reason[0]


def available() -> bool:
    """Whether the lab can run here (see L{whyUnavailable})."""
    return whyUnavailable() is None


def _probe() -> Optional[str]:
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces)"
    for tool in ("ip", "iptables", "sysctl"):
        if shutil.which(tool) is None:
            return f"the network lab needs {tool!r}, not found on PATH"
    probe = Namespaces()
    try:
        ns = probe.add("probe")
        probe.iptables(ns, "-t", "nat", "-A", "POSTROUTING", "-o", "lo",
                       "-j", "MASQUERADE", "--random-fully")
        probe.iptables(ns, "-A", "INPUT", "-m", "conntrack", "--ctstate",
                       "NEW", "-m", "statistic", "--mode", "random",
                       "--probability", "0.5", "-j", "DROP")
    except LabError as e:
        return f"network namespaces cannot be made here: {e}"
    finally:
        probe.teardown()
    return None

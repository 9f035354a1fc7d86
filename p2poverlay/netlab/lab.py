"""
The lab: its namespaces, the machines in them, the nodes and probes
running there, all removed by L{Lab.close} (also on failure, and at exit
as a last resort).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import List, Optional, Type

from p2poverlay.netlab.namespaces import LabError, Namespaces, run
from p2poverlay.netlab.nodes import NODE_PORT, LabNode
from p2poverlay.netlab.probes import ConnectResult, Listener, listen
from p2poverlay.netlab.probes import connect as _connect
from p2poverlay.netlab.probes import pingLoss as _pingLoss
from p2poverlay.netlab.probes import pingRoundTrip as _pingRoundTrip
from p2poverlay.netlab.process import ConsoleProcess
from p2poverlay.netlab.rules import MASQUERADE
from p2poverlay.netlab.topology import Machine, Router, Topology


class Lab:
    """
    A network lab, used as a context manager::

        with Lab(tmp_path) as lab:
            a = lab.node(lab.publicHost("a"), "A")
            r = lab.natRouter("r", "masquerade")
            b = lab.node(lab.hostBehind(r, "b"), "B", "--join", a.address)
    """

    def __init__(self, workdir: Optional[Path] = None) -> None:
        """
        @param workdir: where nodes and probes keep their files; a
            temporary directory, removed at close, if L{None}.
        """
        self.namespaces = Namespaces()
        self.topology = Topology(self.namespaces)
        self._ownDir = workdir is None
        self.workdir = (Path(tempfile.mkdtemp(prefix=self.namespaces.prefix))
                        if workdir is None else workdir)
        self.processes: List[ConsoleProcess] = []
        self.closed = False

    @property
    def prefix(self) -> str:
        """The prefix of every namespace name this lab makes."""
        return self.namespaces.prefix

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, kind: Optional[Type[BaseException]],
                 value: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        problems = self.close()
        if problems and kind is None:
            raise LabError("; ".join(problems))

    # -- machines -------------------------------------------------------

    def publicHost(self, name: str, delay: float = 0.0) -> Machine:
        """A host on the WAN (see L{Topology.publicHost})."""
        return self.topology.publicHost(name, delay)

    def natRouter(self, name: str, kind: str = MASQUERADE,
                  behind: Optional[Router] = None,
                  delay: float = 0.0) -> Router:
        """A router of C{kind} (see L{Topology.natRouter})."""
        return self.topology.natRouter(name, kind, behind, delay)

    def hostBehind(self, router: Router, name: str) -> Machine:
        """A host on C{router}'s LAN (see L{Topology.hostBehind})."""
        return self.topology.hostBehind(router, name)

    def packetLoss(self, machine: Machine, probability: float,
                   direction: str = "in") -> None:
        """Random loss on C{machine}'s uplink (see L{Topology.packetLoss})."""
        self.topology.packetLoss(machine, probability, direction)

    # -- processes ------------------------------------------------------

    def node(self, host: Machine, name: str, *options: str,
             port: int = NODE_PORT, wait: bool = True) -> LabNode:
        """
        Start a C{twistd -n p2p} node on C{host} and wait for its banner.

        @param options: more node options, such as C{--join ADDRESS}.
        @param wait: if false, return at once; call
            L{LabNode.waitForBanner} before using the node's address.
        """
        node = LabNode(self.namespaces, host, name, list(options),
                       self.workdir, port)
        self.processes.append(node)
        if wait:
            node.waitForBanner()
        return node

    def listen(self, machine: Machine, port: int) -> Listener:
        """A TCP listener printing its peers (see L{listen})."""
        listener = listen(self.namespaces, machine, port,
                                 self.workdir)
        self.processes.append(listener)
        return listener

    def connect(self, machine: Machine, host: str, port: int,
                sourcePort: int = 0,
                timeout: float = 2.0) -> ConnectResult:
        """A TCP connect from C{machine} (see L{connect})."""
        return _connect(self.namespaces, machine, host, port,
                              sourcePort, timeout)

    def pingLoss(self, machine: Machine, host: str, count: int = 50,
                 interval: float = 0.01) -> float:
        """The share of pings lost (see L{pingLoss})."""
        return _pingLoss(self.namespaces, machine, host, count,
                               interval)

    def roundTrip(self, machine: Machine, host: str) -> float:
        """The shortest ping round trip, seconds (see L{pingRoundTrip})."""
        return _pingRoundTrip(self.namespaces, machine, host)

    def transcripts(self) -> str:
        """Every process's output, for a failed test's report."""
        return "\n".join(p.transcript() for p in self.processes)

    # -- teardown -------------------------------------------------------

    def close(self) -> List[str]:
        """
        Stop every process (SIGTERM, then SIGKILL), delete every namespace
        and link, and return one line per thing that could not be removed.
        Safe to call twice.
        """
        if self.closed:
            return []
        self.closed = True
        for process in self.processes:
            process.stop()
        problems = self.namespaces.teardown()
        left = [ns for ns in run(["ip", "netns", "list"]).stdout.split()
                if ns.startswith(self.prefix)]
        problems += [f"namespace {ns} still exists" for ns in left]
        if self._ownDir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

"""
End-to-end tests of controlling nodes that run in the background: real
C{twistd p2p} daemons (no C{-n}, standard input at /dev/null) driven through
C{python -m p2poverlay.console} as README shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from processes import (
    DEADLINE, INFO, LOOPBACK_ENDPOINT, childEnvironment, freePort,
    pidAlive, runTwistd, waitUntil,
)

CONSOLE = [sys.executable, "-m", "p2poverlay.console"]


def runConsole(cwd: Path, *args: str, stdin: Optional[str] = None,
               script: Optional[List[str]] = None) -> subprocess.CompletedProcess:
    """Run the client to completion (or fail after the deadline)."""
    return subprocess.run(
        (script or CONSOLE) + list(args), cwd=cwd, input=stdin or "",
        capture_output=True, text=True, timeout=DEADLINE * 3,
        env=childEnvironment())


def assertNoTraceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result


class Daemon:
    """A twistd p2p daemon, started in C{cwd} with data directory C{name}."""

    def __init__(self, cwd: Path, name: str, *options: str,
                 run: str = "") -> None:
        self.cwd = cwd
        self.name = name
        self.port = freePort()
        self.pidfile = cwd / f"{name}{run}.pid"
        self.logfile = cwd / f"{name}{run}.log"
        self.socket = cwd / name / "control.sock"
        self.pid: Optional[int] = None
        self.result = runTwistd(
            [f"--pidfile={self.pidfile}", f"--logfile={self.logfile}", "p2p",
             "--port", LOOPBACK_ENDPOINT.format(self.port),
             "--data-dir", name, *options],
            cwd=cwd, timeout=DEADLINE * 3)
        try:
            self.pid = int(self.pidfile.read_text())
        except FileNotFoundError:
            pass  # It did not start, or has already stopped.

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def console(self, *args: str,
                stdin: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run the client for this node (by its data directory) to the end."""
        result = runConsole(self.cwd, "--data-dir", self.name, *args,
                            stdin=stdin)
        assertNoTraceback(result)
        return result

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def waitGone(self) -> None:
        waitUntil(lambda: not pidAlive(self.pid), f"{self.name} to exit")
        waitUntil(lambda: not self.pidfile.exists(),
                  f"{self.pidfile.name} to be removed")

    def kill(self) -> None:
        if self.pid is not None and pidAlive(self.pid):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass


class AttachedConsole:
    """An attached C{p2p-console} whose output a thread reads line by line."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            CONSOLE + list(args), cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=childEnvironment())
        self.lines: List[str] = []
        self._cursor = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()

    def expect(self, pattern: str) -> re.Match:
        """Wait for a line after the last one matched that matches C{pattern}."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + DEADLINE
        with self._changed:
            while True:
                for index in range(self._cursor, len(self.lines)):
                    match = regex.search(self.lines[index])
                    if match:
                        self._cursor = index + 1
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} in {self.lines}")
                self._changed.wait(remaining)

    def type(self, line: str) -> None:
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def wait(self) -> int:
        return self.proc.wait(DEADLINE)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        self._reader.join(DEADLINE)


@pytest.fixture
def workdir():
    """
    A short temporary directory (a UNIX socket path has to fit in about
    100 bytes); the daemons and clients started there are killed at the end.
    """
    path = Path(tempfile.mkdtemp(prefix="p2pe2e"))
    started = {"daemons": [], "consoles": []}
    try:
        yield path, started
    finally:
        for console in started["consoles"]:
            console.kill()
        for daemon in started["daemons"]:
            daemon.kill()
        for daemon in started["daemons"]:
            print(f"--- {daemon.name} log\n{daemon.log()}")
        shutil.rmtree(path, ignore_errors=True)


def startDaemon(workdir, name: str, *options: str, run: str = "") -> Daemon:
    cwd, started = workdir
    daemon = Daemon(cwd, name, *options, run=run)
    started["daemons"].append(daemon)
    assert daemon.result.returncode == 0, daemon.result
    assert daemon.pid is not None and pidAlive(daemon.pid)
    return daemon


def attach(workdir, *args: str) -> AttachedConsole:
    cwd, started = workdir
    console = AttachedConsole(cwd, *args)
    started["consoles"].append(console)
    return console


def label(daemon: Daemon, nodeId: str) -> str:
    return re.escape(f"{daemon.address} ({nodeId[:8]})")


def nodeId(daemon: Daemon) -> str:
    result = daemon.console("--json", "info")
    assert result.returncode == 0, result
    return json.loads(result.stdout)["node_id"]


def peerIds(daemon: Daemon) -> List[str]:
    result = daemon.console("--json", "peers")
    assert result.returncode == 0, result
    return [peer["node_id"] for peer in json.loads(result.stdout)["peers"]
            if peer["state"] == "connected"]


def test_control_two_daemons(workdir):
    """
    Two daemons are driven through their control sockets: info, peers (as
    text and JSON), send and broadcast seen live by a client attached to
    the other node, a bad command; one stops on 'exit' from a client, the
    other on SIGTERM.
    """
    a = startDaemon(workdir, "A")
    b = startDaemon(workdir, "B", "--join", a.address)
    for daemon in (a, b):
        # Listening before twistd said it started.
        assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(daemon.socket).st_mode)

    result = a.console("info")
    assert result.returncode == 0, result
    first, keyLine, dhtLine, reachLine = result.stdout.splitlines()
    assert INFO.match(first), result
    assert re.match(r"^  key:     SHA256:\S+; peer links: TLS 1\.3$", keyLine)
    assert re.match(r"^  dht:     \d+ nodes? in its table, ", dhtLine)
    # On loopback nobody observes anything of use.
    assert reachLine.startswith("  reach:   unknown: "), reachLine
    idA, idB = nodeId(a), nodeId(b)

    waitUntil(lambda: peerIds(a) == [idB], "A to list B as its peer")
    result = a.console("peers")
    assert result.returncode == 0, result
    (line,) = result.stdout.splitlines()
    assert line.split()[:2] == [b.address, idB]
    assert "connected since" in line

    watcher = attach(workdir, "--data-dir", "B")
    watcher.expect(rf"^attached to node {idB} listening on port {b.port}; ")

    result = a.console("send", b.address, "hello  there")
    assert result.returncode == 0, result
    assert result.stdout == f"delivered to {b.address} ({idB[:8]})\n"
    watcher.expect(rf"^\[direct\] {label(a, idA)}: hello  there$")

    result = a.console("--json", "broadcast", "to\x1ball")
    assert result.returncode == 0, result
    sent = json.loads(result.stdout)
    assert sent["neighbours"] == 1 and len(sent["message_id"]) == 32
    # Shown escaped by the attached client.
    watcher.expect(rf"^\[broadcast\] {label(a, idA)}: to\\x1ball$")

    result = a.console("frobnicate", "now")
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == "error: unknown command 'frobnicate'; type 'help'\n"
    result = a.console("quit")
    assert result.returncode == 1, result
    assert result.stderr.startswith("p2p-console: quit: type 'detach'")
    result = a.console("--json", "send", "nobody", "x")
    assert result.returncode == 1, result
    assert json.loads(result.stdout)["error"].startswith("send to nobody failed:")

    # The attached client runs commands too, and detaching leaves the node.
    watcher.type("peers")
    watcher.expect(rf"^{re.escape(a.address)} +{idA} ")
    watcher.type("detach")
    assert watcher.wait() == 0
    assert pidAlive(b.pid)

    # 'exit' through the client stops the daemon; B sees A leave.
    watcher = attach(workdir, "--data-dir", "B")
    watcher.expect(r"^attached to node ")
    result = a.console("exit")
    assert result.returncode == 0, result
    assert result.stdout == "leaving the overlay\n"
    a.waitGone()
    assert not a.socket.exists()
    watcher.expect(rf"^\* disconnected: {label(a, idA)} \(node shutting down\)$")
    assert "Server Shut Down." in a.log()

    # SIGTERM stops the other one; its attached client is told, and ends.
    os.kill(b.pid, signal.SIGTERM)
    watcher.expect(r"^node stopping$")
    assert watcher.wait() == 0
    b.waitGone()
    assert not b.socket.exists()
    for daemon in (a, b):
        assert "Traceback" not in daemon.log(), daemon.log()


def test_no_node_running(workdir):
    """A client with no node to talk to says so in one line, status 1."""
    cwd, _ = workdir
    port = freePort()
    for args in ([], ["info"], ["--json", "peers"]):
        result = runConsole(cwd, "--port", str(port), *args)
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert result.stderr == (f"p2p-console: no node answers at "
                                 f"p2p-{port}/control.sock (no such socket)\n")


def test_crashed_node_leaves_a_socket_that_is_refused_then_replaced(workdir):
    a = startDaemon(workdir, "A")
    os.kill(a.pid, signal.SIGKILL)
    waitUntil(lambda: not pidAlive(a.pid), "A to die")
    assert a.socket.exists()

    result = a.console("info")
    assert result.returncode == 1, result
    assert result.stderr == ("p2p-console: no node answers at A/control.sock "
                             "(connection refused)\n")

    # Its pid file is left too (and the killed process may linger as a
    # zombie where nothing reaps orphans): the new daemon uses another one.
    again = startDaemon(workdir, "A", run="-again")
    assert again.pid != a.pid
    result = again.console("info")
    assert result.returncode == 0, result
    assert stat.S_IMODE(os.stat(again.socket).st_mode) == 0o600


def test_control_over_tcp_and_none(workdir):
    port = freePort()
    a = startDaemon(workdir, "A", "--control",
                    LOOPBACK_ENDPOINT.format(port))
    assert not a.socket.exists()
    cwd, _ = workdir
    result = runConsole(cwd, "--control", f"tcp:127.0.0.1:{port}",
                        "--data-dir", "A", "--json", "info")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["port"] == a.port

    b = Daemon(cwd, "B", "--control", "none")
    workdir[1]["daemons"].append(b)
    assert b.result.returncode == 0, b.result
    waitUntil(lambda: f"listening on 127.0.0.1:{b.port}" in b.log(),
              "B to listen")
    assert not b.socket.exists()


def test_bad_control_endpoint_stops_the_daemon_at_start(workdir):
    cwd, _ = workdir
    daemon = Daemon(cwd, "A", "--control", "unix:/nonexistent/ctl.sock")
    workdir[1]["daemons"].append(daemon)
    output = daemon.result.stdout + daemon.result.stderr
    assert daemon.result.returncode == 1, daemon.result
    assert "Traceback" not in output
    assert len([line for line in output.splitlines()
                if "cannot listen on /nonexistent/ctl.sock" in line]) == 1
    # twistd exits once its daemon reports the error, which may be a moment
    # before the daemon has removed its pid file.
    waitUntil(lambda: not daemon.pidfile.exists(), "the pid file removed")


@pytest.mark.parametrize("stdin", [subprocess.PIPE, subprocess.DEVNULL],
                         ids=["console", "no-console"])
def test_bad_control_endpoint_stops_a_foreground_node(workdir, stdin):
    cwd, _ = workdir
    result = runTwistd(
        ["-n", "p2p", "--port", LOOPBACK_ENDPOINT.format(0),
         "--control", "unix:/nonexistent/ctl.sock"],
        cwd=cwd, stdin=stdin, timeout=DEADLINE * 3)
    output = result.stdout + result.stderr
    assert result.returncode == 1, result
    assert "Traceback" not in output
    assert [line for line in output.splitlines()
            if "cannot listen on /nonexistent/ctl.sock" in line] == [
        "p2p: cannot listen on /nonexistent/ctl.sock: No such file or directory"]


def test_attached_with_piped_input_and_json(workdir):
    a = startDaemon(workdir, "A")
    # Commands piped in: every answer is printed before end of input detaches.
    result = a.console(stdin="info\n\nbroadcast hi\nquit\n")
    assert result.returncode == 0, result
    assert len(result.stdout.splitlines()) == 7, result
    banner, quit, info, key, dht, reach, broadcast = \
        result.stdout.splitlines()
    assert banner.startswith("attached to node ")
    assert INFO.match(info) and key.startswith("  key:     SHA256:")
    assert dht == "  dht:     0 nodes in its table, not joined"
    assert broadcast == "broadcast not sent: no peers connected"
    assert quit.startswith("quit: type 'detach'")
    assert pidAlive(a.pid)

    console = attach(workdir, "--data-dir", "A", "--json")
    hello = json.loads(console.expect(r"^\{").string)
    assert hello["type"] == "hello" and hello["port"] == a.port
    console.type("info")
    reply = json.loads(console.expect(r'"type": "reply"').string)
    assert reply["ok"] is True
    assert reply["result"]["node_id"] == hello["node_id"]
    console.proc.stdin.close()  # End of input detaches.
    assert console.wait() == 0
    assert pidAlive(a.pid)


def test_installed_script(workdir):
    """The p2p-console script is installed with the package."""
    script = Path(sys.executable).parent / "p2p-console"
    assert script.exists(), "reinstall: pip install '.[test]'"
    cwd, _ = workdir
    result = runConsole(cwd, "--data-dir", "none-here", "info",
                        script=[str(script)])
    assert result.returncode == 1
    assert result.stderr == ("p2p-console: no node answers at "
                             "none-here/control.sock (no such socket)\n")

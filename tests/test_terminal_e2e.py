"""
End-to-end tests of the console at a terminal: C{twistd -n p2p} and
C{p2p-console} run on a real pseudo-terminal, whose output a L{Screen}
shows as a terminal would.  A half-typed line stays intact under the
lines that arrive meanwhile, the up arrow recalls the last command, the
first screen says where the node logs, listens for control and serves
its web UI, and the terminal's modes are back as they were however the
program ends.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Callable, List

import pytest

from processes import (
    DEADLINE, LOOPBACK_ENDPOINT, TWISTD, childEnvironment, freePort, pidAlive,
    waitUntil,
)
from screen import Screen
from test_control_e2e import CONSOLE, Daemon

COLUMNS, ROWS = 100, 30
UP = b"\x1b[A"
CTRL_C, CTRL_D, CTRL_U = b"\x03", b"\x04", b"\x15"


def _interruptible() -> None:
    """In the child: SIGINT as a terminal's shell gives it, even where
    this suite runs with it ignored (a background job of a script), which
    the child would inherit and Twisted would leave so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PtyProcess:
    """
    A program whose standard input, output and error are a new
    pseudo-terminal; a thread shows what it writes on a L{Screen}.
    """

    def __init__(self, name: str, args: List[str], cwd: Path) -> None:
        self.name = name
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.modes = termios.tcgetattr(self.slave)
        env = dict(childEnvironment(), TERM="xterm")
        self.proc = subprocess.Popen(
            args, cwd=cwd, stdin=self.slave, stdout=self.slave,
            stderr=self.slave, env=env, start_new_session=True,
            preexec_fn=_interruptible)
        self.screen = Screen(COLUMNS, ROWS)
        self.output = bytearray()
        self._lock = threading.Condition()
        self._running = True
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"pty-{name}")
        self._reader.start()

    def _read(self) -> None:
        while self._running:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            with self._lock:
                self.output += data
                self.screen.feed(data)
                self._lock.notify_all()

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def waitFor(self, predicate: Callable[[Screen], bool], what: str,
                timeout: float = DEADLINE) -> None:
        """Wait until the screen shows what C{predicate} looks for."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.screen):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what} at "
                        f"{self.name}; the screen:\n" + "\n".join(self.screen.shown()))
                self._lock.wait(remaining)

    def waitForLine(self, pattern: str, what: str = "") -> str:
        """Wait for a row that matches C{pattern}; return it."""
        regex = re.compile(pattern)
        found: List[str] = []

        def matching(screen: Screen) -> bool:
            found[:] = [row for row in screen.text() if regex.search(row)]
            return bool(found)

        self.waitFor(matching, what or repr(pattern))
        return found[-1]

    def rows(self) -> List[str]:
        with self._lock:
            return self.screen.shown()

    def cursorRow(self) -> str:
        with self._lock:
            return self.screen.cursorRow()

    def modesNow(self):
        return termios.tcgetattr(self.slave)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running; the screen:\n"
                                 + "\n".join(self.rows())) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        self._running = False
        self._reader.join(DEADLINE)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def ptys():
    """Starts programs on pseudo-terminals; kills them after the test."""
    started: List[PtyProcess] = []

    def start(name: str, args: List[str], cwd: Path) -> PtyProcess:
        started.append(PtyProcess(name, args, cwd))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        print(f"--- {process.name}'s screen\n" + "\n".join(process.screen.shown()))


@pytest.fixture
def shortdir():
    """A directory with a path short enough for a UNIX socket in it."""
    path = Path(tempfile.mkdtemp(prefix="p2ptty"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def startNode(ptys, cwd: Path, name: str, *options: str) -> PtyProcess:
    port = freePort()
    node = ptys(name, [TWISTD, "-n", "p2p", "--port",
                       LOOPBACK_ENDPOINT.format(port), *options], cwd)
    node.port = port  # type: ignore[attr-defined]
    return node


def assertBelow(rows: List[str], above: str, below: str) -> None:
    """C{above} is a row, and the next row that is not blank is C{below}."""
    index = max(i for i, row in enumerate(rows) if re.search(above, row))
    after = [row for row in rows[index + 1:] if row]
    assert after and after[0] == below, rows


def test_foreground_console_at_a_terminal(ptys, processes, shortdir):
    """
    A half-typed line stays intact under a peer's arrival and a message
    from it; up recalls the last command; Ctrl-D leaves the overlay, says
    so, and gives the terminal back as it was.
    """
    web = freePort()
    a = startNode(ptys, shortdir, "A", "--name", "alice", "--web", str(web))
    port = a.port  # type: ignore[attr-defined]
    a.waitForLine(r"^alice> $|^alice>$", "the prompt")
    rows = a.rows()
    # 80 columns: the banner's first line wraps after the address.
    assert re.match(rf"^node [0-9a-f]{{64}} listening on 127\.0\.0\.1:{port};",
                    rows[0]), rows
    assert rows[1] == "type 'help' for commands", rows
    assert rows[2:6] == [
        "  name:    alice",
        f"  log:     p2p-{port}/node.log",
        f"  control: p2p-{port}/control.sock (attach: p2p-console --data-dir "
        f"p2p-{port})",
        f"  web UI:  http://127.0.0.1:{web}/"], rows

    a.type(b"info\r")
    # 80 columns: the info line wraps after the node id and name.
    a.waitForLine(r"^node [0-9a-f]{64} 'alice' ")
    a.type(b"send nobody hal")
    a.waitFor(lambda s: s.cursorRow() == "alice> send nobody hal", "the half line")

    b = processes.node("B", "--join", f"127.0.0.1:{port}")
    a.waitForLine(r"^\* connected: 127\.0\.0\.1:\d+ \([0-9a-f]{8}\)$")
    b.type(f"send 127.0.0.1:{port} hi there")
    message = a.waitForLine(r"^\[direct\] 127\.0\.0\.1:\d+ \([0-9a-f]{8}\): hi there$")
    a.waitFor(lambda s: s.cursorRow() == "alice> send nobody hal",
              "the half line, redrawn")
    assertBelow(a.rows(), r"^\* connected: ", message)
    assertBelow(a.rows(), re.escape(message), "alice> send nobody hal")
    # In the byte stream too: the line arrived, then the half line again.
    tail = bytes(a.output).rpartition(b"hi there")[2]
    assert b"alice> send nobody hal" in tail

    a.type(b"lo\r")
    a.waitForLine(r"^error: send to nobody failed: ")
    a.type(UP)
    a.waitFor(lambda s: s.cursorRow() == "alice> send nobody hallo",
              "the last command, recalled")
    a.type(UP)
    a.waitFor(lambda s: s.cursorRow() == "alice> info", "the one before")
    a.type(CTRL_U + CTRL_D)
    a.waitForLine(r"^leaving the overlay$")
    assert a.wait() == 0
    assert a.modesNow() == a.modes
    b.expect(r"^\* disconnected: .*\(node shutting down\)$")


@pytest.mark.parametrize("how", ["exit", "ctrl-c", "ctrl-d", "sigterm", "sigint"])
def test_the_terminal_is_given_back_however_the_node_stops(ptys, shortdir, how):
    a = startNode(ptys, shortdir, "A")
    a.waitFor(lambda s: s.cursorRow().endswith(">"), "the prompt")
    a.type(b"half")
    a.waitFor(lambda s: s.cursorRow().endswith("> half"), "the half line")
    assert a.modesNow() != a.modes  # Raw while it runs.
    if how == "exit":
        a.type(CTRL_U + b"exit\r")
    elif how == "ctrl-c":
        a.type(CTRL_C)
    elif how == "ctrl-d":
        a.type(CTRL_U + CTRL_D)
    else:
        a.proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    if how in ("exit", "ctrl-c", "ctrl-d"):
        a.waitForLine(r"^leaving the overlay$")
        assert a.wait() == 0
    else:
        assert a.wait() != 0
    assert a.modesNow() == a.modes
    if how == "ctrl-c":
        assert any(row.endswith("> half^C") for row in a.rows()), a.rows()
    else:
        # The prompt and the half line are not left behind.
        assert not any(row.endswith("> half") for row in a.rows()), a.rows()


def test_piped_output_keeps_the_plain_console(ptys, shortdir, tmp_path):
    """A terminal on standard input only: no prompt, the log stays in its file."""
    port = freePort()
    out = tmp_path / "out"
    with open(out, "wb") as sink:
        master, slave = os.openpty()
        try:
            proc = subprocess.Popen(
                [TWISTD, "-n", "p2p", "--port", LOOPBACK_ENDPOINT.format(port)],
                cwd=shortdir, stdin=slave, stdout=sink, stderr=sink,
                env=childEnvironment(), start_new_session=True)
            try:
                waitUntil(lambda: b"; type 'help' for commands\n" in out.read_bytes(),
                          "the banner")
                os.write(master, b"exit\n")
                assert proc.wait(DEADLINE) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(DEADLINE)
        finally:
            os.close(master)
            os.close(slave)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("node ") and len(lines) == 2, lines
    assert lines[1] == "leaving the overlay"


@pytest.fixture
def daemons(shortdir):
    """Daemons started in C{shortdir}, killed after the test."""
    started: List[Daemon] = []

    def start(name: str, *options: str) -> Daemon:
        daemon = Daemon(shortdir, name, *options)
        started.append(daemon)
        assert daemon.result.returncode == 0, daemon.result
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.mark.parametrize("leave", [CTRL_D, CTRL_C, b"detach\r"],
                         ids=["ctrl-d", "ctrl-c", "detach"])
def test_attached_console_at_a_terminal(ptys, daemons, shortdir, leave):
    """
    p2p-console attached to a daemon on a terminal: the same prompt,
    editing and history; the banner says where it is attached; it
    detaches, says so, and gives the terminal back.
    """
    a = daemons("A")
    b = daemons("B", "--name", "bob", "--join", a.address)
    waitUntil(lambda: a.console("peers").stdout.startswith(b.address),
              "A to have B for a peer")
    console = ptys("console", CONSOLE + ["--data-dir", "A"], shortdir)
    prompt = console.waitForLine(r"^[0-9a-f]{8}> ?$", "the prompt").rstrip() + " "
    rows = console.rows()
    assert rows[0].startswith("attached to node "), rows
    assert "  control: A/control.sock" in rows, rows

    console.type(b"peers\r")
    console.waitForLine(rf"^{re.escape(b.address)} +[0-9a-f]{{64}} 'bob'")
    console.type(b"broadcast hal")
    console.waitFor(lambda s: s.cursorRow() == prompt + "broadcast hal",
                    "the half line")
    result = b.console("send", a.address, "hi there")
    assert result.returncode == 0, result
    message = console.waitForLine(
        rf"^\[direct\] {re.escape(b.address)} \([0-9a-f]{{8}} 'bob'\): hi there$")
    console.waitFor(lambda s: s.cursorRow() == prompt + "broadcast hal",
                    "the half line, redrawn")
    assertBelow(console.rows(), re.escape(message), prompt + "broadcast hal")

    console.type(CTRL_U + UP)
    console.waitFor(lambda s: s.cursorRow() == prompt + "peers", "peers, recalled")
    console.type(CTRL_U + leave)
    console.waitForLine(r"^detached; the node keeps running$")
    assert console.wait() == 0
    assert console.modesNow() == console.modes
    assert pidAlive(a.pid)
    assert "Traceback" not in "\n".join(console.rows())


def test_attached_console_ends_when_the_node_stops(ptys, daemons, shortdir):
    a = daemons("A")
    console = ptys("console", CONSOLE + ["--data-dir", "A"], shortdir)
    console.waitForLine(r"^[0-9a-f]{8}> ?$", "the prompt")
    console.type(b"half")
    os.kill(a.pid, signal.SIGTERM)
    console.waitForLine(r"^node stopping$")
    assert console.wait() == 0
    assert console.modesNow() == console.modes
    a.waitGone()


def test_attached_console_is_given_back_on_sigterm(ptys, daemons, shortdir):
    daemons("A")
    console = ptys("console", CONSOLE + ["--data-dir", "A"], shortdir)
    console.waitForLine(r"^[0-9a-f]{8}> ?$", "the prompt")
    assert console.modesNow() != console.modes
    console.proc.send_signal(signal.SIGTERM)
    console.wait()
    assert console.modesNow() == console.modes


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX terminals only")

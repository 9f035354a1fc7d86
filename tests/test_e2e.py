"""
End-to-end tests: real C{twistd -n p2p} processes on 127.0.0.1, driven
through their consoles the way README shows.
"""

from __future__ import annotations

import os
import re
import signal

from processes import (
    DEADLINE, LOOPBACK_ENDPOINT, TwistdProcess, connected, freePort, label,
    pidAlive, received, runTwistd, waitUntil,
)

PEER_LINE = re.compile(r"^127\.0\.0\.1:(\d+) +([0-9a-f]{64}) ")


def peerLines(node: TwistdProcess):
    return [PEER_LINE.match(line) for line in node.command("peers")
            if PEER_LINE.match(line)]


def assertClean(*nodes: TwistdProcess) -> None:
    """No tracebacks, and no warnings at the console."""
    for node in nodes:
        transcript = node.transcript()
        assert "Traceback" not in transcript, transcript
        assert not node.matching(r"^! "), transcript


def test_chat_broadcast_and_discovery(processes, tmp_path):
    """
    Two nodes started in one directory as README shows talk to each other;
    a third one joining the second is discovered by the first, and its
    broadcast reaches each of them exactly once.
    """
    a = processes.node("A")
    b = processes.node("B", "--join", f"127.0.0.1:{a.port}")
    b.expect(connected(a))
    a.expect(connected(b))
    # Foreground nodes write no twistd.pid, so both could start here.
    assert not (tmp_path / "twistd.pid").exists()

    a.type(f"send {b.address} Hello!")
    a.expect(rf"^delivered to {label(b)}$")
    b.expect(received("direct", a, "Hello!"))

    b.type("broadcast Hello everyone!")
    b.expect(r"^broadcast [0-9a-f]{8} sent to 1 neighbour$")
    a.expect(received("broadcast", b, "Hello everyone!"))

    peers = peerLines(a)
    assert [(int(m.group(1)), m.group(2)) for m in peers] == [(b.port, b.nodeId)]

    c = processes.node("C", "--join", b.address)
    c.expect(connected(b))
    b.expect(connected(c))
    # A learns of C by peer exchange and they connect.
    a.expect(connected(c))
    c.expect(connected(a))
    assert sorted(int(m.group(1)) for m in peerLines(a)) == sorted([b.port, c.port])
    # C's join of the DHT may have linked it to A directly first; that link
    # turns into a neighbour's.
    waitUntil(lambda: not any("direct link" in line
                              for line in c.command("peers")),
              "A and C to be neighbours", timeout=DEADLINE)

    c.type("broadcast from C")
    c.expect(r"^broadcast [0-9a-f]{8} sent to 2 neighbours$")
    a.expect(received("broadcast", c, "from C"))
    b.expect(received("broadcast", c, "from C"))
    # A copy forwarded by B went to A before B's next message to A, so once
    # A has confirmed that one, A has seen every copy (and the same for B).
    b.type(f"send {a.address} after")
    b.expect(rf"^delivered to {label(a)}$")
    a.type(f"send {b.address} after")
    a.expect(rf"^delivered to {label(b)}$")
    for node in (a, b):
        assert len(node.matching(received("broadcast", c, "from C"))) == 1
    assert not c.matching(r"from C$")
    assert len(b.matching(received("direct", a, "Hello!"))) == 1
    assert not (tmp_path / "twistd.pid").exists()
    assertClean(a, b, c)


def test_exit_command(processes):
    """C{exit} stops the node with status 0 and its peers are told why."""
    a = processes.node("A")
    b = processes.node("B", "--join", a.address)
    a.expect(connected(b))
    b.expect(connected(a))

    a.type("exit")
    a.expect(r"^leaving the overlay$")
    assert a.wait(5) == 0
    b.expect(rf"^\* disconnected: {label(a)} \(node shutting down\)$")
    assert b.proc.poll() is None
    assertClean(a, b)


def test_end_of_piped_input_keeps_serving(processes):
    """
    When standard input is a pipe its end only detaches the console: the
    node keeps serving, and SIGTERM stops it gracefully.
    """
    a = processes.node("A")
    b = processes.node("B")
    b.closeInput()
    b.expect(rf"^end of input: console detached; the node keeps serving "
             rf"\(stop it with: kill {b.proc.pid}\)$")
    # Two round trips: B has surely read the end of its input by the
    # second one, and still answers.
    for text in ("one", "two"):
        a.type(f"send {b.address} {text}")
        a.expect(rf"^delivered to {re.escape(b.address)} \(")
    assert b.proc.poll() is None
    assert not a.matching(r"^\* disconnected")

    b.signal(signal.SIGTERM)
    # twistd shuts down cleanly, then ends itself with the signal it got
    # (status 143 in a shell), as Unix programs should.
    assert b.wait(5) == -signal.SIGTERM
    a.expect(rf"^\* disconnected: {label(b)} \(node shutting down\)$")
    assertClean(a, b)


def test_join_own_address(processes):
    """Joining the node's own address is reported once and ignored."""
    port = freePort()
    a = processes.node("A", "--join", f"127.0.0.1:{port}", port=port)
    a.expect(rf"^! not joining 127\.0\.0\.1:{port}: that address is this "
             rf"node itself$")
    output = a.command("peers")
    assert "no peers connected" in output
    # Sending to it is refused the same way.
    a.type(f"send 127.0.0.1:{port} hi")
    a.expect(rf"^error: send to 127\.0\.0\.1:{port} failed: that address is "
             rf"this node itself$")
    a.type(f"send {a.nodeId[:8]} hi")
    a.expect(rf"^error: send to {a.nodeId[:8]} failed: that is this node's "
             rf"own id$")
    assert a.proc.poll() is None
    warnings = a.matching(r"^! ")
    assert len(warnings) == 1, a.transcript()
    assert "Traceback" not in a.transcript()


def test_daemon(processes, tmp_path):
    """
    Without C{-n} the node runs in the background, writes its pid to
    p2p-PORT/node.pid, is reachable by a foreground node, and leaves on
    SIGTERM.
    """
    port = freePort()
    pidfile = tmp_path / f"p2p-{port}" / "node.pid"
    result = runTwistd(
        ["--logfile=node.log", "p2p", "--port", LOOPBACK_ENDPOINT.format(port)],
        cwd=tmp_path, timeout=DEADLINE + 5)
    assert result.returncode == 0, result
    assert pidfile.exists()
    pid = int(pidfile.read_text())
    processes.daemonPids.append(pid)
    assert pidAlive(pid)
    assert not (tmp_path / "twistd.pid").exists()

    a = processes.node("A", "--join", f"127.0.0.1:{port}")
    a.expect(rf"^\* connected: 127\.0\.0\.1:{port} \(")
    a.type(f"send 127.0.0.1:{port} Hello, daemon")
    a.expect(rf"^delivered to 127\.0\.0\.1:{port} \(")

    os.kill(pid, signal.SIGTERM)
    a.expect(rf"^\* disconnected: 127\.0\.0\.1:{port} .*\(node shutting down\)$")
    waitUntil(lambda: not pidAlive(pid), f"daemon {pid} to exit")
    waitUntil(lambda: not pidfile.exists(), f"{pidfile} to be removed")
    log = (tmp_path / "node.log").read_text()
    assert "Traceback" not in log, log
    assertClean(a)

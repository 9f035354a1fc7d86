"""
End-to-end failure handling: real twistd nodes killed with SIGKILL, frozen
with SIGSTOP, and restarted from their data directories.
"""

from __future__ import annotations

import re
import signal

from processes import (
    DEADLINE, Processes, TwistdProcess, connected, freePort, label, received,
    runTwistd,
)

FAST = ("--ping-interval", "0.2", "--peer-timeout", "1.5",
        "--reconnect-max-delay", "0.5")


def startNode(processes: Processes, name: str, port: int,
              *options: str) -> TwistdProcess:
    """A node on a fixed port, so its default data directory is p2p-PORT."""
    return processes.node(name, *FAST, *options, port=port)


def disconnected(node: TwistdProcess) -> str:
    return rf"^\* disconnected: {label(node)} "


def expectSince(node: TwistdProcess, start: int, *patterns: str) -> None:
    """Wait for lines matching every pattern, in any order, after C{start}."""
    for pattern in patterns:
        node._waitFor(pattern, start, DEADLINE)


def stateOf(observer: TwistdProcess, node: TwistdProcess) -> str:
    for line in observer.command("peers"):
        if line.startswith(f"{node.address} ") and node.nodeId in line:
            return line
    return ""


def test_kill_9_survivors_carry_on_and_take_the_node_back(processes):
    ports = [freePort() for _ in range(4)]
    a = startNode(processes, "a", ports[0])
    others = [startNode(processes, name, port, "--join", a.address)
              for name, port in zip("bcd", ports[1:])]
    b, c, d = others
    everyone = [a, b, c, d]
    for node in everyone:
        expectSince(node, 0, *[connected(o) for o in everyone if o is not node])
    marks = {node: len(node.lines) for node in everyone}

    c.proc.kill()  # SIGKILL: no BYE, sockets closed by the kernel
    c.wait()
    survivors = [a, b, d]
    for node in survivors:
        expectSince(node, marks[node], disconnected(c))
    b.type("broadcast after the crash")
    d.type("broadcast from d")
    expectSince(a, marks[a], received("broadcast", b, "after the crash"),
                received("broadcast", d, "from d"))
    expectSince(d, marks[d], received("broadcast", b, "after the crash"))
    expectSince(b, marks[b], received("broadcast", d, "from d"))
    assert "reconnecting" in stateOf(a, c)

    # The same command line again: same port, same data directory, so the
    # same node id, and no --join: it rejoins from its saved peers.
    again = startNode(processes, "c2", ports[2])
    assert again.nodeId == c.nodeId
    for node in survivors:
        expectSince(node, marks[node], connected(again))
    again.type("broadcast c is back")
    for node in survivors:
        expectSince(node, marks[node], received("broadcast", again, "c is back"))
    for node in survivors:
        assert len(node.matching(re.escape("c is back"))) == 1


def test_a_frozen_node_is_dropped_and_taken_back(processes):
    ports = [freePort() for _ in range(2)]
    a = startNode(processes, "a", ports[0])
    b = startNode(processes, "b", ports[1], "--join", a.address)
    a.expect(connected(b))
    b.signal(signal.SIGSTOP)
    a.expect(disconnected(b) + r"\(no response for ")
    b.signal(signal.SIGCONT)
    a.expect(connected(b))
    a.type(f"send {b.address} welcome back")
    a.expect(rf"^delivered to {label(b)}$")


def test_a_leaving_node_is_not_chased_and_comes_back(processes):
    ports = [freePort() for _ in range(2)]
    a = startNode(processes, "a", ports[0])
    b = startNode(processes, "b", ports[1], "--join", a.address)
    a.expect(connected(b))
    # Each console tells of the link as its own node sees it: b has
    # joined (and keeps a among its peers) once b says so.
    b.expect(connected(a))
    b.type("exit")
    assert b.wait() == 0
    a.expect(disconnected(b) + r"\(node shutting down\)")
    assert " left since " in stateOf(a, b)
    again = startNode(processes, "b2", ports[1])
    assert again.nodeId == b.nodeId
    a.expect(connected(again))
    assert not a.matching(rf"^{re.escape(b.address)} .* reconnecting")


def test_corrupt_saved_peers_are_reported_and_ignored(processes, tmp_path):
    port = freePort()
    directory = tmp_path / f"p2p-{port}"
    directory.mkdir()
    (directory / "peers.json").write_bytes(b"\xff garbage")
    a = startNode(processes, "a", freePort())
    node = startNode(processes, "n", port, "--join", a.address)
    node.expect(r"^! ignoring .*peers\.json")
    node.expect(connected(a))


def test_a_data_directory_serves_one_node_at_a_time(processes, tmp_path):
    port = freePort()
    startNode(processes, "first", port)
    result = runTwistd(["-n", "p2p", "--port", str(freePort()),
                        "--data-dir", str(tmp_path / f"p2p-{port}")],
                       cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "is in use by another node" in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1, output

"""
End to end: a daemon whose control endpoint is a bare TCP port, driven by
C{p2p-console} with the cookie of its data directory, and not by a
browser's request.
"""

from __future__ import annotations

import os
import signal
import socket
import stat

from processes import DEADLINE, pidAlive, waitUntil
from test_control_e2e import assertNoTraceback, runConsole, startDaemon
from test_control_e2e import workdir  # noqa: F401 (a fixture)

FORM_POST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
             b'{"command": "exit"}\n')


def exchange(port: int, data: bytes) -> bytes:
    """Send C{data} to 127.0.0.1:C{port}; all it answers, until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(data)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def test_tcp_control_asks_for_the_cookie(workdir):  # noqa: F811
    from processes import freePort
    port = freePort()
    a = startDaemon(workdir, "A", "--control", str(port))
    cwd, _ = workdir
    where = f"tcp:127.0.0.1:{port}"
    cookie = cwd / "A" / "control.cookie"
    assert stat.S_IMODE(os.stat(cookie).st_mode) == 0o600

    result = runConsole(cwd, "--control", where, "info")
    assertNoTraceback(result)
    assert result.returncode == 1
    assert result.stderr.startswith(f"p2p-console: --control {where}: a TCP "
                                    f"control endpoint asks for the node's "
                                    f"cookie")
    assert len(result.stderr.splitlines()) == 1

    answer = exchange(port, FORM_POST)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    answer = exchange(port, b'{"command": "exit"}\n')
    assert b"authentication required" in answer
    assert pidAlive(a.pid)

    result = a.console("--control", where, "--json", "info")
    assert result.returncode == 0, result
    assert f'"port": {a.port}' in result.stdout

    os.kill(a.pid, signal.SIGTERM)
    a.waitGone()
    waitUntil(lambda: not cookie.exists(), "the cookie to be removed")
    assert "Traceback" not in a.log(), a.log()

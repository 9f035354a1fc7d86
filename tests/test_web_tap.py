"""
The web UI from the command line: --web, --web-token and --web-token-file,
and a real twistd process serving the API (or failing to listen).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from urllib.error import HTTPError

import pytest
from twisted.python import usage

from p2poverlay import tap
from p2poverlay.web import WebService

from processes import (
    DEADLINE, LOOPBACK_ENDPOINT, freePort, runTwistd,
)


def parse(*args: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def test_web_is_off_by_default():
    options = parse()
    assert options["web"] is None
    service = tap.makeService(parse("--data-dir", ""))
    assert not [s for s in service if isinstance(s, WebService)]


@pytest.mark.parametrize("value, endpoint", [
    ("8080", "tcp:8080:interface=127.0.0.1"),
    ("0", "tcp:0:interface=127.0.0.1"),
    ("tcp:8080:interface=0.0.0.0", "tcp:8080:interface=0.0.0.0"),
    ("tcp6:8080:interface=\\:\\:1", "tcp6:8080:interface=\\:\\:1"),
])
def test_web_endpoint(value, endpoint):
    assert parse("--web", value)["web"] == endpoint


@pytest.mark.parametrize("args, message", [
    (["--web", "70000"], "--web 70000: not a port number (0-65535)"),
    (["--web", "nonsense:1"], "--web 'nonsense:1': not a port number or server"),
    (["--web-token", "t"], "a web token needs --web"),
    (["--web", "0", "--web-token", ""], "printable characters without spaces"),
    (["--web", "0", "--web-token", "a b"], "printable characters without spaces"),
    (["--web", "0", "--web-token", "a", "--web-token-file", "f"],
     "give --web-token or --web-token-file, not both"),
    (["--web", "0", "--web-token-file", "/nonexistent/token"],
     "--web-token-file: [Errno 2] No such file or directory"),
])
def test_bad_web_options(args, message):
    with pytest.raises(usage.UsageError) as error:
        parse(*args)
    assert message in str(error.value)


def test_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("from-a-file\n")
    options = parse("--web", "0", "--web-token-file", str(path))
    assert options["web-token"] == "from-a-file"


def test_makeService_adds_the_web_service():
    service = tap.makeService(parse("--data-dir", "", "--web", "8080",
                                    "--web-token", "tok"))
    [web] = [s for s in service if isinstance(s, WebService)]
    assert web.endpoint == "tcp:8080:interface=127.0.0.1"
    assert web.token == "tok"
    assert web.node is service.node


# -- the real command -----------------------------------------------------------




def fetch(url: str, token: str = None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return response.status, json.loads(response.read())
    except HTTPError as e:
        return e.code, json.loads(e.read())


def test_twistd_serves_the_api(processes, tmp_path):
    (tmp_path / "token").write_text("tok\n")
    webPort = freePort()
    node = processes.node("a", "--web", str(webPort),
                          "--web-token-file", str(tmp_path / "token"))
    url = f"http://127.0.0.1:{webPort}/api/node"
    status, body = fetch(url)
    assert status == 401 and "token" in body["error"]
    status, body = fetch(url, token="tok")
    assert status == 200
    assert body["node_id"] == node.nodeId and body["port"] == node.port


def test_console_shows_the_exposure_warning(processes):
    node = processes.node("a", "--web", "tcp:0")
    node.expect(r"^! the web UI on 0\.0\.0\.0:\d+ is reachable beyond this "
                r"machine .*give --web-token")
    quiet = processes.node("b", "--web", "0")
    quiet.command("info")
    assert not quiet.matching(r"^! ")


@pytest.fixture
def busyPort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
def test_web_port_in_use(tmp_path, busyPort, daemon):
    args = ["p2p", "--port", LOOPBACK_ENDPOINT.format(freePort()),
            "--web", str(busyPort), "--data-dir", ""]
    result = runTwistd(args if daemon else ["-n", *args], cwd=tmp_path,
                       stdin=subprocess.DEVNULL, timeout=DEADLINE + 5)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    # A daemon is told before it leaves the terminal, as a node in the
    # foreground is: one line there.
    lines = [line for line in output.splitlines()
             if "cannot listen for the web UI" in line]
    assert lines == [f"p2p: cannot listen for the web UI on "
                     f"tcp:{busyPort}:interface=127.0.0.1: "
                     f"Address already in use"], output


def test_built_package_ships_the_page(tmp_path):
    """
    The build that C{pip install .} makes (setuptools' build step, run here
    offline on a copy of this tree) carries the page's files, and code
    imported from that build serves them.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(tap.__file__)))
    source = tmp_path / "source"
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__",
        ".pytest_cache", ".hypothesis", "tests"))
    built = tmp_path / "built"
    subprocess.run(
        [sys.executable, "setup.py", "--quiet", "build",
         "--build-base", str(built)],
        cwd=source, check=True, capture_output=True, timeout=120)
    lib = built / "lib"
    static = lib / "p2poverlay" / "web" / "static"
    assert sorted(p.name for p in static.iterdir()) == [
        "app.js", "index.html", "style.css"]
    result = subprocess.run(
        [sys.executable, "-c",
         "import p2poverlay.web.service as s; print(s.STATIC)"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(lib)),
        capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == str(static)

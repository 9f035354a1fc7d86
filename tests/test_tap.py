"""
The twistd plugin: its options, the service it builds, and how the real
C{twistd} command reports bad input and start-up failures.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import pytest
from twisted.application.service import IService, MultiService
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions

from p2poverlay import tap
from p2poverlay.console import ConsoleService
from p2poverlay.message import MAX_NAME_LENGTH
from p2poverlay import Node

from processes import DEADLINE, LOOPBACK_ENDPOINT, runTwistd, waitUntil
from test_control_e2e import runConsole


def parse(*args: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def twistdConfig(*args: str, console: bool, monkeypatch) -> ServerOptions:
    """Parse a whole twistd command line, as if stdin were (not) a console."""
    monkeypatch.setattr(tap, "stdinIsNull", lambda: not console)
    config = ServerOptions()
    config.parseOptions(list(args))
    return config


# -- options ------------------------------------------------------------


def test_defaults():
    options = parse()
    assert options["listen"] == "tcp:9000"
    assert options["join"] == []
    assert options["name"] == ""
    assert options["max-line-length"] == 65536
    assert options["handshake-timeout"] == 10.0
    assert options["broadcast-ttl"] == 64


@pytest.mark.parametrize("port, listen", [
    ("9000", "tcp:9000"),
    ("0", "tcp:0"),
    ("65535", "tcp:65535"),
    ("tcp:9001:interface=127.0.0.1", "tcp:9001:interface=127.0.0.1"),
])
def test_port(port, listen):
    assert parse("--port", port)["listen"] == listen
    assert parse("-p", port)["listen"] == listen


@pytest.mark.parametrize("port, message", [
    ("abc", "not a port number or server endpoint"),
    ("70000", "not a port number (0-65535)"),
    ("tcp:notaport", "not a port number or server endpoint"),
    ("", "not a port number or server endpoint"),
])
def test_bad_port(port, message):
    with pytest.raises(usage.UsageError) as e:
        parse("--port", port)
    text = str(e.value)
    assert text.startswith("--port ")
    assert message in text
    assert "\n" not in text


def test_join_repeatable():
    options = parse("--join", "127.0.0.1:9000", "--join", "example.org:9001",
                    "--join", "[::1]:9002")
    assert options["join"] == [
        ("127.0.0.1", 9000), ("example.org", 9001), ("::1", 9002)]


@pytest.mark.parametrize("address, message", [
    ("nohost", "expected host:port"),
    (":9000", "expected host:port"),
    ("1.2.3.4:99999", "bad port"),
    ("1.2.3.4:0", "bad port"),
    ("1.2.3.4:x", "bad port"),
    ("::1:9000", "put an IPv6 address in brackets: [::1]:9000"),
])
def test_bad_join(address, message):
    with pytest.raises(usage.UsageError) as e:
        parse("--join", address)
    assert str(e.value).startswith("--join: ")
    assert message in str(e.value)


def test_name():
    assert parse("--name", "alice")["name"] == "alice"
    assert parse("--name", "x" * MAX_NAME_LENGTH)["name"] == "x" * MAX_NAME_LENGTH


@pytest.mark.parametrize("name", ["x" * (MAX_NAME_LENGTH + 1), "a\nb", "\x1b[2J"])
def test_bad_name(name):
    with pytest.raises(usage.UsageError, match=r"^--name must be at most"):
        parse("--name", name)


@pytest.mark.parametrize("option, value, message", [
    ("--max-line-length", "0", "must be at least 1, got 0"),
    ("--max-line-length", "-5", "must be at least 1"),
    ("--max-line-length", "big", "must be a whole number, got 'big'"),
    ("--handshake-timeout", "0", "must be more than 0, got 0"),
    ("--handshake-timeout", "nan", "must be more than 0, got nan"),
    ("--handshake-timeout", "soon", "must be a number, got 'soon'"),
    ("--broadcast-ttl", "0", "must be between 1 and"),
    ("--broadcast-ttl", "256", "must be between 1 and"),
    ("--min-peers", "0", "must be at least 1"),
    ("--broadcast", "gossip", "must be 'tree' or 'flood', got 'gossip'"),
    ("--dht-b", "0", "must be at least 1"),
])
def test_bad_numbers(option, value, message):
    with pytest.raises(usage.UsageError) as e:
        parse(option, value)
    # The error names the option, in one line.
    assert str(e.value) == f"{option}: {message}" or \
        str(e.value).startswith(f"{option}: {message}")
    assert "\n" not in str(e.value)


def test_numbers():
    options = parse("--max-line-length", "100", "--handshake-timeout", "0.5",
                    "--broadcast-ttl", "3")
    assert options["max-line-length"] == 100
    assert options["handshake-timeout"] == 0.5
    assert options["broadcast-ttl"] == 3


def test_dht_b_reaches_the_node_config():
    assert tap.nodeConfig(parse("--dht-b", "2")).dhtB == 2
    assert tap.nodeConfig(parse()).dhtB == 4
    with pytest.raises(usage.UsageError, match=r"^--dht-b must be at most 8"):
        parse("--dht-b", "9")


def test_topology_options():
    options = parse("--min-peers", "3", "--max-peers", "5",
                    "--max-direct-links", "2", "--broadcast", "flood")
    assert (options["min-peers"], options["max-peers"],
            options["max-direct-links"], options["broadcast"]) \
        == (3, 5, 2, "flood")
    defaults = parse()
    assert (defaults["min-peers"], defaults["max-peers"],
            defaults["broadcast"]) == (8, 16, "tree")


def test_min_peers_above_max_peers():
    with pytest.raises(usage.UsageError,
                       match=re.escape("--min-peers (9) is more than "
                                       "--max-peers (4)")):
        parse("--min-peers", "9", "--max-peers", "4")


# -- fitting twistd's defaults to nodes sharing a directory --------------


def test_foreground_with_console(monkeypatch):
    config = twistdConfig("-n", "p2p", "--port", "9000", console=True,
                          monkeypatch=monkeypatch)
    assert config.subCommand == "p2p"
    assert config["pidfile"] == ""
    # The node's files live in its one directory, p2p-PORT.
    assert config["logfile"] == os.path.abspath(os.path.join("p2p-9000",
                                                             "node.log"))
    assert config.subOptions["foreground"] is True
    assert config.subOptions["console"] is True


def test_foreground_without_console(monkeypatch):
    config = twistdConfig("-n", "p2p", "--port", "9000", console=False,
                          monkeypatch=monkeypatch)
    assert config["pidfile"] == ""
    assert config["logfile"] is None  # twistd logs to standard output.
    assert config.subOptions["console"] is False
    config = twistdConfig("-n", "p2p", "--no-console", console=True,
                          monkeypatch=monkeypatch)
    assert config.subOptions["console"] is False
    assert config["logfile"] is None


def test_daemon(monkeypatch):
    config = twistdConfig("p2p", "--port", "tcp:9001:interface=127.0.0.1",
                          console=True, monkeypatch=monkeypatch)
    assert config["pidfile"].endswith(os.path.join("p2p-9001", "node.pid"))
    assert config["logfile"] == os.path.abspath(os.path.join("p2p-9001",
                                                             "node.log"))
    assert config.subOptions["foreground"] is False
    assert config.subOptions["console"] is False


@pytest.mark.parametrize("nodaemon", [[], ["-n"]])
def test_explicit_pidfile_and_logfile_kept(monkeypatch, nodaemon):
    config = twistdConfig(*nodaemon, "--pidfile=mytwistd.pid",
                          "--logfile=node.log", "p2p", console=True,
                          monkeypatch=monkeypatch)
    assert config["pidfile"].endswith("mytwistd.pid")
    assert config["logfile"] == "node.log"


# -- the service ----------------------------------------------------------


def test_makeService_without_console():
    options = parse("--port", "tcp:0:interface=127.0.0.1", "--name", "n1",
                    "--join", "127.0.0.1:9000", "--max-line-length", "100",
                    "--handshake-timeout", "2.5", "--broadcast-ttl", "4")
    service = tap.makeService(options)
    assert IService.providedBy(service)
    assert isinstance(service, MultiService)
    children = list(service)
    assert len(children) == 1
    node = children[0]
    assert isinstance(node, Node)
    assert node is service.node
    config = node.config
    assert config.listen == "tcp:0:interface=127.0.0.1"
    assert config.name == "n1"
    assert tuple(config.join) == (("127.0.0.1", 9000),)
    assert config.maxLineLength == 100
    assert config.handshakeTimeout == 2.5
    assert config.broadcastTTL == 4


def test_makeService_with_console(monkeypatch):
    config = twistdConfig("-n", "p2p", "--port", "0", console=True,
                          monkeypatch=monkeypatch)
    service = tap.makeService(config.subOptions)
    kinds = [type(child) for child in service]
    assert kinds == [ConsoleService, Node]
    assert service.foreground is True


def test_makeService_daemon_has_no_console(monkeypatch):
    config = twistdConfig("p2p", "--port", "0", console=True,
                          monkeypatch=monkeypatch)
    service = tap.makeService(config.subOptions)
    assert [type(child) for child in service] == [Node]
    assert service.foreground is False


# -- the real command -------------------------------------------------------


def test_plugin_help_lists_every_option(tmp_path):
    result = runTwistd(["p2p", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result
    names = ([p[0] for p in tap.Options.optParameters]
             + [f[0] for f in tap.Options.optFlags] + ["join"])
    for name in names:
        assert re.search(rf"--{name}\b", result.stdout), (name, result.stdout)
    assert "-p, --port=" in result.stdout


def test_installed_plugin_is_found(tmp_path):
    """twistd finds the installed plugin, without this tree on the path."""
    result = runTwistd(["--help"], cwd=tmp_path, sourceTree=False)
    assert result.returncode == 0, result
    assert re.search(r"^ +p2p +A decentralized peer-to-peer overlay node$",
                     result.stdout, re.M), result.stdout


@pytest.mark.parametrize("args, message", [
    (["--port", "abc"], "--port 'abc': not a port number or server endpoint"),
    (["--join", "::1:9000"], "--join: put an IPv6 address in brackets"),
    (["--max-line-length", "0"], "must be at least 1, got 0"),
])
def test_bad_option_on_command_line(tmp_path, args, message):
    result = runTwistd(["-n", "p2p", *args], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def busyPort():
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("stdin", [subprocess.PIPE, subprocess.DEVNULL],
                         ids=["console", "no-console"])
def test_port_in_use_foreground(tmp_path, busyPort, stdin):
    result = runTwistd(
        ["-n", "p2p", "--port", LOOPBACK_ENDPOINT.format(busyPort)],
        cwd=tmp_path, stdin=stdin, timeout=DEADLINE + 5)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines()
             if "cannot listen" in line and str(busyPort) in line]
    assert len(lines) == 1, output


def test_port_in_use_daemon(tmp_path, busyPort):
    result = runTwistd(
        ["p2p", "--port", LOOPBACK_ENDPOINT.format(busyPort)],
        cwd=tmp_path, timeout=DEADLINE + 5)
    assert result.returncode == 1, result.stdout + result.stderr
    # Told at the terminal, in one line, before twistd leaves it: no daemon
    # starts, so no pid file, no log and no data directory are left.
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"p2p: cannot listen on {LOOPBACK_ENDPOINT.format(busyPort)}: "
        f"Address already in use"]
    assert list(tmp_path.iterdir()) == []


def test_web_port_in_use_daemon(tmp_path, busyPort):
    result = runTwistd(
        ["p2p", "--port", "tcp:0:interface=127.0.0.1", "--web", str(busyPort)],
        cwd=tmp_path, timeout=DEADLINE + 5)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"p2p: cannot listen for the web UI on tcp:{busyPort}:interface="
        f"127.0.0.1: Address already in use"]


def test_a_daemon_still_gets_its_port_after_the_check(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runTwistd(["p2p", "--port", LOOPBACK_ENDPOINT.format(port)],
                       cwd=tmp_path, timeout=DEADLINE + 5)
    assert result.returncode == 0, result.stdout + result.stderr
    pidFile = tmp_path / f"p2p-{port}" / "node.pid"
    log = tmp_path / f"p2p-{port}" / "node.log"
    try:
        waitUntil(lambda: log.exists() and "listening on" in log.read_text(),
                  "the daemon listening")
        # A daemon keeps its files in its data directory, not twistd.log
        # and twistd.pid shared with others.
        assert not (tmp_path / "twistd.log").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"p2p-{port}"]
        assert "Traceback" not in log.read_text()
    finally:
        waitUntil(pidFile.exists, "the pid file")
        # Its reactor runs (and handles SIGTERM) once it answers a command.
        waitUntil(lambda: runConsole(tmp_path, "--data-dir", f"p2p-{port}",
                                     "info").returncode == 0,
                  "the daemon answering")
        os.kill(int(pidFile.read_text()), signal.SIGTERM)
        waitUntil(lambda: not pidFile.exists(), "the daemon gone")


def test_join_pinned_to_a_node_id():
    nodeId = "ab" * 32
    options = tap.Options()
    options.parseOptions(["--join", f"{nodeId}@127.0.0.1:9000",
                          "--join", "[::1]:9001"])
    config = tap.nodeConfig(options)
    assert config.join == (("127.0.0.1", 9000), ("::1", 9001))
    assert config.pins == (("127.0.0.1", 9000, nodeId),)
    with pytest.raises(usage.UsageError) as e:
        tap.Options().parseOptions(["--join", "xyz@127.0.0.1:9000"])
    assert str(e.value) == ("--join: 'xyz' is not a node id (64 lowercase "
                            "hex digits)")

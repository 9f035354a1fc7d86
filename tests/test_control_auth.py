"""
The control endpoint against hostile clients, over real loopback sockets:
TCP listens on 127.0.0.1 unless told otherwise and asks for the cookie
first; no endpoint runs what looks like HTTP or is not a JSON object.
"""

import json
import os
import stat

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python import usage

from p2poverlay import tap
from p2poverlay.client import ClientError, parseArguments
from p2poverlay.control import AUTH_TIMEOUT, ControlFactory, ControlService
from p2poverlay.controlclient import (
    ControlClientProtocol, connect, controlCookie, controlEndpoint,
)
from p2poverlay.controllisten import controlListenDescription
from p2poverlay.controlwire import looksLikeHTTP, unixDescription
from p2poverlay.cookie import (
    CookieError, readCookie, removeCookie, writeCookie,
)
from p2poverlay.errors import ListenError
from p2poverlay.message import Broadcast
from p2poverlay.node import Node, NodeConfig
from p2poverlay.whereabouts import Whereabouts
from test_console import BOB, addPeer, written

FORM_POST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
             b'{"command": "exit"}\n')
GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Raw(Protocol):
    """A client that sends bytes and keeps what it is sent."""

    def __init__(self):
        self.data = b""
        self.lost = Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason=None):
        self.lost.callback(self.data)

    def lines(self):
        return [json.loads(line) for line in self.data.split(b"\n")[:-1]]


class Running:
    """A ControlService on C{description}, with its node, a peer and stops."""

    def __init__(self, dataDir, description="tcp:0"):
        self.stops = []
        self.node = Node(NodeConfig(name="me"), reactor=MemoryReactorClock())
        self.peer, self.peerTransport = addPeer(self.node, BOB, 9000, "bob")
        self.cookieFile = os.path.join(dataDir, "control.cookie")
        self.service = ControlService(
            self.node, tap.controlDescription(description, dataDir),
            stop=lambda: self.stops.append(1),
            whereabouts=Whereabouts(dataDir=dataDir))
        self.service.privilegedStartService()
        self.service.startService()

    @property
    def host(self):
        return self.service.port.getHost()

    def endpoint(self):
        if self.service.needsCookie:
            return TCP4ClientEndpoint(reactor, "127.0.0.1", self.host.port)
        return UNIXClientEndpoint(reactor, self.host.name)

    @inlineCallbacks
    def send(self, data):
        """Send C{data} as a fresh client; fires with all it was sent."""
        raw = yield connectProtocol(self.endpoint(), Raw())
        raw.transport.write(data)
        yield raw.lost
        return raw

    def broadcasts(self):
        return [m for m in written(self.peerTransport)
                if isinstance(m, Broadcast)]


@pytest_twisted.async_yield_fixture
async def running(tmp_path):
    made = Running(str(tmp_path))
    yield made
    await made.service.stopService()


@pytest_twisted.async_yield_fixture
async def unixRunning():
    import tempfile
    directory = tempfile.mkdtemp(prefix="p2pauth")  # Short, for AF_UNIX.
    made = Running(directory, unixDescription(
        os.path.join(directory, "control.sock")))
    yield made
    await made.service.stopService()
    os.rmdir(directory)


# -- where TCP listens ----------------------------------------------------------

@pytest.mark.parametrize("value, description", [
    ("7001", "tcp:7001:interface=127.0.0.1"),
    ("tcp:7001", "tcp:7001:interface=127.0.0.1"),
    ("tcp:port=7001:backlog=5", "tcp:port=7001:backlog=5:interface=127.0.0.1"),
    ("tcp6:7001", "tcp6:7001:interface=\\:\\:1"),
    ("tcp:7001:interface=0.0.0.0", "tcp:7001:interface=0.0.0.0"),
    ("tcp:7001:192.0.2.1", "tcp:7001:192.0.2.1"),
    ("unix:/tmp/c.sock", "unix:/tmp/c.sock"),
])
def test_tcp_listens_on_loopback_unless_told(value, description):
    assert controlListenDescription(value) == description


@pytest.mark.parametrize("value, why", [
    ("70001", "not a port number (0-65535)"),
    ("tcp:notaport", "not a server endpoint or 'none'"),
])
def test_bad_control_values(value, why):
    with pytest.raises(ValueError) as e:
        controlListenDescription(value)
    assert str(e.value).startswith(why)


def test_tcp_control_needs_a_data_directory():
    options = tap.Options()
    with pytest.raises(usage.UsageError) as e:
        options.parseOptions(["--port", "0", "--control", "7001"])
    assert str(e.value) == ("--control '7001': a TCP control endpoint needs a "
                            "data directory for its cookie (give --data-dir)")


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("value", ["0", "tcp:0"])
def test_a_bare_port_is_bound_to_loopback(tmp_path, value):
    made = Running(str(tmp_path), value)
    try:
        assert made.host.host == "127.0.0.1" and made.host.port != 0
        assert made.service.exposed is None
    finally:
        yield made.service.stopService()


def test_an_exposed_endpoint_is_a_warning(tmp_path):
    node = Node(NodeConfig(), reactor=MemoryReactorClock())
    service = ControlService(node, "tcp:7001:interface=0.0.0.0",
                             reactor=MemoryReactorClock(),
                             whereabouts=Whereabouts(dataDir=str(tmp_path)))
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        service.privilegedStartService()
        service.startService()
    finally:
        globalLogPublisher.removeObserver(events.append)
    (warning,) = [e for e in events if "reachable beyond" in
                  e.get("log_format", "")]
    assert warning["address"] == "0.0.0.0:7001"
    service.stopService()


def test_tcp_without_a_cookie_file_does_not_listen():
    service = ControlService(Node(NodeConfig()), "tcp:0:interface=127.0.0.1")
    with pytest.raises(ListenError, match="needs a data directory"):
        service.privilegedStartService()
    assert service.port is None


# -- the cookie file --------------------------------------------------------------

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest_twisted.inlineCallbacks
def test_the_cookie_file_is_private_new_each_start_and_removed(tmp_path):
    made = Running(str(tmp_path))
    first = readCookie(made.cookieFile)
    assert mode(made.cookieFile) == 0o600 and len(first) == 64
    yield made.service.stopService()
    assert not os.path.exists(made.cookieFile)
    again = Running(str(tmp_path))
    try:
        assert readCookie(again.cookieFile) != first
    finally:
        yield again.service.stopService()
    assert os.listdir(tmp_path) == []


def test_the_cookie_is_written_whole_and_private_under_any_umask(tmp_path):
    path = str(tmp_path / "control.cookie")
    with open(path, "w") as f:
        f.write("old")
    old = os.umask(0)
    try:
        cookie = writeCookie(path)
    finally:
        os.umask(old)
    assert mode(path) == 0o600 and readCookie(path) == cookie
    assert os.listdir(tmp_path) == ["control.cookie"]
    removeCookie(path)
    removeCookie(path)  # Gone already: nothing to do.


def test_a_cookie_others_may_read_is_refused(tmp_path):
    path = str(tmp_path / "control.cookie")
    writeCookie(path)
    os.chmod(path, 0o644)
    with pytest.raises(CookieError, match="may be read by others"):
        readCookie(path)
    os.chmod(path, 0o600)
    with open(path, "w") as f:
        f.write("not hex\n")
    with pytest.raises(CookieError, match="holds no control cookie"):
        readCookie(path)


# -- the first line ---------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_no_cookie_runs_nothing(running):
    for request in (b'{"command": "broadcast hi"}\n',
                    b'{"command": "exit"}\n', b"peers\n"):
        raw = yield running.send(request)
        (closing,) = raw.lines()
        assert closing["event"] == "closing"
        assert closing["line"].startswith("authentication required")
    assert running.stops == [] and running.broadcasts() == []


@pytest_twisted.inlineCallbacks
def test_a_wrong_cookie_runs_nothing(running):
    raw = yield running.send(b'{"auth": "%s"}\n{"command": "exit"}\n'
                             b'{"command": "broadcast hi"}\n' % (b"0" * 64))
    assert raw.lines() == [{"type": "event", "event": "closing",
                            "line": "wrong cookie",
                            "data": {"reason": "wrong cookie"}}]
    assert running.stops == [] and running.broadcasts() == []


@pytest_twisted.inlineCallbacks
def test_the_right_cookie_lets_the_client_in(running):
    cookie = readCookie(running.cookieFile)
    client = yield connectProtocol(running.endpoint(), ControlClientProtocol())
    client.authenticate(cookie)
    hello = yield client.hello
    assert hello["version"] == 2 and hello["node_id"] == running.node.nodeId
    reply = yield client.request("broadcast hi")
    assert reply["ok"], reply
    assert [m.body for m in running.broadcasts()] == ["hi"]
    client.transport.loseConnection()
    yield client.closed


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("request_", [FORM_POST, GET], ids=["POST", "GET"])
def test_http_is_refused_over_tcp(running, request_):
    raw = yield running.send(request_)
    assert raw.data.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert b"not a web server" in raw.data
    assert running.stops == [] and running.service.port is not None


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("request_", [FORM_POST, GET], ids=["POST", "GET"])
def test_http_is_refused_on_a_unix_socket(unixRunning, request_):
    raw = yield unixRunning.send(request_)
    hello, rest = raw.data.split(b"\n", 1)
    assert json.loads(hello)["type"] == "hello"
    assert rest.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert unixRunning.stops == []


@pytest_twisted.inlineCallbacks
def test_a_first_line_that_is_not_an_object_closes(unixRunning):
    raw = yield unixRunning.send(b'["exit"]\n{"command": "exit"}\n')
    hello, closing = raw.lines()
    assert closing["line"] == "the first line must be a JSON object"
    assert unixRunning.stops == []


@pytest_twisted.inlineCallbacks
def test_a_unix_socket_needs_no_cookie(unixRunning):
    assert not os.path.exists(unixRunning.cookieFile)
    client = yield connectProtocol(unixRunning.endpoint(),
                                   ControlClientProtocol())
    yield client.hello
    reply = yield client.request("exit")
    assert reply["ok"] and unixRunning.stops == [1]
    client.transport.loseConnection()
    yield client.closed


def test_a_client_that_says_nothing_is_timed_out():
    clock = Clock()
    factory = ControlFactory(Node(NodeConfig(), reactor=MemoryReactorClock()),
                             lambda: None, cookie="c" * 64, clock=clock)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    assert transport.value() == b""
    clock.advance(AUTH_TIMEOUT)
    assert json.loads(transport.value())["line"] == (
        f"no cookie within {AUTH_TIMEOUT:g} s")
    assert transport.disconnecting


@pytest.mark.parametrize("line, http", [
    (b"GET / HTTP/1.1\r", True), (b"OPTIONS * HTTP/1.1", True),
    (b"PUT /x", True), (b"HEAD /", True), (b"x HTTP/1.0", True),
    (b'{"command": "GET / HTTP/1.1"}', False), (b"peers", False),
])
def test_looksLikeHTTP(line, http):
    assert looksLikeHTTP(line) is http


# -- the client -----------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_the_client_reads_the_cookie_from_the_data_directory(running, tmp_path):
    where = f"tcp:127.0.0.1:{running.host.port}"
    options = parseArguments(["--control", where, "--data-dir", str(tmp_path)])
    client = yield ensureDeferred(connect(reactor, options))
    reply = yield client.request("info", wantJSON=True)
    assert reply["result"]["name"] == "me"
    client.transport.loseConnection()
    yield client.closed


@pytest_twisted.inlineCallbacks
def test_the_client_says_when_it_is_refused(running, tmp_path):
    wrong = tmp_path / "wrong.cookie"
    writeCookie(str(wrong))
    where = f"tcp:127.0.0.1:{running.host.port}"
    options = parseArguments(["--control", where, "--cookie-file", str(wrong)])
    with pytest.raises(ClientError) as e:
        yield ensureDeferred(connect(reactor, options))
    assert str(e.value) == (f"the node at {where} refused the connection "
                            f"(wrong cookie)")


@pytest.mark.parametrize("argv, message", [
    (["--control", "tcp:127.0.0.1:1"],
     "--control tcp:127.0.0.1:1: a TCP control endpoint asks for the node's "
     "cookie: give --data-dir D (for D/control.cookie) or --cookie-file PATH"),
    (["--control", "tcp:127.0.0.1:1", "--data-dir", "/nonexistent"],
     "no cookie for tcp:127.0.0.1:1: cannot read "
     "/nonexistent/control.cookie: No such file or directory"),
    (["--control", "unix:/tmp/c.sock", "--cookie-file", "/x"],
     "--cookie-file: only a TCP --control endpoint asks for a cookie"),
])
def test_the_client_without_a_cookie_is_one_line(argv, message):
    options = parseArguments(argv)
    endpoint, _ = controlEndpoint(reactor, options)
    with pytest.raises(ClientError) as e:
        controlCookie(options, endpoint)
    assert str(e.value) == message


def test_a_bad_endpoint_is_said_before_a_missing_cookie_file():
    service = ControlService(Node(NodeConfig()), "bogus:1")
    with pytest.raises(ListenError, match="bad control endpoint 'bogus:1'"):
        service.privilegedStartService()

"""
Unit and loopback tests of the control endpoint: L{ControlProtocol} on a
StringTransport, private UNIX sockets and L{ControlService} in the real
reactor, the client's side of the protocol, and the C{--control} option.
"""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.python.failure import Failure

import p2poverlay
from p2poverlay import tap
from p2poverlay.client import (
    ClientError, ControlClientProtocol, connectionProblem, controlEndpoint,
    parseArguments,
)
from p2poverlay.commands import HELP
from p2poverlay.control import (
    ControlFactory, ControlProtocol, ControlService, listenControl,
    listenUNIXPrivately,
)
from p2poverlay.controlwire import BadRequest, parseRequest, unixDescription
from p2poverlay.errors import ListenError
from p2poverlay.message import PROTOCOL_VERSION, Ack, Data, newMessageId
from p2poverlay.node import Node, NodeConfig

from p2poverlay.whereabouts import Whereabouts
from test_console import BOB, addPeer, receive, written
from helpers import UNOBSERVED, UNOBSERVED_VIEW


@pytest.fixture
def node():
    return Node(NodeConfig(name="me", ackTimeout=30.0), reactor=MemoryReactorClock())


class Client:
    """A ControlProtocol on a StringTransport, as one client sees it."""

    def __init__(self, node):
        self.stops = 0
        self.factory = ControlFactory(node, self._stop)
        self.protocol = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self._read = 0

    def _stop(self):
        self.stops += 1

    def received(self):
        """The messages sent to the client since the last call."""
        data = self.transport.value()[self._read:]
        self._read += len(data)
        assert data == b"" or data.endswith(b"\n")
        return [json.loads(line) for line in data.split(b"\n")[:-1]]

    def write(self, data: bytes):
        self.protocol.dataReceived(data)
        return self.received()

    def request(self, command, wantJSON=False, requestId=1):
        return self.write(json.dumps(
            {"id": requestId, "command": command, "json": wantJSON}).encode() + b"\n")

    def disconnect(self):
        self.protocol.connectionLost(Failure(ConnectionDone()))


@pytest.fixture
def client(node):
    made = Client(node)
    yield made
    made.disconnect()


# -- the protocol -------------------------------------------------------------------

def test_hello_on_connect(node, client):
    (hello,) = client.received()
    assert hello == {"type": "hello", "version": 2, "node_id": node.nodeId,
                     "name": "me", "port": 0,
                     "line": f"node {node.nodeId} 'me' listening on port 0"}


def test_hello_says_where_the_node_logs_and_serves_its_web_ui(node):
    about = Whereabouts(log="/srv/p2p/node.log")
    factory = ControlFactory(node, lambda: None, about)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    hello = json.loads(transport.value().splitlines()[0])
    assert hello["log"] == "/srv/p2p/node.log" and "web" not in hello
    protocol.connectionLost(Failure(ConnectionDone()))
    about.web = type("Web", (), {"port": None})()
    transport = StringTransport()
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(transport)
    hello = json.loads(transport.value().splitlines()[0])
    assert hello["web"] == "none (it could not listen)"
    protocol.connectionLost(Failure(ConnectionDone()))


def test_request_and_reply(node, client):
    client.received()
    (reply,) = client.request("info", requestId=7)
    assert reply == {"type": "reply", "id": 7, "ok": True, "lines": [
        f"node {node.nodeId} 'me' not listening yet, 0 peers",
        f"  key:     {node.key.fingerprint}; peer links: TLS 1.3",
        "  dht:     0 nodes in its table, not joined", UNOBSERVED]}
    (reply,) = client.request("info", wantJSON=True, requestId="x")
    assert reply["id"] == "x"
    assert reply["result"] == {"node_id": node.nodeId, "name": "me",
                               "address": None, "port": 0, "uptime": 0.0,
                               "protocol_version": PROTOCOL_VERSION,
                               "peers": 0,
                               "fingerprint": node.key.fingerprint,
                               "tls": True,
                               "dht": {"state": "not joined", "contacts": 0},
                               "reachability": UNOBSERVED_VIEW}


def test_the_same_commands_as_the_console(client):
    client.received()
    (reply,) = client.request("HELP")
    assert reply["lines"] == HELP.splitlines()
    (reply,) = client.request("frob a b")
    assert reply["ok"] is False
    assert reply["error"] == "unknown command 'frob'; type 'help'"
    assert reply["lines"] == ["error: unknown command 'frob'; type 'help'"]
    (reply,) = client.request("broadcast", wantJSON=True)
    assert reply["ok"] is False and reply["result"] is None
    assert reply["lines"] == ["usage: broadcast <message>"]


def test_request_without_id(client):
    client.received()
    (reply,) = client.write(b'{"command": "peers"}\n')
    assert reply["id"] is None and reply["ok"] is True
    assert "result" not in reply


def test_empty_command(client):
    client.received()
    (reply,) = client.request("  ")
    assert reply["ok"] is False and reply["error"] == "empty command"


@pytest.mark.parametrize("line, why", [
    (b"peers", "not a JSON object"),
    (b"[1, 2]", "not a JSON object"),
    (b"\xff\xfe", "not a JSON object"),
    (b'{"command": 5}', "'command' must be a string"),
    (b'{"json": true}', "'command' must be a string"),
    (b'{"command": "info", "json": "yes"}', "'json' must be true or false"),
    (b'{"command": "info", "id": [1]}', "'id' must be a string or a number"),
    (b'{"command": "info", "id": true}', "'id' must be a string or a number"),
])
def test_bad_request_is_answered_and_the_connection_kept(node, client, line, why):
    client.request("info")  # After the first line; that one is checked more.
    client.received()
    (reply,) = client.write(line + b"\n")
    assert reply == {"type": "reply", "id": None, "ok": False,
                     "lines": [f"error: bad request: {why}"],
                     "error": f"bad request: {why}"}
    assert not client.transport.disconnecting
    (reply,) = client.request("info")
    assert reply["ok"] is True


def test_parseRequest():
    assert parseRequest(b'{"command": "peers", "json": true, "id": 3}') == (
        3, "peers", True)
    assert parseRequest(b'{"command": "x"}') == (None, "x", False)
    with pytest.raises(BadRequest):
        parseRequest(b"null")


def test_overlong_request_is_refused(client):
    client.request("info")
    client.received()
    (reply,) = client.write(b"x" * (ControlProtocol.MAX_LENGTH + 2))
    assert reply["ok"] is False
    assert reply["error"].startswith("bad request: line longer than")
    client.write(b"rest of the long line\n")
    (reply,) = client.request("peers")
    assert reply["ok"] is True


def test_blank_lines_are_ignored(client):
    client.received()
    assert client.write(b"\n  \n") == []


def test_replies_come_when_ready_with_their_ids(node, client):
    connection, transport = addPeer(node, BOB, 9000, "bob")
    client.received()
    assert client.request("send bob hi", wantJSON=True, requestId=1) == []
    (info,) = client.request("info", requestId=2)
    assert info["id"] == 2
    (data,) = written(transport)
    receive(connection, Ack(data.id))
    (sent,) = client.received()
    assert sent["id"] == 1 and sent["ok"] is True
    assert sent["lines"] == ["delivered to 127.0.0.1:9000 (b0b00000 'bob')"]
    assert sent["result"]["delivered_to"]["node_id"] == BOB


def test_events_are_sent_live(node, client):
    client.received()
    connection, _ = addPeer(node, BOB, 9000, "bob")
    receive(connection, Data(newMessageId(), "hi\x1b[2J"))
    connection.dataReceived(b"not json\n")
    connected, message, warning = client.received()
    assert connected["type"] == "event" and connected["event"] == "connected"
    assert connected["line"] == "* connected: 127.0.0.1:9000 (b0b00000 'bob')"
    assert message["event"] == "message"
    # Raw text in the protocol: the client escapes it for its terminal.
    assert message["line"] == "[direct] 127.0.0.1:9000 (b0b00000 'bob'): hi\x1b[2J"
    assert message["data"]["body"] == "hi\x1b[2J"
    assert message["data"]["sender"]["name"] == "bob"
    assert warning["event"] == "warning"
    assert warning["line"].startswith("! ") and "not valid JSON" in warning["line"]


def test_every_client_sees_events(node):
    first, second = Client(node), Client(node)
    try:
        first.received(), second.received()
        addPeer(node, BOB, 9000, "bob")
        assert [m["event"] for m in first.received()] == ["connected"]
        assert [m["event"] for m in second.received()] == ["connected"]
    finally:
        first.disconnect()
        second.disconnect()


def test_a_client_that_does_not_read_misses_events_and_is_told(node, client):
    client.received()
    connection, _ = addPeer(node, BOB, 9000, "bob")
    client.received()
    client.protocol.pauseProducing()  # What the transport does when full.
    assert client.transport.producerState == "paused"  # Its requests wait too.
    for _ in range(3):
        receive(connection, Data(newMessageId(), "unseen"))
    assert client.received() == []
    client.protocol.resumeProducing()
    (dropped,) = client.received()
    assert dropped["event"] == "dropped" and dropped["data"] == {"count": 3}
    receive(connection, Data(newMessageId(), "seen"))
    (message,) = client.received()
    assert message["data"]["body"] == "seen"


def test_exit_stops_the_node(client):
    client.received()
    (reply,) = client.request("exit", wantJSON=True)
    assert reply["lines"] == ["leaving the overlay"]
    assert reply["result"] == {"stopping": True}
    assert client.stops == 1


def test_close_says_why_and_hangs_up(node, client):
    client.received()
    client.protocol.close("node stopping")
    (closing,) = client.received()
    assert closing["event"] == "closing" and closing["line"] == "node stopping"
    assert client.transport.disconnecting
    assert client.request("info") == []  # Nothing more once closing.


def test_disconnected_client_is_forgotten(node, client):
    protocol = client.protocol
    assert protocol in client.factory.clients
    client.disconnect()
    assert protocol not in client.factory.clients
    assert protocol.watcher not in node.observers
    addPeer(node, BOB, 9000, "bob")
    assert client.received()[-1]["type"] == "hello"


# -- listening ---------------------------------------------------------------------

@pytest.fixture
def sockdir(tmp_path_factory):
    # Short: a UNIX socket path must fit in about 100 bytes.
    import tempfile
    path = tempfile.mkdtemp(prefix="p2pctl")
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


@pytest.fixture
def loudUmask():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def factory(node):
    return ControlFactory(node, lambda: None)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest_twisted.inlineCallbacks
def test_socket_is_private_whatever_the_umask(sockdir, factory, loudUmask):
    path = os.path.join(sockdir, "control.sock")
    port = listenUNIXPrivately(reactor, path, factory)
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert mode(path) == 0o600
        assert os.umask(0) == 0  # Put back as it was.
    finally:
        yield port.stopListening()
    assert not os.path.exists(path)


@pytest_twisted.inlineCallbacks
def test_socket_is_never_more_open_than_0600(sockdir, factory, loudUmask,
                                             monkeypatch):
    """The file is private from its creation (bind), not only after chmod."""
    modes = []
    monkeypatch.setattr(os, "chmod", lambda path, m: modes.append(mode(path)))
    path = os.path.join(sockdir, "control.sock")
    port = listenUNIXPrivately(reactor, path, factory)
    try:
        assert modes == [0o600]
        assert mode(path) == 0o600
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_stale_socket_is_replaced(sockdir, factory):
    path = os.path.join(sockdir, "control.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # Bound, never listening: as after a crash.
    port = listenUNIXPrivately(reactor, path, factory)
    try:
        assert mode(path) == 0o600
        protocol = yield connectProtocol(UNIXClientEndpoint(reactor, path),
                                         Protocol())
        protocol.transport.loseConnection()
    finally:
        yield port.stopListening()


def test_socket_in_use_is_not_taken(sockdir, factory):
    path = os.path.join(sockdir, "control.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    try:
        with pytest.raises(ListenError, match="another process listens there"):
            listenUNIXPrivately(reactor, path, factory)
        assert os.path.exists(path)
    finally:
        live.close()


def test_a_file_that_is_not_a_socket_is_left_alone(sockdir, factory):
    path = os.path.join(sockdir, "control.sock")
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(ListenError, match="exists and is not a socket"):
        listenUNIXPrivately(reactor, path, factory)
    assert open(path).read() == "precious"


@pytest.mark.parametrize("description, message", [
    ("bogus:1", "bad control endpoint 'bogus:1'"),
    ("unix:/nonexistent/dir/c.sock", "cannot listen on /nonexistent/dir/c.sock: "
                                     "No such file or directory"),
])
def test_listen_errors_are_one_line(factory, description, message):
    with pytest.raises(ListenError) as e:
        listenControl(reactor, description, factory)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_tcp_port_in_use(factory):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        where = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        with pytest.raises(ListenError, match="Address already in use"):
            listenControl(reactor, where, factory)


@pytest_twisted.inlineCallbacks
def test_unixDescription_escapes_colons(sockdir, factory):
    path = os.path.join(sockdir, "a:b.sock")
    port = listenControl(reactor, unixDescription(path), factory)
    try:
        assert mode(path) == 0o600
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_service_serves_clients_and_tells_them_when_it_stops(sockdir):
    node = Node(NodeConfig(name="svc"))
    stops = []
    path = os.path.join(sockdir, "control.sock")
    service = ControlService(node, unixDescription(path), stop=lambda: stops.append(1))
    service.privilegedStartService()
    service.startService()
    client = ControlClientProtocol()
    events = []
    client.onEvent = events.append
    try:
        yield connectProtocol(UNIXClientEndpoint(reactor, path), client)
        hello = yield client.hello
        assert hello["node_id"] == node.nodeId
        reply = yield client.request("peers", wantJSON=True)
        assert reply["ok"] and reply["result"] == {"peers": []}
        reply = yield client.request("exit")
        assert reply["lines"] == ["leaving the overlay"] and stops == [1]
    finally:
        yield service.stopService()
    yield client.closed
    assert [e["event"] for e in events] == ["closing"]
    assert client.stopping
    assert not os.path.exists(path)


def test_optional_service_runs_without_an_endpoint_it_cannot_have(sockdir):
    from twisted.logger import globalLogPublisher
    node = Node(NodeConfig())
    path = os.path.join(sockdir, "d" * 120, "control.sock")
    required = ControlService(node, unixDescription(path))
    with pytest.raises(ListenError, match="AF_UNIX path too long"):
        required.privilegedStartService()

    warnings = []
    globalLogPublisher.addObserver(warnings.append)
    try:
        optional = ControlService(node, unixDescription(path), optional=True)
        optional.privilegedStartService()
        optional.startService()
    finally:
        globalLogPublisher.removeObserver(warnings.append)
    assert optional.port is None and optional.failed
    (warning,) = [e for e in warnings if "no control endpoint" in
                  e.get("log_format", "")]
    assert "AF_UNIX path too long" in warning["why"]
    optional.stopService()


# -- the client's side ---------------------------------------------------------------

def clientOn(transport=None):
    protocol = ControlClientProtocol()
    protocol.makeConnection(transport or StringTransport())
    return protocol


def test_client_matches_replies_to_requests():
    protocol = clientOn()
    first, second = protocol.request("send bob hi"), protocol.request("peers", True)
    sent = [json.loads(line) for line in protocol.transport.value().splitlines()]
    assert sent == [{"id": 1, "command": "send bob hi", "json": False},
                    {"id": 2, "command": "peers", "json": True}]
    got = []
    first.addCallback(got.append)
    second.addCallback(got.append)
    protocol.dataReceived(b'{"type":"reply","id":2,"ok":true,"lines":[]}\n')
    protocol.dataReceived(b'{"type":"reply","id":1,"ok":false,"lines":["e"]}\n')
    assert [m["id"] for m in got] == [2, 1]
    assert protocol.pending() == []


def test_client_hands_events_over():
    protocol = clientOn()
    events = []
    protocol.onEvent = events.append
    protocol.dataReceived(b'{"type":"hello","node_id":"x"}\n'
                          b'{"type":"event","event":"message","line":"l"}\n'
                          b'{"type":"event","event":"closing","line":"bye"}\n')
    assert protocol.hello.result["node_id"] == "x"
    assert [e["event"] for e in events] == ["message", "closing"]
    assert protocol.stopping


@pytest.mark.parametrize("junk", [b"HTTP/1.1 400 Bad Request", b"[1]", b"{}"])
def test_client_hangs_up_on_what_is_not_the_protocol(junk):
    protocol = clientOn()
    pending = protocol.request("info")
    protocol.dataReceived(junk + b"\n")
    assert protocol.transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone()))
    failure = []
    pending.addErrback(failure.append)
    assert failure[0].check(ClientError)
    assert "not the control protocol" in failure[0].getErrorMessage()
    protocol.hello.addErrback(lambda f: None)


def test_client_connection_lost_fails_what_is_pending():
    protocol = clientOn()
    pending = protocol.request("send x y")
    protocol.connectionLost(Failure(ConnectionDone()))
    failure = []
    pending.addErrback(failure.append)
    assert str(failure[0].value) == "the node closed the connection"
    protocol.hello.addErrback(lambda f: None)


@pytest.mark.parametrize("argv, where", [
    ([], "p2p-9000/control.sock"),
    (["--port", "9001"], "p2p-9001/control.sock"),
    (["--data-dir", "/srv/node"], "/srv/node/control.sock"),
    (["--control", "unix:/tmp/ctl.sock"], "unix:/tmp/ctl.sock"),
    (["--control", "tcp:127.0.0.1:7001"], "tcp:127.0.0.1:7001"),
])
def test_client_endpoint(argv, where):
    _, named = controlEndpoint(reactor, parseArguments(argv))
    assert named == where


def test_client_command_keeps_its_words():
    options = parseArguments(["--json", "--port", "9001", "send", "bob",
                              "-x", "--json", "hi"])
    assert options.json and options.port == 9001
    assert options.command == ["send", "bob", "-x", "--json", "hi"]
    assert parseArguments([]).command == []


def test_client_bad_control_endpoint():
    with pytest.raises(ClientError, match="--control 'bogus:1': not a client endpoint"):
        controlEndpoint(reactor, parseArguments(["--control", "bogus:1"]))


def test_connectionProblem():
    assert connectionProblem(Failure(ConnectionRefusedError())) == "connection refused"


def test_client_imports_nothing_of_the_node():
    """
    p2p-console loads the wire format, the command table, the terminal
    and escaping, not the server.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(p2poverlay.__file__)))
    script = ("import sys, p2poverlay.client; print(' '.join(sorted("
              "m for m in sys.modules if m.startswith('p2poverlay'))))")
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        check=True, cwd=root, env=dict(os.environ, PYTHONPATH=root)).stdout
    assert loaded.split() == ["p2poverlay", "p2poverlay.client",
                              "p2poverlay.commandtable",
                              "p2poverlay.consoleio",
                              "p2poverlay.controlclient",
                              "p2poverlay.controlwire", "p2poverlay.cookie",
                              "p2poverlay.lineedit",
                              "p2poverlay.linesearch", "p2poverlay.lineview",
                              "p2poverlay.terminal", "p2poverlay.text"]


# -- the --control option -------------------------------------------------------------

def parse(*args):
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def test_control_defaults_to_the_data_directory(tmp_path):
    options = parse("--data-dir", str(tmp_path / "d:1"))
    assert options["control"] == unixDescription(str(tmp_path / "d:1" / "control.sock"))
    assert parse("--port", "9005")["control"] == unixDescription(
        os.path.abspath("p2p-9005/control.sock"))


def test_no_control_without_a_data_directory():
    assert parse("--port", "0")["control"] == ""
    assert parse("--data-dir", "")["control"] == ""
    assert parse("--port", "0", "--control", "unix:/tmp/c.sock")["control"] \
        == "unix:/tmp/c.sock"


@pytest.mark.parametrize("none", ["none", "NONE"])
def test_control_none(none):
    assert parse("--control", none)["control"] == ""


def test_bad_control():
    with pytest.raises(usage.UsageError) as e:
        parse("--control", "tcp:notaport")
    assert str(e.value).startswith("--control 'tcp:notaport': not a server endpoint")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("args, optional", [
    ([], True),  # The default socket may be left out, with a warning.
    (["--control", "tcp:0:interface=127.0.0.1"], False),
])
def test_makeService_with_control(tmp_path, args, optional):
    options = parse("--port", "tcp:0:interface=127.0.0.1",
                    "--data-dir", str(tmp_path / "d"), *args)
    service = tap.makeService(options)
    try:
        kinds = [type(child) for child in service]
        assert kinds == [Node, ControlService]
        (control,) = [c for c in service if isinstance(c, ControlService)]
        assert control.description == options["control"]
        assert control.node is service.node
        assert control.optional is optional
    finally:
        service.node.store.close()


def test_makeService_without_control(tmp_path):
    options = parse("--port", "tcp:0:interface=127.0.0.1",
                    "--data-dir", str(tmp_path / "d"), "--control", "none")
    service = tap.makeService(options)
    try:
        assert [type(child) for child in service] == [Node]
    finally:
        service.node.store.close()

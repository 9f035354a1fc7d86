"""
Private overlays, over real loopback sockets: only nodes holding the
network key (or on the allow list) get in, and an outsider is told why in
one line, logged on both sides.
"""

import os

import pytest
import pytest_twisted

from p2poverlay import NodeConfig
from p2poverlay.config import ConfigError
from p2poverlay.errors import HandshakeFailed
from p2poverlay.identity import KeyFileError, NodeKey
from p2poverlay.message import NEIGHBOUR, Hello
from p2poverlay.private import loadAllowList, loadNetworkKey
from helpers import PROMPT, waitFor
from processes import runTwistd
from test_resilience import assertByeLast, assertMessagesFlow

SECRET = b"correct horse battery staple, 2026"
OUTSIDER = "not a member of this private overlay"


def keyFile(tmp_path, secret=SECRET, name="network.key", mode=0o600):
    path = tmp_path / name
    path.write_bytes(secret)
    os.chmod(path, mode)
    return str(path)


def private(tmp_path, secret=SECRET):
    return dict(plaintext=False,
                networkKey=loadNetworkKey(keyFile(tmp_path, secret)))


@pytest_twisted.inlineCallbacks
def test_members_holding_the_key_form_an_overlay(overlay, tmp_path):
    a = yield overlay.start(name="a", **private(tmp_path))
    b = yield overlay.start(join=a, name="b", **private(tmp_path))
    yield assertMessagesFlow(overlay, a, b)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("outsider", [
    dict(plaintext=False),
    "other key",
], ids=["no key", "another key"])
def test_an_outsider_is_refused_and_told_why_on_both_sides(
        overlay, tmp_path, log, outsider):
    if outsider == "other key":
        outsider = private(tmp_path / "..", b"another secret, just as long")
    member = yield overlay.start(name="member", **private(tmp_path))
    stranger = yield overlay.start(name="stranger", **outsider)
    with pytest.raises(HandshakeFailed, match=OUTSIDER):
        yield stranger.join("127.0.0.1", member.listenPort)
    assert stranger.nodeId not in member.peers
    warnings = log.warningTexts()
    assert any("refusing 127.0.0.1:" in w and OUTSIDER in w
               for w in warnings), warnings
    assert any(f"could not join 127.0.0.1:{member.listenPort}: {OUTSIDER}"
               in text for text in log.texts()), log.texts()
    # The other way round: the member will not keep the stranger either.
    with pytest.raises(HandshakeFailed, match=OUTSIDER):
        yield member.join("127.0.0.1", stranger.listenPort)
    yield waitFor(lambda: member.nodeId not in stranger.peers, timeout=PROMPT)
    assert stranger.nodeId not in member.peers


@pytest_twisted.inlineCallbacks
def test_a_made_up_proof_is_refused(overlay, raw, tmp_path):
    member = yield overlay.start(name="member", **private(tmp_path))
    key = NodeKey.generate()
    client = yield raw(member, "127.0.0.2", key=key)
    client.send(Hello(key.nodeId, 1, 0, "guess", NEIGHBOUR, "ab" * 32))
    yield waitFor(lambda: client.closed, timeout=PROMPT)
    assertByeLast(client, member, OUTSIDER)


@pytest_twisted.inlineCallbacks
def test_only_nodes_on_the_allow_list_get_in(overlay, tmp_path):
    listed = yield overlay.start(name="listed", plaintext=False)
    unlisted = yield overlay.start(name="unlisted", plaintext=False)
    allowFile = tmp_path / "allow"
    allowFile.write_text(f"# who may join\n{listed.nodeId}  # listed\n\n")
    gate = yield overlay.start(name="gate", plaintext=False,
                               allowed=loadAllowList(str(allowFile)))
    peer = yield listed.join("127.0.0.1", gate.listenPort)
    assert peer.node_id == gate.nodeId
    with pytest.raises(HandshakeFailed,
                       match="not on this node's allow list"):
        yield unlisted.join("127.0.0.1", gate.listenPort)


def test_key_and_allow_files_that_cannot_be_used_say_why(tmp_path):
    with pytest.raises(KeyFileError, match=r"open to others \(mode 0644\)"):
        loadNetworkKey(keyFile(tmp_path, mode=0o644))
    with pytest.raises(KeyFileError, match="holds 5 bytes: a network key "
                                           "needs at least 16"):
        loadNetworkKey(keyFile(tmp_path, b"short\n", name="short"))
    bad = tmp_path / "allow"
    bad.write_text("ab" * 32 + "\nnot-an-id\n")
    with pytest.raises(KeyFileError, match="line 2: 'not-an-id' is not a "
                                           "node id"):
        loadAllowList(str(bad))
    with pytest.raises(ConfigError, match="a network key needs TLS"):
        NodeConfig(plaintext=True, networkKey=SECRET).check()


@pytest.mark.parametrize("mode, args, complaint", [
    (0o644, [], "is open to others (mode 0644): run chmod 600"),
    (0o600, ["--insecure-plaintext"], "a network key needs TLS"),
])
def test_twistd_stops_with_one_line_for_a_network_key_it_cannot_use(
        tmp_path, mode, args, complaint):
    path = keyFile(tmp_path, mode=mode)
    result = runTwistd(["-n", "p2p", "--port", "0", "--network-key-file",
                        path, *args], cwd=tmp_path)
    assert result.returncode == 1, result
    first, hint = result.stderr.splitlines()
    assert first.startswith("twistd p2p: ") and complaint in first, first
    assert hint == "see 'twistd p2p --help'"
    assert "Traceback" not in result.stdout + result.stderr

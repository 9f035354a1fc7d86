"""
The data directory (L{p2poverlay.store}): identity and saved peers written
atomically, corrupt or unreadable files reported in one line and ignored,
and one process at a time per directory.
"""

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import asdict

import pytest
import pytest_twisted
from twisted.logger import formatEvent

import p2poverlay.store as store_module
from p2poverlay.identity import KEY_FILE, KeyFileError, NodeKey
from p2poverlay.message import PeerAddress, newNodeId
from p2poverlay import Node, NodeConfig
from p2poverlay.records import KnownPeer
from p2poverlay.store import (
    ANCHORS_FILE, IDENTITY_FILE, PEERS_FILE, NodeStore, StoreLocked, atomicWrite,
)
from processes import DEADLINE, childEnvironment

ALICE = "a1" + "0" * 30
BOB = "b0b" + "0" * 29
CAROL = "ca201" + "0" * 27


@pytest.fixture
def opened(tmp_path):
    """C{opened(path=...)}: an open NodeStore, closed after the test."""
    stores = []

    def make(directory=None):
        store = NodeStore(str(directory or tmp_path / "data"))
        store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def peer(nodeId=BOB, host="127.0.0.1", port=9001, name="bob", lastSeen=1000.5):
    return KnownPeer(nodeId, host, port, name, last_seen=lastSeen)


def leftovers(directory):
    """Files in C{directory} other than the lock and the data files."""
    return sorted(set(os.listdir(directory))
                  - {store_module.LOCK_FILE, IDENTITY_FILE, KEY_FILE, PEERS_FILE})


def load(store, name):
    """Load the file C{name} of C{store}."""
    if name == ANCHORS_FILE:
        return store.takeAnchors()
    return store.loadIdentity() if name == IDENTITY_FILE else store.loadPeers()


def loadWithOneWarning(store, name, log, complaint):
    """Load the file C{name}; one warning names it and says C{complaint}."""
    loaded = load(store, name)
    text = oneWarning(log)
    assert os.path.join(store.directory, name) in text, text
    assert complaint in text, text
    return loaded


def oneWarning(log):
    """The only warning logged; it is a single line."""
    warnings = log.warnings()
    assert len(warnings) == 1, log.warningTexts()
    text = formatEvent(warnings[0])
    assert "\n" not in text, text
    assert log.failures() == [], log.describeFailures()
    return text


# -- the directory ----------------------------------------------------------------

def test_open_creates_the_directory_private_to_its_owner(tmp_path):
    directory = tmp_path / "a" / "b" / "data"
    store = NodeStore(str(directory))
    store.open()
    try:
        assert directory.is_dir()
        assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
        assert store.directory == str(directory)
    finally:
        store.close()


def test_a_relative_directory_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert NodeStore("data").directory == str(tmp_path / "data")


@pytest.mark.parametrize("where", ["below a file", "is a file"])
def test_a_directory_that_cannot_be_created_raises_oserror(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    directory = blocker / "data" if where == "below a file" else blocker
    store = NodeStore(str(directory))
    with pytest.raises(OSError):
        store.open()
    store.close()  # nothing to release, and no error either
    assert blocker.read_text() == "not a directory"


def test_an_empty_directory_has_no_identity_and_no_peers(opened, log):
    store = opened()
    assert store.loadIdentity() is None
    assert store.loadPeers() == []
    assert log.warnings() == []


# -- the lock ---------------------------------------------------------------------

def test_a_second_store_on_the_same_directory_is_locked_out(opened, tmp_path):
    opened()
    second = NodeStore(str(tmp_path / "data"))
    with pytest.raises(StoreLocked) as raised:
        second.open()
    assert str(tmp_path / "data") in str(raised.value)
    assert "in use" in str(raised.value)


def test_the_lock_is_released_on_close(tmp_path):
    first = NodeStore(str(tmp_path / "data"))
    first.open()
    first.close()
    first.close()  # closing twice is harmless
    second = NodeStore(str(tmp_path / "data"))
    second.open()
    second.close()


def test_other_directories_are_not_locked(opened, tmp_path):
    opened(tmp_path / "one")
    opened(tmp_path / "two")


HOLD_LOCK = """
import sys
from p2poverlay.store import NodeStore
store = NodeStore(sys.argv[1])
store.open()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def child():
    """C{child(directory)}: a process holding the lock of C{directory}."""
    processes = []

    def start(directory):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=childEnvironment())
        processes.append(process)
        # The child prints or dies: either ends this read.
        assert process.stdout.readline() == b"locked\n"
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait(DEADLINE)
        process.stdin.close()
        process.stdout.close()


def test_a_directory_locked_by_another_process(child, tmp_path):
    holder = child(tmp_path / "data")
    store = NodeStore(str(tmp_path / "data"))
    with pytest.raises(StoreLocked):
        store.open()
    holder.stdin.close()  # the holder exits normally
    assert holder.wait(DEADLINE) == 0
    store.open()
    store.close()


def test_a_killed_process_leaves_no_lock_behind(child, tmp_path):
    holder = child(tmp_path / "data")
    holder.kill()
    holder.wait(DEADLINE)
    store = NodeStore(str(tmp_path / "data"))
    store.open()
    store.close()


# -- identity ---------------------------------------------------------------------

def test_identity_round_trip(opened, tmp_path):
    store = opened()
    nodeId = newNodeId()
    store.saveIdentity(nodeId)
    assert store.loadIdentity() == nodeId
    assert json.loads((tmp_path / "data" / IDENTITY_FILE).read_text()) == \
        {"node_id": nodeId}


def test_a_node_makes_its_key_once_and_keeps_its_id(tmp_path):
    def nodeIdOfANodeOn(directory):
        store = NodeStore(str(directory))
        store.open()
        try:
            return Node(NodeConfig(name="me"), store=store).nodeId
        finally:
            store.close()

    first = nodeIdOfANodeOn(tmp_path / "data")
    keyFile = tmp_path / "data" / KEY_FILE
    saved = keyFile.read_bytes()
    assert stat.S_IMODE(keyFile.stat().st_mode) == 0o600
    assert first == NodeKey.load(str(keyFile)).nodeId
    assert nodeIdOfANodeOn(tmp_path / "data") == first
    assert keyFile.read_bytes() == saved
    assert nodeIdOfANodeOn(tmp_path / "other") != first


def test_a_given_node_id_wins_over_the_saved_key_in_plaintext(opened,
                                                              tmp_path):
    store = opened()
    node = Node(NodeConfig(name="me", plaintext=True), nodeId=BOB, store=store)
    assert node.nodeId == BOB and node.key is None
    assert not (tmp_path / "data" / KEY_FILE).exists()


def test_a_given_node_id_without_a_key_cannot_speak_tls(opened):
    with pytest.raises(ValueError, match="proves nothing over TLS"):
        Node(NodeConfig(name="me"), nodeId=BOB, store=opened())


def test_a_node_id_from_before_keys_is_replaced_and_said_once(opened, tmp_path,
                                                              log):
    store = opened()
    store.saveIdentity(ALICE)
    node = Node(NodeConfig(name="me"), store=store)
    assert node.nodeId != ALICE
    said = [w for w in log.warningTexts() if ALICE in w]
    assert said == [f"this data directory held node id {ALICE}, from before "
                    f"node keys: the node has a new key and id {node.nodeId}"]
    assert not (tmp_path / "data" / IDENTITY_FILE).exists()
    again = Node(NodeConfig(name="me"), store=store)
    assert again.nodeId == node.nodeId
    assert len([w for w in log.warningTexts() if ALICE in w]) == 1


@pytest.mark.parametrize("content, mode, complaint", [
    (b"garbage", 0o600, "holds no private key in PEM form"),
    (None, 0o644, "is open to others (mode 0644)"),
])
def test_a_key_file_that_cannot_be_used_stops_the_node(opened, tmp_path,
                                                       content, mode,
                                                       complaint):
    store = opened()
    keyFile = tmp_path / "data" / KEY_FILE
    if content is None:
        NodeKey.generate().save(str(keyFile))
    else:
        keyFile.write_bytes(content)
    keyFile.chmod(mode)
    before = keyFile.read_bytes()
    with pytest.raises(KeyFileError, match=re.escape(complaint)):
        Node(NodeConfig(name="me"), store=store)
    assert keyFile.read_bytes() == before  # Never replaced.


CORRUPT_IDENTITIES = [
    pytest.param(b"", "cannot read", id="empty"),
    pytest.param(b"{\"node_id\": ", "cannot read", id="truncated"),
    pytest.param(b"\xff\xfe garbage", "cannot read", id="not-utf8"),
    pytest.param(b"[" * 100000, "cannot read", id="nested-too-deep"),
    pytest.param(b"[]", "no node_id", id="a-list"),
    pytest.param(b"\"" + b"a" * 32 + b"\"", "no node_id", id="a-string"),
    pytest.param(b"{}", "no node_id", id="missing-field"),
    pytest.param(b"{\"node_id\": 12}", "no node_id", id="wrong-type"),
    pytest.param(b"{\"node_id\": null}", "no node_id", id="null"),
    pytest.param(b"{\"node_id\": \"xyz\"}", "lowercase hex digits", id="short"),
    pytest.param(json.dumps({"node_id": BOB.upper()}).encode(),
                 "lowercase hex digits", id="uppercase"),
    pytest.param(json.dumps({"node_id": BOB + "0"}).encode(),
                 "lowercase hex digits", id="too-long"),
    pytest.param(json.dumps({"node_id": BOB + "\n"}).encode(),
                 "lowercase hex digits", id="trailing-newline"),
]


@pytest.mark.parametrize("content, complaint", CORRUPT_IDENTITIES)
def test_a_corrupt_identity_from_before_keys_is_reported_and_replaced(
        opened, tmp_path, log, content, complaint):
    store = opened()
    (tmp_path / "data" / IDENTITY_FILE).write_bytes(content)
    assert loadWithOneWarning(store, IDENTITY_FILE, log, complaint) is None

    # A node on that directory takes its id from its key, and the file
    # from before keys is gone.
    node = Node(NodeConfig(name="me"), store=store)
    assert node.nodeId == NodeKey.load(str(tmp_path / "data" / KEY_FILE)).nodeId
    assert not (tmp_path / "data" / IDENTITY_FILE).exists()


# -- peers ----------------------------------------------------------------------

def test_peers_round_trip_in_order(opened):
    store = opened()
    peers = [peer(CAROL, "10.0.0.3", 1, "", 3.0),
             peer(ALICE, "example.org", 65535, "alice \u00e9", 0.0),
             peer(BOB, "127.0.0.1", 9001, "bob", 1700000000.25)]
    store.savePeers(peers)
    assert store.loadPeers() == peers


def test_saving_peers_replaces_the_previous_list(opened):
    store = opened()
    store.savePeers([peer(ALICE), peer(BOB)])
    store.savePeers([peer(CAROL)])
    assert store.loadPeers() == [peer(CAROL)]
    store.savePeers([])
    assert store.loadPeers() == []


def test_peers_survive_a_reopen(tmp_path):
    peers = [peer(ALICE, port=7000 + i) for i in range(500)]
    first = NodeStore(str(tmp_path / "data"))
    first.open()
    first.savePeers(peers)
    first.close()
    second = NodeStore(str(tmp_path / "data"))
    second.open()
    try:
        assert second.loadPeers() == peers
    finally:
        second.close()


def test_a_saved_peer_knows_its_address():
    assert peer().peerAddress() == PeerAddress(BOB, "127.0.0.1", 9001, "bob")
    assert peer().address == "127.0.0.1:9001"


def test_optional_fields_take_their_defaults(opened, tmp_path):
    store = opened()
    (tmp_path / "data" / PEERS_FILE).write_text(json.dumps(
        {"peers": [{"node_id": BOB, "host": "h", "port": 5},
                   {"node_id": CAROL, "host": "h", "port": 6, "last_seen": 7}]}))
    loaded = store.loadPeers()
    assert loaded == [KnownPeer(BOB, "h", 5, "", last_seen=0.0),
                      KnownPeer(CAROL, "h", 6, "", last_seen=7.0)]
    assert all(type(p.last_seen) is float for p in loaded)


BAD_ENTRIES = [
    pytest.param("not an object", id="a-string"),
    pytest.param(None, id="null"),
    pytest.param({"host": "h", "port": 1}, id="no-node-id"),
    pytest.param({"node_id": BOB, "port": 1}, id="no-host"),
    pytest.param({"node_id": BOB, "host": "h"}, id="no-port"),
    pytest.param({"node_id": "B0B", "host": "h", "port": 1}, id="bad-node-id"),
    pytest.param({"node_id": BOB, "host": "", "port": 1}, id="empty-host"),
    pytest.param({"node_id": BOB, "host": 7, "port": 1}, id="host-not-a-string"),
    pytest.param({"node_id": BOB, "host": "h", "port": "1"}, id="port-a-string"),
    pytest.param({"node_id": BOB, "host": "h", "port": True}, id="port-a-bool"),
    pytest.param({"node_id": BOB, "host": "h", "port": 0}, id="port-zero"),
    pytest.param({"node_id": BOB, "host": "h", "port": 65536}, id="port-too-big"),
    pytest.param({"node_id": BOB, "host": "h", "port": 1, "name": 3},
                 id="name-not-a-string"),
    pytest.param({"node_id": BOB, "host": "h" * 10000, "port": 1},
                 id="host-too-long"),
    pytest.param({"node_id": BOB, "host": "h", "port": 1, "last_seen": "now"},
                 id="last-seen-a-string"),
    pytest.param({"node_id": BOB, "host": "h", "port": 1, "last_seen": False},
                 id="last-seen-a-bool"),
    pytest.param({"node_id": BOB, "host": "h", "port": 1,
                  "last_seen": float("nan")}, id="last-seen-nan"),
    pytest.param({"node_id": BOB, "host": "h", "port": 1,
                  "last_seen": float("inf")}, id="last-seen-infinite"),
    pytest.param({"node_id": BOB, "host": "h", "port": 1,
                  "last_seen": 10 ** 400}, id="last-seen-too-big"),
]


@pytest.mark.parametrize("entry", BAD_ENTRIES)
def test_invalid_entries_are_skipped_and_the_others_kept(opened, tmp_path,
                                                         log, entry):
    store = opened()
    good = [peer(ALICE, port=1), peer(CAROL, port=2)]
    entries = [asdict(good[0]), entry, asdict(good[1])]
    (tmp_path / "data" / PEERS_FILE).write_text(json.dumps({"peers": entries}))
    assert store.loadPeers() == good
    assert log.failures() == [], log.describeFailures()


CORRUPT_PEER_FILES = [
    pytest.param(b"", "cannot read", id="empty"),
    pytest.param(b"{\"peers\": [", "cannot read", id="truncated"),
    pytest.param(b"\xff\xfe garbage", "cannot read", id="not-utf8"),
    pytest.param(b"{\"peers\": " + b"[" * 100000, "cannot read",
                 id="nested-too-deep"),
    pytest.param(b"[]", "no list of peers", id="a-list"),
    pytest.param(b"42", "no list of peers", id="a-number"),
    pytest.param(b"{}", "no list of peers", id="missing-field"),
    pytest.param(b"{\"peers\": {}}", "no list of peers", id="wrong-type"),
    pytest.param(b"{\"peers\": null}", "no list of peers", id="null"),
]


@pytest.mark.parametrize("content, complaint", CORRUPT_PEER_FILES)
def test_a_corrupt_peers_file_is_reported_in_one_line_and_ignored(
        opened, tmp_path, log, content, complaint):
    store = opened()
    (tmp_path / "data" / PEERS_FILE).write_bytes(content)
    assert loadWithOneWarning(store, PEERS_FILE, log, complaint) == []

    # The next save starts afresh over it.
    store.savePeers([peer()])
    assert store.loadPeers() == [peer()]


# -- unreadable files -------------------------------------------------------------

UNREADABLE = [IDENTITY_FILE, PEERS_FILE]


@pytest.mark.parametrize("name", UNREADABLE)
def test_a_directory_in_place_of_a_file_is_reported_and_ignored(
        opened, tmp_path, log, name):
    store = opened()
    (tmp_path / "data" / name).mkdir()
    assert not loadWithOneWarning(store, name, log, "cannot read")


@pytest.mark.parametrize("name", UNREADABLE)
def test_a_file_we_may_not_read_is_reported_and_ignored(
        opened, tmp_path, log, monkeypatch, name):
    store = opened()
    path = tmp_path / "data" / name
    path.write_text("{}")
    if os.geteuid() != 0:
        path.chmod(0)
    else:
        # Permissions do not stop root: refuse the way the kernel would.
        def refuse(file, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return open(file, *args, **kwargs)
        monkeypatch.setattr(store_module, "open", refuse, raising=False)
    assert not loadWithOneWarning(store, name, log, "Permission denied")


# -- atomic writes --------------------------------------------------------------

def failing(exception):
    def fail(*args, **kwargs):
        raise exception
    return fail


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
@pytest.mark.parametrize("exception", [OSError(28, "No space left on device"),
                                       KeyboardInterrupt()])
def test_a_write_that_fails_midway_leaves_the_previous_files(
        opened, tmp_path, monkeypatch, step, exception):
    store = opened()
    store.saveIdentity(ALICE)
    store.savePeers([peer(BOB)])
    before = {name: (tmp_path / "data" / name).read_bytes()
              for name in (IDENTITY_FILE, PEERS_FILE)}

    with monkeypatch.context() as patched:
        if step == "write":
            realFdopen = os.fdopen

            class BrokenFile:
                def __init__(self, fd, mode):
                    self.file = realFdopen(fd, mode)

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    self.file.close()

                def write(self, data):
                    self.file.write(data[:len(data) // 2])
                    raise exception
            patched.setattr(store_module.os, "fdopen", BrokenFile)
        else:
            patched.setattr(store_module.os, step, failing(exception))
        with pytest.raises(type(exception)):
            store.saveIdentity(BOB)
        with pytest.raises(type(exception)):
            store.savePeers([peer(CAROL)])

    for name, content in before.items():
        assert (tmp_path / "data" / name).read_bytes() == content
    assert leftovers(tmp_path / "data") == []
    assert store.loadIdentity() == ALICE
    assert store.loadPeers() == [peer(BOB)]


def test_data_is_on_disk_before_it_replaces_the_old_file(tmp_path, monkeypatch):
    steps = []
    realFsync, realReplace = os.fsync, os.replace

    def fsync(fd):
        steps.append("fsync")
        realFsync(fd)

    def replace(source, destination):
        with open(source, "rb") as f:
            steps.append(("replace", os.path.dirname(source), f.read()))
        realReplace(source, destination)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.os, "replace", replace)
    target = tmp_path / "file.json"
    target.write_bytes(b"old")
    atomicWrite(str(target), b"new")
    # The temporary file is complete and in the same directory (so that the
    # rename is atomic) before it is renamed over the old one.
    assert steps == ["fsync", ("replace", str(tmp_path), b"new")]
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["file.json"]


def test_a_temporary_file_left_by_a_killed_writer_is_harmless(opened, tmp_path,
                                                              log):
    store = opened()
    store.saveIdentity(ALICE)
    store.savePeers([peer(BOB)])
    for name in (IDENTITY_FILE, PEERS_FILE):
        (tmp_path / "data" / f"{name}.abc123.tmp").write_bytes(b"{\"half")
    assert store.loadIdentity() == ALICE
    assert store.loadPeers() == [peer(BOB)]
    store.savePeers([peer(CAROL)])
    assert store.loadPeers() == [peer(CAROL)]
    assert log.warnings() == []


def test_a_failed_save_of_the_peers_is_reported_and_the_node_serves_on(
        opened, tmp_path, log, monkeypatch):
    store = opened()
    node = Node(NodeConfig(name="me"), store=store)
    monkeypatch.setattr(store_module.os, "replace",
                        failing(OSError(28, "No space left on device")))
    node.membership.save()
    text = oneWarning(log)
    assert "cannot save peers" in text and "No space left" in text, text
    assert leftovers(tmp_path / "data") == []


# -- tables, sources and anchors ---------------------------------------------------

def test_the_table_and_source_of_each_peer_round_trip(opened):
    store = opened()
    peers = [KnownPeer(ALICE, "10.0.0.1", 1, "a", last_seen=5.0, tried=True,
                       source="10.0.0.1"),
             KnownPeer(BOB, "10.0.0.2", 2, "", source="8.8.0.0/16")]
    store.savePeers(peers)
    assert store.loadPeers() == peers


@pytest.mark.parametrize("extra", [
    pytest.param({"tried": "yes"}, id="tried-a-string"),
    pytest.param({"tried": 1}, id="tried-a-number"),
    pytest.param({"source": 5}, id="source-a-number"),
    pytest.param({"source": "s" * 1000}, id="source-too-long"),
])
def test_a_bad_table_or_source_skips_the_entry_in_one_line(
        opened, tmp_path, log, extra):
    store = opened()
    good = peer(ALICE, port=1)
    bad = dict(asdict(peer(BOB, port=2)), **extra)
    (tmp_path / "data" / PEERS_FILE).write_text(
        json.dumps({"peers": [asdict(good), bad]}))
    assert store.loadPeers() == [good]
    assert "skipped 1 invalid entries" in oneWarning(log)


def test_anchors_are_read_once(opened, tmp_path):
    store = opened()
    anchors = [KnownPeer(ALICE, "10.0.0.1", 1, tried=True, source="10.0.0.1")]
    store.saveAnchors(anchors)
    assert (tmp_path / "data" / ANCHORS_FILE).exists()
    assert store.takeAnchors() == anchors
    assert not (tmp_path / "data" / ANCHORS_FILE).exists()
    assert store.takeAnchors() == []


@pytest.mark.parametrize("content, complaint", CORRUPT_PEER_FILES)
def test_a_corrupt_anchors_file_is_reported_in_one_line_and_consumed(
        opened, tmp_path, log, content, complaint):
    store = opened()
    path = tmp_path / "data" / ANCHORS_FILE
    path.write_bytes(content)
    assert loadWithOneWarning(store, ANCHORS_FILE, log, complaint) == []
    assert not path.exists()


@pytest_twisted.inlineCallbacks
def test_a_node_aborted_writes_nothing_a_node_stopped_saves(overlay, opened,
                                                            tmp_path):
    a = yield overlay.start(name="a", autoConnect=False)
    killed, stopped = tmp_path / "killed", tmp_path / "stopped"
    b = yield overlay.start(join=a, name="b", store=opened(killed),
                            autoConnect=False)
    yield b.abort()  # as a killed process: no last words on disk
    assert not (killed / store_module.ANCHORS_FILE).exists()
    assert not (killed / store_module.PEERS_FILE).exists()
    c = yield overlay.start(join=a, name="c", store=opened(stopped),
                            autoConnect=False)
    yield c.stopService()
    assert (stopped / store_module.ANCHORS_FILE).exists()
    assert (stopped / store_module.PEERS_FILE).exists()

"""
A node's data directory: its identity, the peers it knew (in which table of
the address book, told of by whom), and the outbound neighbours it had when
it stopped (its anchors, dialed first on the next start, then deleted).

Files are JSON, written atomically (a temporary file in the same directory,
flushed to disk, then renamed over the old one), so a crash mid-write
leaves the previous version.  A file that cannot be read or parsed is
reported in one line and ignored: the node starts afresh instead of
crashing.  One process at a time may use a directory (an advisory lock).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from typing import IO, List, Optional

from twisted.logger import Logger

from p2poverlay.message import MessageError, PeerAddress, checkNodeId
from p2poverlay.records import KnownPeer

IDENTITY_FILE = "node.json"
PEERS_FILE = "peers.json"
ANCHORS_FILE = "anchors.json"
# Longer than any address group (an IPv6 host, a DNS name).
MAX_SOURCE_LENGTH = 255
LOCK_FILE = "lock"


class StoreLocked(Exception):
    """Another process is using the data directory."""


def atomicWrite(path: str, data: bytes) -> None:
    """Replace C{path} with C{data} so that readers see old or new, whole."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(
        prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _lastSeen(value) -> float:
    """A saved time as a finite float, or L{MessageError}."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageError("last_seen must be a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise MessageError("last_seen out of range") from None
    if not math.isfinite(seconds):
        raise MessageError("last_seen out of range")
    return seconds


def _peer(entry) -> KnownPeer:
    """A saved peer as a record, or L{MessageError}."""
    address = PeerAddress.fromDict("saved peer", entry)
    lastSeen = _lastSeen(entry.get("last_seen", 0))
    tried = entry.get("tried", False)
    source = entry.get("source", "")
    if not isinstance(tried, bool):
        raise MessageError("tried must be true or false")
    if not isinstance(source, str) or len(source) > MAX_SOURCE_LENGTH:
        raise MessageError("source must be a short string")
    record = None
    if entry.get("record") is not None:
        record = PeerAddress.fromDict("saved record", entry["record"])
        if record.node_id != address.node_id or not record.key:
            raise MessageError("record is not a signed one of that node")
    return KnownPeer(address.node_id, address.host, address.port,
                     address.name, last_seen=lastSeen, tried=tried,
                     source=source, record=record)


class NodeStore:
    """The files of one node's data directory."""

    log = Logger()

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self._lock: Optional[IO[bytes]] = None

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def open(self) -> None:
        """
        Create the directory if needed and lock it.

        @raise StoreLocked: if another process holds the lock.
        @raise OSError: if the directory cannot be created.
        """
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        lock = open(self._path(LOCK_FILE), "ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreLocked(
                f"data directory {self.directory} is in use by another node") from None
        self._lock = lock

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _readJSON(self, name: str, what: str):
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as e:
            # RecursionError: JSON nested deeper than the parser can go.
            self.log.warn("ignoring {path}: cannot read {what} ({error}); "
                          "starting afresh", path=path, what=what,
                          error=str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    def loadIdentity(self) -> Optional[str]:
        """The saved node id, or None if there is none (or it is corrupt)."""
        data = self._readJSON(IDENTITY_FILE, "the node identity")
        if data is None:
            return None
        nodeId = data.get("node_id") if isinstance(data, dict) else None
        try:
            if not isinstance(nodeId, str):
                raise MessageError("no node_id")
            checkNodeId(nodeId, "node_id")
        except MessageError as e:
            self.log.warn("ignoring {path}: {error}; starting with a new "
                          "identity", path=self._path(IDENTITY_FILE), error=e)
            return None
        return nodeId

    def forgetIdentity(self) -> Optional[str]:
        """
        Remove the node id saved before node keys, if there is one; return
        it (the node now takes its id from its key).
        """
        former = self.loadIdentity()
        try:
            os.remove(self._path(IDENTITY_FILE))
        except FileNotFoundError:
            pass
        return former

    def saveIdentity(self, nodeId: str) -> None:
        atomicWrite(self._path(IDENTITY_FILE),
                    json.dumps({"node_id": nodeId}).encode("utf-8"))

    def loadPeers(self) -> List[KnownPeer]:
        """The saved peers; entries that are not valid are skipped."""
        return self._loadPeerList(PEERS_FILE, "the saved peers")

    def savePeers(self, peers: List[KnownPeer]) -> None:
        """
        Save where C{peers} listen, when each was last seen, whether it was
        tried and who told of it.
        """
        self._savePeerList(PEERS_FILE, peers)

    def takeAnchors(self) -> List[KnownPeer]:
        """
        The anchors saved by the last run; the file is deleted, so that a
        node that crashes on one does not dial it first forever.
        """
        anchors = self._loadPeerList(ANCHORS_FILE, "the anchors")
        try:
            os.unlink(self._path(ANCHORS_FILE))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warn("cannot delete {path}: {error}",
                          path=self._path(ANCHORS_FILE), error=e)
        return anchors

    def saveAnchors(self, peers: List[KnownPeer]) -> None:
        """Save the outbound neighbours to dial first on the next start."""
        self._savePeerList(ANCHORS_FILE, peers)

    def _loadPeerList(self, name: str, what: str) -> List[KnownPeer]:
        data = self._readJSON(name, what)
        if data is None:
            return []
        entries = data.get("peers") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            self.log.warn("ignoring {path}: no list of peers",
                          path=self._path(name))
            return []
        peers = []
        for entry in entries:
            try:
                peers.append(_peer(entry))
            except MessageError:
                continue
        if len(peers) < len(entries):
            self.log.warn("{path}: skipped {count} invalid entries",
                          path=self._path(name),
                          count=len(entries) - len(peers))
        return peers

    def _savePeerList(self, name: str, peers: List[KnownPeer]) -> None:
        data = {"peers": [{"node_id": p.node_id, "host": p.host,
                           "port": p.port, "name": p.name,
                           "last_seen": p.last_seen, "tried": p.tried,
                           "source": p.source,
                           "record": p.record.toDict() if p.record else None}
                          for p in peers]}
        atomicWrite(self._path(name),
                    json.dumps(data, indent=1).encode("utf-8"))

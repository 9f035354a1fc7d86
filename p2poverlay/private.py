"""
Private overlays: only nodes that hold the overlay's secret, or are on a
list, get in.

With a network key (``--network-key-file``), each side's ``HELLO`` carries
a proof that it holds the key: an HMAC-SHA256, under the key, of keying
material exported from the connection's own TLS session (RFC 8446, 7.5)
and of the sender's side of it.  It is bound to that one session, so it
cannot be replayed on another, nor reflected; and it costs no extra round
trip.  With an allow list (``--allow-file``), only the node ids on it are
let in.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, FrozenSet, Optional

from p2poverlay.identity import KeyFileError, readPrivateFile
from p2poverlay.message import isNodeId

EXPORTER_LABEL = b"EXPORTER-p2poverlay-network-key"
# A network key shorter than this is refused: it would be guessed.
MIN_KEY_BYTES = 16
DIALER, ACCEPTOR = b"dialer", b"acceptor"


def loadNetworkKey(path: str) -> bytes:
    """
    The network key in C{path}: its bytes, without surrounding whitespace.

    @raise KeyFileError: if others may read it, or it is too short.
    """
    key = readPrivateFile(path).strip()
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(f"{path} holds {len(key)} bytes: a network key "
                           f"needs at least {MIN_KEY_BYTES}")
    return key


def loadAllowList(path: str) -> FrozenSet[str]:
    """
    The node ids in C{path}, one a line; blank lines and ``#`` comments
    are skipped.

    @raise KeyFileError: if it cannot be read, or a line is no node id.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError as e:
        raise KeyFileError(f"cannot read {path}: {e.strerror}") from None
    allowed = set()
    for number, line in enumerate(lines, 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not isNodeId(entry):
            raise KeyFileError(f"{path}, line {number}: {entry[:80]!r} is "
                               f"not a node id")
        allowed.add(entry)
    return frozenset(allowed)


def proof(networkKey: bytes, tlsConnection: Any, side: bytes) -> str:
    """
    The proof, for the side C{side} (L{DIALER} or L{ACCEPTOR}) of the TLS
    connection C{tlsConnection} (an C{OpenSSL.SSL.Connection} through its
    handshake), that it holds C{networkKey}.
    """
    material = tlsConnection.export_keying_material(EXPORTER_LABEL, 32)
    return hmac.new(networkKey, material + side, hashlib.sha256).hexdigest()


class PrivateOverlay:
    """Who may join a private overlay: a network key, an allow list, or both."""

    def __init__(self, networkKey: Optional[bytes] = None,
                 allowed: Optional[FrozenSet[str]] = None) -> None:
        self.networkKey = networkKey
        self.allowed = allowed

    def proofFor(self, connection: Any) -> str:
        """The proof our C{HELLO} carries on C{connection} ("" if none)."""
        if self.networkKey is None or not connection.overTLS:
            return ""
        side = DIALER if connection.outbound else ACCEPTOR
        return proof(self.networkKey, connection.transport.getHandle(), side)

    def refusal(self, connection: Any, nodeId: str,
                peerProof: str) -> Optional[str]:
        """Why the peer that said C{nodeId} with C{peerProof} on
        C{connection} may not join, or L{None}."""
        if self.allowed is not None and nodeId not in self.allowed:
            return "not on this node's allow list"
        if self.networkKey is None:
            return None
        if not connection.overTLS:
            return "not a member of this private overlay"
        side = ACCEPTOR if connection.outbound else DIALER
        expected = proof(self.networkKey, connection.transport.getHandle(),
                         side)
        if not hmac.compare_digest(expected, peerProof):
            return "not a member of this private overlay"
        return None

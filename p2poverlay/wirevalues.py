"""
The values that wire messages carry, and their limits: node and message
ids, ports, text lengths, keys and signatures.  L{p2poverlay.message}
checks every field it decodes with these.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import List, Tuple

MAX_NAME_LENGTH = 64
MAX_HOST_LENGTH = 255
MAX_REASON_LENGTH = 200
MAX_CODE_LENGTH = 32
MAX_TTL = 255
MAX_IDS = 1000
# PEERS entries a receiver reads; the rest are ignored unread.
MAX_PEER_ENTRIES = 100
# Integers on the wire stay within what every JSON implementation holds
# exactly (IEEE doubles): 0 to 2**53 - 1 unless a field says less.
MAX_INTEGER = 2 ** 53 - 1

# 64 digits: the SHA-256 of the node's key; 32: a node without one (in
# memory, or plaintext).
_NODE_ID = re.compile(r"\A(?:[0-9a-f]{32}){1,2}\Z")
_MESSAGE_ID = re.compile(r"\A[0-9a-f]{32}\Z")
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"\A[0-9a-f]{128}\Z")


class MessageError(ValueError):
    """A line that is no valid message; C{str()} of it is a one-line reason."""


def newNodeId() -> str:
    """A fresh random node id: 128 bits as 32 lowercase hex digits."""
    return uuid.uuid4().hex


# Message ids drawn from the OS a batch at a time (one system call for
# many); list.pop and extend are atomic, so threads never share one.
_ID_BATCH = 64
_freshIds: List[str] = []
if hasattr(os, "register_at_fork"):  # A forked child draws its own.
    os.register_at_fork(after_in_child=_freshIds.clear)


def newMessageId() -> str:
    """A fresh random message id: 32 lowercase hex digits."""
    try:
        return _freshIds.pop()
    except IndexError:
        digits = os.urandom(16 * _ID_BATCH).hex()  # uuid4's source
        _freshIds.extend([digits[i:i + 32] for i in range(0, len(digits), 32)])
        return _freshIds.pop()


def isNodeId(value: str) -> bool:
    """Is C{value} a node id in its wire form?"""
    return bool(_NODE_ID.match(value))


def isMessageId(value: object) -> bool:
    """Is C{value} a message id in its wire form?"""
    return value.__class__ is str and _MESSAGE_ID.match(value) is not None


def areMessageIds(values: list) -> bool:
    """Is every one of C{values} a message id in its wire form?"""
    match = _MESSAGE_ID.match
    for value in values:
        if value.__class__ is not str or match(value) is None:
            return False
    return True


def checkNodeId(value: str, field: str) -> None:
    if not _NODE_ID.match(value):
        raise MessageError(f"{field} must be 64 (or 32) lowercase hex digits")


def checkMessageId(value: str, field: str = "id") -> None:
    if not _MESSAGE_ID.match(value):
        raise MessageError(f"{field} must be 32 lowercase hex digits")


def checkIds(ids: Tuple[str, ...]) -> None:
    """1 to L{MAX_IDS} message ids (IHAVE, GRAFT, ACKS)."""
    if not ids:
        raise MessageError("ids is empty")
    if len(ids) > MAX_IDS:
        raise MessageError(f"more than {MAX_IDS} ids")
    for messageId in ids:
        checkMessageId(messageId, "ids")


def checkHex(value: str, field: str, digits: int) -> None:
    """C{value} is empty or C{digits} (64 or 128) lowercase hex digits."""
    pattern = _HEX64 if digits == 64 else _HEX128
    if value and not pattern.match(value):
        raise MessageError(f"{field} must be {digits} lowercase hex digits")


def checkPort(value: int, field: str, allowZero: bool = False) -> None:
    low = 0 if allowZero else 1
    if not low <= value <= 65535:
        raise MessageError(f"{field} out of range: {value}")


def checkRange(value: int, field: str, high: int = MAX_INTEGER) -> None:
    if not 0 <= value <= high:
        raise MessageError(f"{field} out of range: {value}")


def checkLength(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise MessageError(f"{field} longer than {limit} characters")


def checkSigned(key: str, signature: str) -> None:
    """An Ed25519 key and signature in hex, or neither."""
    checkHex(key, "key", 64)
    checkHex(signature, "signature", 128)
    if bool(key) != bool(signature):
        raise MessageError("key and signature come together")

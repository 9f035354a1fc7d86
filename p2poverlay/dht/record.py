"""
A value stored in the DHT, signed by the node that wrote it.

A record holds a user's key and value, the writer's node id and raw
Ed25519 public key, a sequence number that grows with each write by that
writer of that key (the writer's clock in milliseconds), the time it
expires, and the writer's signature.  Any node can check it without
having met the writer: the key must hash to the writer's id, and the key
must have signed the record's bytes (L{signedBytes}).  Under one key each
writer has its own record, so nobody can overwrite what another wrote.

The signed bytes are a context string, then the fields in a fixed order,
numbers big-endian and texts length-prefixed, as L{p2poverlay.signing}
does for broadcasts and addresses, so that no two records sign the same
bytes and a record's signature is good for nothing else.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional

from p2poverlay.signing import Signer, publicKeyOf, signedBy
from p2poverlay.wirevalues import MAX_INTEGER, MessageError

MAX_KEY_LENGTH = 200   # characters of a user's key
RECORD_CONTEXT = b"p2poverlay-dht-record-v1\n"   # domain separation of the signature
# What keeping a record costs beyond its key and value: the writer, key and
# signature in hex (256 bytes), two numbers, and the store's index entries.
RECORD_OVERHEAD = 400
# A record may expire this much past the receiver's longest time to live:
# the clocks of writer and holder are never quite the same.
CLOCK_SKEW = 60.0

_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"\A[0-9a-f]{128}\Z")


def _utf8(text: str) -> bytes:
    # A lone surrogate (which JSON can carry) goes as its three-byte form.
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class ValueRecord:
    """
    A value under a user's key, as its writer signed it.

    @ivar key: the user's key: 1 to L{MAX_KEY_LENGTH} printable characters.
    @ivar value: what is stored (its UTF-8 size is checked by the store).
    @ivar writer: the writer's node id: 64 lowercase hex digits, the
        SHA-256 of C{publicKey}.
    @ivar publicKey: the writer's raw Ed25519 public key, 64 hex digits.
    @ivar seq: grows with each write by this writer of this key (the
        writer's clock, in milliseconds).
    @ivar expires: when the record stops counting, in milliseconds since
        the Unix epoch.
    @ivar signature: 128 hex digits: the writer's Ed25519 signature of
        L{signedBytes}C{(record)}.
    """

    key: str
    value: str
    writer: str
    publicKey: str
    seq: int
    expires: int
    signature: str

    def validate(self) -> None:
        """
        Check the record's shape (not its signature): lengths, hex forms
        and ranges.

        @raise MessageError: with a one-line reason, if any field is bad.
        """
        key = self.key
        if key.__class__ is not str or not key:
            raise MessageError("key must be a non-empty text")
        if len(key) > MAX_KEY_LENGTH:
            raise MessageError(f"key longer than {MAX_KEY_LENGTH} characters")
        if not key.isprintable():
            raise MessageError("key holds a character that is not printable")
        if self.value.__class__ is not str:
            raise MessageError("value must be a text")
        for field, pattern, digits in (("writer", _HEX64, 64),
                                       ("publicKey", _HEX64, 64),
                                       ("signature", _HEX128, 128)):
            text = getattr(self, field)
            if text.__class__ is not str or not pattern.match(text):
                raise MessageError(
                    f"{field} must be {digits} lowercase hex digits")
        for field in ("seq", "expires"):
            number = getattr(self, field)
            if number.__class__ is not int:
                raise MessageError(f"{field} must be an integer")
            if not 0 <= number <= MAX_INTEGER:
                raise MessageError(f"{field} out of range: {number}")

    def toDict(self) -> Dict[str, Any]:
        """The record as DHT messages carry it (see L{p2poverlay.dht.wire})."""
        return {"key": self.key, "value": self.value, "writer": self.writer,
                "public_key": self.publicKey, "seq": self.seq,
                "expires": self.expires, "signature": self.signature}

    @classmethod
    def fromDict(cls, kind: str, item: Any) -> "ValueRecord":
        """
        The record a DHT message carries, its shape checked.

        @raise MessageError: for one that is not a valid record.
        """
        if not isinstance(item, dict):
            raise MessageError(f"{kind} record is not an object")
        try:
            record = cls(item["key"], item["value"], item["writer"],
                         item["public_key"], item["seq"], item["expires"],
                         item["signature"])
        except KeyError as e:
            raise MessageError(f"{kind} record lacks field {e.args[0]!r}") \
                from None
        record.validate()
        return record

    @property
    def size(self) -> int:
        """The bytes it costs to keep: the UTF-8 key and value, and
        L{RECORD_OVERHEAD}."""
        return len(_utf8(self.key)) + len(_utf8(self.value)) + RECORD_OVERHEAD


def keyId(key: str) -> int:
    """
    Where C{key} lives in the DHT: the SHA-256 of its UTF-8 form, as a
    256-bit integer (node ids are 256-bit too).

    @param key: a user's key.
    """
    return int.from_bytes(hashlib.sha256(_utf8(key)).digest(), "big")


def signedBytes(record: ValueRecord) -> bytes:
    """
    What the writer of C{record} signs: L{RECORD_CONTEXT}, the key (a
    2-byte length, then UTF-8), the value (a 4-byte length, then UTF-8),
    the writer's id (32 bytes), then C{seq} and C{expires} (8 bytes each,
    big-endian).

    @param record: a record whose shape is valid (L{ValueRecord.validate}).
    """
    key, value = _utf8(record.key), _utf8(record.value)
    return b"".join((
        RECORD_CONTEXT, len(key).to_bytes(2, "big"), key,
        len(value).to_bytes(4, "big"), value, bytes.fromhex(record.writer),
        record.seq.to_bytes(8, "big"), record.expires.to_bytes(8, "big")))


def signRecord(signer: Signer, key: str, value: str, ttl: float, now: float,
               seq: Optional[int] = None) -> ValueRecord:
    """
    A record of C{value} under C{key}, written and signed by C{signer}'s node.

    @param signer: the writing node's signer.
    @param key: the user's key.
    @param value: what to store.
    @param ttl: how long it counts, in seconds from C{now}.
    @param now: the time, in seconds since the Unix epoch.
    @param seq: the sequence number; by default C{now} in milliseconds.
    @raise MessageError: if the record would not be valid (a key too long,
        a time out of range).
    """
    nodeKey = signer.key
    if seq is None:
        seq = int(now * 1000)
    unsigned = ValueRecord(key, value, nodeKey.nodeId,
                           nodeKey.publicBytes.hex(), seq,
                           int((now + ttl) * 1000), "0" * 128)
    unsigned.validate()
    signature = nodeKey.private.sign(signedBytes(unsigned))
    return replace(unsigned, signature=signature.hex())


class RecordChecker:
    """
    Checks records: their shape, that the key is their writer's, that it
    signed them, and that they are neither expired nor set to live too
    long.
    """

    def check(self, record: ValueRecord, now: float, maxTTL: float
              ) -> Optional[str]:
        """
        Why C{record} is not valid (a short phrase: "has a bad signature"),
        or C{None} if it is.

        @param record: the record to check.
        @param now: the time, in seconds since the Unix epoch.
        @param maxTTL: the longest time to live taken, in seconds; a record
            may expire up to L{CLOCK_SKEW} seconds later than that.
        """
        try:
            record.validate()
        except MessageError as e:
            return str(e)
        if record.expires <= now * 1000:
            return "has expired"
        if record.expires > (now + maxTTL + CLOCK_SKEW) * 1000:
            return "expires too far ahead"
        publicKey = publicKeyOf(record.writer, record.publicKey)
        if publicKey is None:
            return "is signed with a key that is not its writer's"
        if not signedBy(publicKey, signedBytes(record), record.signature):
            return "has a bad signature"
        return None

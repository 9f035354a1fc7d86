"""The relay's wire messages: each field checked, one line per reason."""

import base64
import re
from pathlib import Path

import pytest

from p2poverlay.config import NodeConfig
from p2poverlay.message import MessageError, P2PMessage
from p2poverlay.relay.wire import (
    MAX_CHUNK, CircuitAccept, CircuitClose, CircuitCredit, CircuitData,
    CircuitIncoming, CircuitOpen, CircuitReady, Reserve, Reserved,
    ReserveRefused, rawLength,
)

CID = "c" * 32
NODE = "a" * 64


@pytest.mark.parametrize("message", [
    Reserve(), Reserved(600, 64 << 20, 3600), ReserveRefused("no room"),
    CircuitOpen(CID, NODE), CircuitIncoming(CID, "b" * 32),
    CircuitAccept(CID), CircuitReady(CID),
    CircuitData(CID, base64.b64encode(b"bytes").decode()),
    CircuitCredit(CID, 65536), CircuitClose(CID, "closed"),
])
def test_every_message_goes_through_the_codec_unchanged(message):
    assert P2PMessage.decode(message.encode()) == message


def test_the_largest_data_line_is_well_under_the_line_limit():
    data = base64.b64encode(bytes(MAX_CHUNK)).decode()
    line = CircuitData(CID, data).encode()
    assert len(line) < NodeConfig().maxLineLength // 2
    assert rawLength(data) == MAX_CHUNK


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"abcd"])
def test_raw_length_counts_the_padding_out(raw):
    assert rawLength(base64.b64encode(raw).decode()) == len(raw)


def _line(kind, **fields):
    return P2PMessage.fromDict(dict(type=kind, **fields))


@pytest.mark.parametrize("kind, fields, reason", [
    ("CIRCUIT_OPEN", dict(cid="C" * 32, target=NODE),
     "cid must be 32 lowercase hex digits"),
    ("CIRCUIT_OPEN", dict(cid=CID[:31], target=NODE),
     "cid must be 32 lowercase hex digits"),
    ("CIRCUIT_OPEN", dict(cid=CID, target="xyz"),
     "target must be 64 (or 32) lowercase hex digits"),
    ("CIRCUIT_INCOMING", dict(cid=CID, source=NODE + "0"),
     "source must be 64 (or 32) lowercase hex digits"),
    ("CIRCUIT_ACCEPT", dict(cid=""), "cid must be 32 lowercase hex digits"),
    ("CIRCUIT_READY", dict(cid=1), "field 'cid' must be"),
    ("CIRCUIT_DATA", dict(cid=CID, data=""), "CIRCUIT_DATA carries no data"),
    ("CIRCUIT_DATA", dict(cid=CID, data="abc"), "data is not base64"),
    ("CIRCUIT_DATA", dict(cid=CID, data="ab=c"), "data is not base64"),
    ("CIRCUIT_DATA", dict(cid=CID, data="a!b="), "data is not base64"),
    ("CIRCUIT_DATA", dict(cid=CID, data="A" * 21852),
     "data longer than 21848 characters"),
    ("CIRCUIT_CREDIT", dict(cid=CID, bytes=0), "bytes out of range: 0"),
    ("CIRCUIT_CREDIT", dict(cid=CID, bytes=(1 << 30) + 1),
     "bytes out of range"),
    ("CIRCUIT_CLOSE", dict(cid=CID, reason="r" * 201),
     "reason longer than 200 characters"),
    ("RESERVED", dict(ttl=86401, bytes=1, seconds=1), "ttl out of range"),
    ("RESERVED", dict(ttl=0, bytes=1, seconds=1), "ttl out of range: 0"),
    ("RESERVED", dict(ttl=60, bytes=-1, seconds=1), "bytes"),
    ("RESERVE_REFUSED", dict(reason="r" * 201),
     "reason longer than 200 characters"),
    ("CIRCUIT_OPEN", dict(cid=CID), "CIRCUIT_OPEN lacks field 'target'"),
])
def test_a_bad_field_is_one_line_naming_it(kind, fields, reason):
    with pytest.raises(MessageError, match=re.escape(reason)) as caught:
        _line(kind, **fields)
    assert "\n" not in str(caught.value)


def test_the_documented_relay_messages_decode():
    text = (Path(__file__).resolve().parent.parent / "docs"
            / "protocol.rst").read_text()
    section = text[text.index("Circuit relays\n------"):
                   text.index("Examples\n--------")]
    lines = re.findall(r"^    (\{.*\})$", section, re.M)
    kinds = [type(P2PMessage.decode(line.encode())) for line in lines]
    assert kinds == [Reserve, Reserved, CircuitOpen, CircuitIncoming,
                     CircuitAccept, CircuitReady, CircuitData, CircuitCredit,
                     CircuitClose]

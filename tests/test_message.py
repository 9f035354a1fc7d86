"""
Unit tests of the wire codec (L{p2poverlay.message}), of address parsing
and peer lookup (L{p2poverlay.registry}) and of L{p2poverlay.seen.SeenCache}.
"""

import json
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from p2poverlay import message as m
from p2poverlay.wirejson import dumps
from p2poverlay.identity import NodeKey
from p2poverlay.message import (
    MAX_HOST_LENGTH, MAX_IDS, MAX_INTEGER, MAX_NAME_LENGTH, MAX_REASON_LENGTH, MAX_TTL,
    PROTOCOL_VERSION, Ack, Acks, Broadcast, Bye, Data, Graft, Hello, IHave,
    MessageError, P2PMessage, PeerAddress, Peers, Ping, Pong, Prune,
    UNSAID, newMessageId, newNodeId,
)
from p2poverlay.addresses import formatAddress, parseAddress
from p2poverlay.dht.record import ValueRecord
from p2poverlay.dht.wire import FindNode, FindValue, Nodes, Store, Stored, Value
from p2poverlay.natwire import (
    Address, DialBackRequest, DialBackResult, DialMe, HolePunch,
)
from p2poverlay.records import INBOUND, OUTBOUND, PeerInfo
from p2poverlay.relay import wire as relay
from p2poverlay.registry import AmbiguousPeer, PeerRegistry
from p2poverlay.seen import SeenCache

# Hypothesis examples are derived from each test, not from a random seed.
deterministic = settings(derandomize=True, database=None, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])

NODE_A = "0123456789abcdef0123456789abcdef"
NODE_B = "fedcba9876543210fedcba9876543210"
MSG_ID = "00112233445566778899aabbccddeeff"


def line(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")


def decodeError(raw: bytes) -> str:
    with pytest.raises(MessageError) as info:
        P2PMessage.decode(raw)
    reason = str(info.value)
    assert "\n" not in reason and reason
    return reason


# -- identifiers --------------------------------------------------------------

def test_new_ids_are_32_lowercase_hex_digits_and_distinct():
    ids = {newNodeId() for _ in range(20)} | {newMessageId() for _ in range(20)}
    assert len(ids) == 40
    for i in ids:
        assert len(i) == 32 and set(i) <= set("0123456789abcdef")


# -- round trips --------------------------------------------------------------

RECORD = ValueRecord("a key", "a value", "ab" * 32, "cd" * 32, 1, 2,
                     "ef" * 64)
NONCE = "5e" * 32

EVERY_TYPE = [
    Hello(NODE_A, PROTOCOL_VERSION, 9000, "alice"),
    Hello(NODE_A, 7, 0),
    Peers(()),
    Peers((PeerAddress(NODE_A, "10.0.0.7", 9001, "a"),
           PeerAddress(NODE_B, "::1", 65535))),
    Data(MSG_ID, "Hello!\n\u2028\x00 \U0001f600"),
    Data(MSG_ID, ""),
    Ack(MSG_ID),
    Acks((MSG_ID,)),
    Acks(tuple(newMessageId() for _ in range(MAX_IDS))),
    Broadcast(MSG_ID, NODE_A, 31, "everyone", "alice"),
    Broadcast(MSG_ID, NODE_B, 0, ""),
    Ping(0),
    Ping(2 ** 53 - 1),
    Pong(2 ** 40),
    Pong(3, neighbours=0),
    Ping(4, neighbours=9),
    Hello(NODE_A, 1, 9000, "bob", neighbours=12),
    Bye("node shutting down"),
    Bye(),
    Hello(NODE_A, 1, 9000, "", "direct"),
    Hello(NODE_A, 3, 9000, "", dht=0),
    IHave((MSG_ID,)),
    IHave(tuple(newMessageId() for _ in range(MAX_IDS))),
    Graft((MSG_ID,)),
    Graft(),
    Prune(),
    FindNode(MSG_ID, "0" * 64),
    FindNode(MSG_ID, "f" * 64),
    Nodes(MSG_ID, ()),
    Nodes(MSG_ID, (PeerAddress(NODE_A, "10.0.0.7", 9001, "a"),)),
    Store(MSG_ID, (RECORD,)),
    Stored(MSG_ID, 1),
    Stored(MSG_ID, 0, "a record has a bad signature"),
    FindValue(MSG_ID, "a key \u00e9"),
    Value(MSG_ID, (), ()),
    Value(MSG_ID, (RECORD,), (PeerAddress(NODE_B, "::1", 65535),)),
    Hello(NODE_A, 1, 9000, "", "probe", observed="198.18.0.9:40312",
          nonce=NONCE),
    Hello(NODE_A, 1, 9000, observed="[2001:db8::7]:9000"),
    DialBackRequest(NONCE, "198.18.0.9", 9000),
    DialBackResult(NONCE, "reached"),
    DialBackResult(NONCE, "unreached", "connection refused"),
    Address(0),
    Address(9000, "198.18.0.9", 7, "aa" * 32, "bb" * 64),
    DialMe("198.18.0.9", 9000),
    HolePunch("connect", "198.18.0.9", 9000),
    HolePunch("connect", "198.18.0.9", 9000, rtt=115), HolePunch("sync"),
    HolePunch("none"),
    relay.Reserve(), relay.Reserved(600, 1 << 26, 3600),
    relay.ReserveRefused("not relaying"), relay.CircuitOpen(MSG_ID, NODE_A),
    relay.CircuitIncoming(MSG_ID, NODE_B), relay.CircuitAccept(MSG_ID),
    relay.CircuitReady(MSG_ID), relay.CircuitData(MSG_ID, "AAEC"),
    relay.CircuitCredit(MSG_ID, 65536), relay.CircuitClose(MSG_ID, "closed"),
]


@pytest.mark.parametrize("msg", EVERY_TYPE, ids=lambda msg: msg.TYPE)
def test_round_trip_of_every_type(msg):
    encoded = msg.encode()
    assert b"\n" not in encoded and b"\r" not in encoded
    decoded = P2PMessage.decode(encoded)
    assert type(decoded) is type(msg)
    assert decoded == msg
    assert json.loads(encoded)["type"] == msg.TYPE


def test_every_registered_type_is_covered():
    assert {type(msg) for msg in EVERY_TYPE} == set(m._REGISTRY.values())
    assert set(m._REGISTRY) == {
        "HELLO", "PEERS", "DATA", "ACK", "ACKS", "BROADCAST", "PING", "PONG",
        "BYE", "IHAVE", "GRAFT", "PRUNE",
        # Routing by id (p2poverlay.dht.wire).
        "FIND_NODE", "NODES", "STORE", "STORED", "FIND_VALUE", "VALUE",
        # Reachability (p2poverlay.natwire).
        "DIAL_BACK", "DIAL_BACK_RESULT", "ADDRESS", "DIAL_ME", "HOLE_PUNCH",
        # Circuit relays (p2poverlay.relay.wire).
        "RESERVE", "RESERVED", "RESERVE_REFUSED", "CIRCUIT_OPEN",
        "CIRCUIT_INCOMING", "CIRCUIT_ACCEPT", "CIRCUIT_READY", "CIRCUIT_DATA",
        "CIRCUIT_CREDIT", "CIRCUIT_CLOSE"}


@deterministic
@given(st.text(), st.text(alphabet="0123456789abcdef", min_size=32,
                          max_size=32))
@example("\ud800 lone surrogate \x7f \u2028 \"quoted\" \\", MSG_ID)
def test_data_encodes_as_the_generic_encoder_does(body, messageId):
    data = Data(messageId, body)
    generic = dumps(data.toDict()).encode("utf-8", "backslashreplace")
    assert data.encode() == generic


def test_message_ids_are_fresh_in_a_forked_child_too():
    newMessageId()  # Ids are drawn a batch at a time: some wait now.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, newMessageId().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    ours = {newMessageId() for _ in range(200)}
    assert len(child) == 32 and child not in ours
    assert len(ours) == 200


def test_whitespace_around_a_message_is_still_json():
    assert P2PMessage.decode(b' {"type":"ACK","id":"%s"} \t' % MSG_ID.encode()
                             ) == Ack(MSG_ID)
    assert P2PMessage.decode(line({"type": "DATA", "id": MSG_ID, "body": "b",
                                   "later": [1, {"x": None}]})
                             ) == Data(MSG_ID, "b")


def test_acks_confirms_ids_in_order():
    ids = (MSG_ID, newMessageId(), MSG_ID)
    assert P2PMessage.decode(line({"type": "ACKS", "ids": list(ids)})
                             ) == Acks(ids)
    assert Acks(ids).encode() == (
        '{"type":"ACKS","ids":["%s","%s","%s"]}' % ids).encode()


def test_encoding_is_compact_json_with_a_type_field():
    assert Ping(5).encode() == b'{"type":"PING","nonce":5}'
    assert Peers((PeerAddress(NODE_A, "h", 1),)).encode() == (
        b'{"type":"PEERS","peers":[{"node_id":"%s","host":"h","port":1,'
        b'"name":""}]}' % NODE_A.encode())


def test_decodes_the_documented_examples():
    hello = P2PMessage.decode(
        b'{"type":"HELLO","node_id":"6db0b3b0c59041279fbeefc47f94894d",'
        b'"version":1,"port":9000,"name":"alice"}')
    assert hello == Hello("6db0b3b0c59041279fbeefc47f94894d", 1, 9000, "alice")
    peers = P2PMessage.decode(
        b'{"type":"PEERS","peers":[{"node_id":"c3687017313a4bedb199cd854c97e70f",'
        b'"host":"10.0.0.7","port":9001,"name":""}]}')
    assert peers == Peers((PeerAddress(
        "c3687017313a4bedb199cd854c97e70f", "10.0.0.7", 9001, ""),))


def test_optional_fields_default_when_absent():
    assert P2PMessage.decode(line(
        {"type": "HELLO", "node_id": NODE_A, "version": 1, "port": 1})
    ) == Hello(NODE_A, 1, 1, "")
    assert P2PMessage.decode(b'{"type":"BYE"}') == Bye("")
    assert P2PMessage.decode(line(
        {"type": "BROADCAST", "id": MSG_ID, "origin": NODE_A, "ttl": 1,
         "body": "b"})).origin_name == ""
    assert P2PMessage.decode(line(
        {"type": "PEERS", "peers": [{"node_id": NODE_A, "host": "h", "port": 2}]})
    ) == Peers((PeerAddress(NODE_A, "h", 2, ""),))


def test_a_count_of_neighbours_is_sent_only_when_said():
    assert b"neighbours" not in Pong(5).encode()
    assert b"neighbours" not in Hello(NODE_A, 1, 1).encode()
    assert Pong(5, neighbours=0).encode() == \
        b'{"type":"PONG","nonce":5,"neighbours":0}'
    assert P2PMessage.decode(b'{"type":"PONG","nonce":5}').neighbours == UNSAID
    with pytest.raises(MessageError):
        P2PMessage.decode(b'{"type":"PONG","nonce":5,"neighbours":-1}')


def test_what_a_hello_observes_is_sent_only_when_said():
    assert b"observed" not in Hello(NODE_A, 1, 1).encode()
    assert b"nonce" not in Hello(NODE_A, 1, 1).encode()


def test_a_hello_says_dht_only_when_its_sender_serves_no_dht():
    assert b"dht" not in Hello(NODE_A, 3, 1).encode()
    assert Hello(NODE_A, 3, 1, dht=0).encode().endswith(b',"dht":0}')
    hello = {"type": "HELLO", "node_id": NODE_A, "version": 3, "port": 9}
    assert P2PMessage.decode(line(hello)).dht == 1


@pytest.mark.parametrize("fields, reason", [
    ({"observed": "nowhere"}, "HELLO field 'observed': expected host:port"),
    ({"observed": "h:0"}, "HELLO field 'observed': bad port"),
    ({"observed": "h" * 300 + ":1"}, "observed longer than"),
    ({"nonce": "ab"}, "nonce must be 64 lowercase hex digits"),
    ({"nonce": NONCE}, "HELLO has a nonce but does not probe"),
    ({"dht": 2}, "dht out of range: 2"),
])
def test_a_bad_observation_or_nonce_in_a_hello_is_an_error(fields, reason):
    hello = {"type": "HELLO", "node_id": NODE_A, "version": 1, "port": 9}
    with pytest.raises(MessageError, match=reason):
        P2PMessage.decode(line({**hello, **fields}))


@pytest.mark.parametrize("fields, reason", [
    ({"type": "DIAL_BACK", "nonce": NONCE, "host": "", "port": 9},
     "DIAL_BACK lacks a host"),
    ({"type": "DIAL_BACK", "nonce": "", "host": "h", "port": 9},
     "DIAL_BACK lacks a nonce"),
    ({"type": "DIAL_BACK", "nonce": NONCE, "host": "h", "port": 0},
     "port out of range"),
    ({"type": "DIAL_BACK_RESULT", "nonce": NONCE, "outcome": "maybe"},
     "unknown outcome 'maybe'"),
    ({"type": "ADDRESS", "port": 0, "host": "h", "seq": 1, "key": "aa" * 32,
      "signature": "bb" * 64}, "ADDRESS has a signed record without an"),
])
def test_bad_dial_back_messages_are_errors(fields, reason):
    with pytest.raises(MessageError, match=reason):
        P2PMessage.decode(line(fields))


def test_unknown_extra_fields_are_ignored():
    assert P2PMessage.decode(line(
        {"type": "PING", "nonce": 3, "future": {"nested": [1, 2]}, "x": None})
    ) == Ping(3)
    assert P2PMessage.decode(line(
        {"type": "PEERS", "peers": [
            {"node_id": NODE_A, "host": "h", "port": 2, "zone": "eu"}]})
    ) == Peers((PeerAddress(NODE_A, "h", 2),))


def test_boundary_values_are_accepted():
    longName = "n" * MAX_NAME_LENGTH
    assert P2PMessage.decode(Hello(NODE_A, 1, 65535, longName).encode()).name \
        == longName
    assert P2PMessage.decode(Hello(NODE_A, 1, 0).encode()).port == 0
    assert P2PMessage.decode(
        Broadcast(MSG_ID, NODE_A, MAX_TTL, "", longName).encode()).ttl == MAX_TTL
    assert P2PMessage.decode(Bye("r" * MAX_REASON_LENGTH).encode()).reason \
        == "r" * MAX_REASON_LENGTH
    host = "h" * MAX_HOST_LENGTH
    assert P2PMessage.decode(
        Peers((PeerAddress(NODE_A, host, 1, longName),)).encode()
    ).peers[0].host == host


# -- rejections ---------------------------------------------------------------

def hello(**fields):
    obj = {"type": "HELLO", "node_id": NODE_A, "version": 1, "port": 9000,
           "name": "n"}
    obj.update(fields)
    return line({k: v for k, v in obj.items() if v is not OMIT})


def broadcast(**fields):
    obj = {"type": "BROADCAST", "id": MSG_ID, "origin": NODE_A, "ttl": 3,
           "body": "b", "origin_name": "o"}
    obj.update(fields)
    return line({k: v for k, v in obj.items() if v is not OMIT})


def peers(*entries):
    return line({"type": "PEERS", "peers": list(entries)})


def entry(**fields):
    obj = {"node_id": NODE_A, "host": "10.0.0.1", "port": 9000, "name": "x"}
    obj.update(fields)
    return {k: v for k, v in obj.items() if v is not OMIT}


OMIT = object()

REJECTIONS = [
    # Bytes and JSON.
    ("invalid-utf8", b"\xff\xfe{}", "not valid UTF-8"),
    ("truncated-utf8", b'{"type":"PING","nonce":1}\xc3', "not valid UTF-8"),
    ("invalid-json", b'{"type": "PING", "nonce": ', "not valid JSON"),
    ("empty-line", b"", "not valid JSON"),
    ("trailing-garbage", b'{"type":"PING","nonce":1} x', "not valid JSON"),
    ("deeply-nested-list", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ("deeply-nested-object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
     "not valid JSON"),
    ("nested-in-a-field", b'{"type":"PING","nonce":1,"x":' + b"[" * 100_000
     + b"]" * 100_000 + b"}", "not valid JSON"),
    ("too-many-digits", b'{"type":"PING","nonce":' + b"9" * 5000 + b"}",
     "not valid JSON"),
    # Not an object.
    ("list", b"[1,2]", "message is not a JSON object"),
    ("string", b'"HELLO"', "message is not a JSON object"),
    ("number", b"3", "message is not a JSON object"),
    ("null", b"null", "message is not a JSON object"),
    ("true", b"true", "message is not a JSON object"),
    # The type.
    ("missing-type", b'{"nonce":1}', "missing or non-string 'type'"),
    ("null-type", b'{"type":null}', "missing or non-string 'type'"),
    ("int-type", b'{"type":7}', "missing or non-string 'type'"),
    ("list-type", b'{"type":["PING"]}', "missing or non-string 'type'"),
    ("unknown-type", b'{"type":"GOSSIP"}', "unknown message type 'GOSSIP'"),
    ("lowercase-type", b'{"type":"ping","nonce":1}', "unknown message type 'ping'"),
    ("empty-type", b'{"type":""}', "unknown message type ''"),
    # Missing fields.
    ("hello-no-node-id", hello(node_id=OMIT), "HELLO lacks field 'node_id'"),
    ("hello-no-version", hello(version=OMIT), "HELLO lacks field 'version'"),
    ("hello-no-port", hello(port=OMIT), "HELLO lacks field 'port'"),
    ("peers-no-list", b'{"type":"PEERS"}', "PEERS lacks field 'peers'"),
    ("data-no-body", line({"type": "DATA", "id": MSG_ID}),
     "DATA lacks field 'body'"),
    ("data-no-id", b'{"type":"DATA","body":"x"}', "DATA lacks field 'id'"),
    ("ack-no-id", b'{"type":"ACK"}', "ACK lacks field 'id'"),
    ("broadcast-no-ttl", broadcast(ttl=OMIT), "BROADCAST lacks field 'ttl'"),
    ("broadcast-no-origin", broadcast(origin=OMIT),
     "BROADCAST lacks field 'origin'"),
    ("ping-no-nonce", b'{"type":"PING"}', "PING lacks field 'nonce'"),
    ("pong-no-nonce", b'{"type":"PONG"}', "PONG lacks field 'nonce'"),
    # Mistyped fields.
    ("hello-port-string", hello(port="9000"), "HELLO field 'port' must be an integer"),
    ("hello-port-float", hello(port=9000.0), "HELLO field 'port' must be an integer"),
    ("hello-version-bool", hello(version=True),
     "HELLO field 'version' must be an integer"),
    ("hello-port-false", hello(port=False), "HELLO field 'port' must be an integer"),
    ("hello-port-null", hello(port=None), "HELLO field 'port' must be an integer"),
    ("hello-node-id-int", hello(node_id=1), "HELLO field 'node_id' must be a string"),
    ("hello-name-list", hello(name=["x"]), "HELLO field 'name' must be a string"),
    ("ping-nonce-bool", b'{"type":"PING","nonce":true}',
     "PING field 'nonce' must be an integer"),
    ("pong-nonce-string", b'{"type":"PONG","nonce":"1"}',
     "PONG field 'nonce' must be an integer"),
    ("broadcast-ttl-bool", broadcast(ttl=True),
     "BROADCAST field 'ttl' must be an integer"),
    ("broadcast-body-null", broadcast(body=None),
     "BROADCAST field 'body' must be a string"),
    ("data-body-object", line({"type": "DATA", "id": MSG_ID, "body": {}}),
     "DATA field 'body' must be a string"),
    ("ack-id-int", b'{"type":"ACK","id":5}', "ACK field 'id' must be a string"),
    ("bye-reason-int", b'{"type":"BYE","reason":1}', "BYE field 'reason' must be a string"),
    ("peers-object", b'{"type":"PEERS","peers":{}}', "PEERS field 'peers' must be a list"),
    ("peers-string", b'{"type":"PEERS","peers":"a"}', "PEERS field 'peers' must be a list"),
    # Bad identifiers.
    ("hello-short-id", hello(node_id=NODE_A[:-1]),
     "node_id must be 64 (or 32) lowercase hex digits"),
    ("hello-uppercase-id", hello(node_id=NODE_A.upper()),
     "node_id must be 64 (or 32) lowercase hex digits"),
    ("hello-id-newline", hello(node_id=NODE_A + "\n"),
     "node_id must be 64 (or 32) lowercase hex digits"),
    ("hello-id-non-hex", hello(node_id="g" * 32),
     "node_id must be 64 (or 32) lowercase hex digits"),
    ("broadcast-bad-origin", broadcast(origin="x"),
     "origin must be 64 (or 32) lowercase hex digits"),
    ("data-bad-id", line({"type": "DATA", "id": MSG_ID + "0", "body": ""}),
     "id must be 32 lowercase hex digits"),
    ("ack-bad-id", line({"type": "ACK", "id": ""}), "id must be 32 lowercase hex digits"),
    ("broadcast-bad-id", broadcast(id=MSG_ID.upper()),
     "id must be 32 lowercase hex digits"),
    # Ranges and lengths.
    ("hello-port-negative", hello(port=-1), "HELLO field 'port' out of range: -1"),
    ("hello-port-too-big", hello(port=65536), "port out of range: 65536"),
    ("hello-version-zero", hello(version=0), "bad protocol version 0"),
    ("hello-version-negative", hello(version=-3),
     "HELLO field 'version' out of range: -3"),
    ("hello-name-too-long", hello(name="n" * (MAX_NAME_LENGTH + 1)),
     f"name longer than {MAX_NAME_LENGTH} characters"),
    ("broadcast-ttl-negative", broadcast(ttl=-1),
     "BROADCAST field 'ttl' out of range: -1"),
    ("broadcast-ttl-too-big", broadcast(ttl=MAX_TTL + 1),
     f"ttl out of range: {MAX_TTL + 1}"),
    ("broadcast-origin-name-too-long",
     broadcast(origin_name="o" * (MAX_NAME_LENGTH + 1)),
     f"origin_name longer than {MAX_NAME_LENGTH} characters"),
    ("bye-reason-too-long", line({"type": "BYE", "reason": "r" * (MAX_REASON_LENGTH + 1)}),
     f"reason longer than {MAX_REASON_LENGTH} characters"),
    # Roles and tree broadcast.
    ("hello-unknown-role", line({"type": "HELLO", "node_id": NODE_A,
                                 "version": 1, "port": 1, "role": "boss"}),
     "unknown role 'boss'"),
    ("hello-role-not-a-string", line({"type": "HELLO", "node_id": NODE_A,
                                      "version": 1, "port": 1, "role": 1}),
     "HELLO field 'role' must be a string"),
    ("ihave-empty", line({"type": "IHAVE", "ids": []}), "ids is empty"),
    ("ihave-missing", line({"type": "IHAVE"}), "IHAVE lacks field 'ids'"),
    ("ihave-not-a-list", line({"type": "IHAVE", "ids": MSG_ID}),
     "IHAVE field 'ids' must be a list"),
    ("ihave-number", line({"type": "IHAVE", "ids": [7]}),
     "IHAVE field 'ids' must be a list of strings"),
    ("ihave-bad-id", line({"type": "IHAVE", "ids": [MSG_ID, "x"]}),
     "ids must be 32 lowercase hex digits"),
    ("ihave-too-many", line({"type": "IHAVE", "ids": [MSG_ID] * (MAX_IDS + 1)}),
     f"more than {MAX_IDS} ids"),
    ("graft-bad-id", line({"type": "GRAFT", "ids": ["nope"]}),
     "ids must be 32 lowercase hex digits"),
    ("acks-empty", line({"type": "ACKS", "ids": []}), "ids is empty"),
    ("acks-missing", line({"type": "ACKS", "id": MSG_ID}),
     "ACKS lacks field 'ids'"),
    ("acks-not-a-list", line({"type": "ACKS", "ids": MSG_ID}),
     "ACKS field 'ids' must be a list"),
    ("acks-number", line({"type": "ACKS", "ids": [MSG_ID, 7]}),
     "ACKS field 'ids' must be a list of strings"),
    ("acks-bad-id", line({"type": "ACKS", "ids": [MSG_ID, MSG_ID.upper()]}),
     "ids must be 32 lowercase hex digits"),
    ("acks-too-many", line({"type": "ACKS", "ids": [MSG_ID] * (MAX_IDS + 1)}),
     f"more than {MAX_IDS} ids"),
    ("data-id-number", line({"type": "DATA", "id": 5, "body": ""}),
     "DATA field 'id' must be a string"),
    ("data-body-list", line({"type": "DATA", "id": MSG_ID, "body": ["x"]}),
     "DATA field 'body' must be a string"),
    ("data-no-body", line({"type": "DATA", "id": MSG_ID}),
     "DATA lacks field 'body'"),
    ("data-bad-id", line({"type": "DATA", "id": "x" * 32, "body": ""}),
     "id must be 32 lowercase hex digits"),
    ("data-trailing-garbage", line({"type": "DATA", "id": MSG_ID,
                                    "body": ""}) + b"x", "not valid JSON"),
    ("data-two-values", line({"type": "DATA", "id": MSG_ID, "body": ""}) * 2,
     "not valid JSON"),
    # Numbers: JSON's only, and within what every decoder holds exactly.
    ("ping-nan", b'{"type":"PING","nonce":NaN}', "not valid JSON"),
    ("ping-infinity", b'{"type":"PING","nonce":Infinity}', "not valid JSON"),
    ("ping-negative", line({"type": "PING", "nonce": -1}),
     "PING field 'nonce' out of range: -1"),
    ("ping-past-2-53", line({"type": "PING", "nonce": MAX_INTEGER + 1}),
     f"PING field 'nonce' out of range: {MAX_INTEGER + 1}"),
    ("ping-float", line({"type": "PING", "nonce": 1.0}),
     "PING field 'nonce' must be an integer"),
    # Signatures.
    ("broadcast-key-without-signature", broadcast(key="ab" * 32),
     "key and signature come together"),
    ("broadcast-short-signature", broadcast(key="ab" * 32, signature="ab"),
     "signature must be 128 lowercase hex digits"),
    ("broadcast-upper-key", broadcast(key="AB" * 32, signature="ab" * 64),
     "key must be 64 lowercase hex digits"),
    ("broadcast-time-negative", broadcast(time=-5),
     "BROADCAST field 'time' out of range: -5"),
]


@pytest.mark.parametrize("raw, reason",
                         [pytest.param(r, why, id=i) for i, r, why in REJECTIONS])
def test_rejections_give_a_one_line_reason(raw, reason):
    assert decodeError(raw) == reason


def test_each_rejection_case_is_otherwise_valid():
    """The helpers build valid messages when nothing is changed."""
    assert isinstance(P2PMessage.decode(hello()), Hello)
    assert isinstance(P2PMessage.decode(broadcast()), Broadcast)
    assert P2PMessage.decode(peers(entry())) == Peers(
        (PeerAddress(NODE_A, "10.0.0.1", 9000, "x"),))


def test_unknown_type_in_the_reason_is_truncated_and_quoted():
    reason = decodeError(line({"type": "X\n" * 100}))
    assert reason == "unknown message type " + repr("X\n" * 16)


def test_message_error_is_a_value_error():
    assert issubclass(MessageError, ValueError)


def test_from_dict_builds_and_validates():
    assert P2PMessage.fromDict({"type": "ACK", "id": MSG_ID}) == Ack(MSG_ID)
    with pytest.raises(MessageError, match="must be 32 lowercase hex"):
        P2PMessage.fromDict({"type": "ACK", "id": "nope"})

# A bad PEERS entry (the last of each) is skipped; the others stand.
BAD_ENTRIES = [
    ("peers-entry-string", peers("10.0.0.1:9000"), "PEERS entry is not an object"),
    ("peers-entry-list", peers(entry(), [NODE_A, "h", 1]),
     "PEERS entry is not an object"),
    ("peers-entry-null", peers(None), "PEERS entry is not an object"),
    ("peers-entry-no-node-id", peers(entry(node_id=OMIT)),
     "PEERS entry lacks field 'node_id'"),
    ("peers-entry-no-host", peers(entry(host=OMIT)), "PEERS entry lacks field 'host'"),
    ("peers-entry-no-port", peers(entry(port=OMIT)), "PEERS entry lacks field 'port'"),
    ("peers-entry-host-int", peers(entry(host=1)), "PEERS entry has a non-string field"),
    ("peers-entry-name-null", peers(entry(name=None)),
     "PEERS entry has a non-string field"),
    ("peers-entry-port-string", peers(entry(port="1")),
     "PEERS entry port must be an integer"),
    ("peers-entry-port-bool", peers(entry(port=True)),
     "PEERS entry port must be an integer"),
    ("peers-entry-bad-id", peers(entry(node_id="abc")),
     "node_id must be 64 (or 32) lowercase hex digits"),
    ("peers-entry-port-zero", peers(entry(port=0)), "port out of range: 0"),
    ("peers-entry-port-too-big", peers(entry(port=70000)), "port out of range: 70000"),
    ("peers-entry-empty-host", peers(entry(host="")), "PEERS entry has an empty host"),
    ("peers-entry-host-too-long", peers(entry(host="h" * (MAX_HOST_LENGTH + 1))),
     f"host longer than {MAX_HOST_LENGTH} characters"),
    ("peers-entry-name-too-long", peers(entry(name="n" * (MAX_NAME_LENGTH + 1))),
     f"name longer than {MAX_NAME_LENGTH} characters"),
    ("peers-second-entry-bad", peers(entry(), entry(port=-5)), "port out of range: -5"),
    ("peers-entry-seq-string", peers(entry(seq="1")),
     "PEERS entry seq must be an integer"),
    ("peers-entry-seq-negative", peers(entry(seq=-1)), "seq out of range: -1"),
    ("peers-entry-key-alone", peers(entry(key="ab" * 32)),
     "key and signature come together"),
]


@pytest.mark.parametrize("raw, reason",
                         [pytest.param(r, why, id=i) for i, r, why in BAD_ENTRIES])
def test_a_bad_peers_entry_is_skipped_for_a_reason(raw, reason):
    items = json.loads(raw)["peers"]
    good = tuple(PeerAddress.fromDict("PEERS", item) for item in items[:-1])
    assert P2PMessage.decode(raw) == Peers(good)
    with pytest.raises(MessageError) as info:
        PeerAddress.fromDict("PEERS", items[-1])
    assert str(info.value) == reason


def test_peers_entries_past_the_first_100_are_not_read():
    good = [entry(port=1000 + n) for n in range(100)]
    decoded = P2PMessage.decode(peers(*good, "not even an object", entry()))
    assert [a.port for a in decoded.peers] == list(range(1000, 1100))


# -- properties ---------------------------------------------------------------

hexIds = st.text("0123456789abcdef", min_size=32, max_size=32)
# Any code point, lone surrogates included: they travel as \\u escapes.
anyChar = st.one_of(st.characters(), st.characters(categories=["Cs"]))
anyText = st.text(anyChar, max_size=40)
names = st.text(anyChar, max_size=MAX_NAME_LENGTH)
peerAddresses = st.builds(
    PeerAddress, hexIds,
    st.text(min_size=1, max_size=MAX_HOST_LENGTH), st.integers(1, 65535), names)
validMessages = st.one_of(
    st.builds(Hello, hexIds, st.integers(1, MAX_INTEGER), st.integers(0, 65535), names),
    st.builds(Peers, st.lists(peerAddresses, max_size=5).map(tuple)),
    st.builds(Data, hexIds, anyText),
    st.builds(Ack, hexIds),
    st.builds(Broadcast, hexIds, hexIds, st.integers(0, MAX_TTL), anyText, names),
    st.builds(Ping, st.integers(0, MAX_INTEGER)),
    st.builds(Pong, st.integers(0, MAX_INTEGER)),
    st.builds(Bye, st.text(anyChar, max_size=MAX_REASON_LENGTH)),
)


@deterministic
@given(validMessages)
@example(Data(MSG_ID, "\n\r\u2028\u2029\x00\ud800\\\""))
def test_encode_decode_round_trip(msg):
    encoded = msg.encode()
    assert b"\n" not in encoded
    assert b"\r" not in encoded
    encoded.decode("utf-8")  # Always valid UTF-8, even with lone surrogates.
    assert P2PMessage.decode(encoded) == msg


jsonScalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
jsonValues = st.recursive(
    jsonScalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)


def maybe(valid):
    """Mostly valid values, sometimes any JSON value."""
    return st.one_of(valid, valid, jsonValues)


peerEntries = st.one_of(
    st.fixed_dictionaries({}, optional={
        "node_id": maybe(hexIds), "host": maybe(st.text(max_size=300)),
        "port": maybe(st.integers(-2, 70000)), "name": maybe(st.text(max_size=70)),
    }),
    jsonValues)
messageLike = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(m._REGISTRY) + ["", "hello", "NOPE"])},
    optional={
        "node_id": maybe(hexIds), "origin": maybe(hexIds), "id": maybe(hexIds),
        "version": maybe(st.integers(-2, 3)), "port": maybe(st.integers(-2, 70000)),
        "ttl": maybe(st.integers(-2, 300)), "nonce": maybe(st.integers()),
        "name": maybe(st.text(max_size=70)),
        "origin_name": maybe(st.text(max_size=70)),
        "body": maybe(st.text()), "reason": maybe(st.text(max_size=210)),
        "peers": maybe(st.lists(peerEntries, max_size=3)),
        "extra": jsonValues,
    })


def decodesOrRejects(raw: bytes) -> None:
    try:
        result = P2PMessage.decode(raw)
    except MessageError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(result, P2PMessage)
        assert type(result) in m._REGISTRY.values()
        # Whatever is accepted survives a round trip unchanged.
        assert P2PMessage.decode(result.encode()) == result


@settings(deterministic, max_examples=300)
@given(st.binary(max_size=200))
@example(b"\xed\xa0\x80")  # An encoded surrogate: not valid UTF-8.
@example(b"[" * 50_000)
@example(b'{"type":"PING","nonce":1e400}')
@example(b'{"type":"HELLO","node_id":"0123456789abcdef0123456789abcdef",'
         b'"version":1,"port":1,"name":"\\ud800"}')
def test_decode_of_arbitrary_bytes_returns_a_message_or_raises_message_error(raw):
    decodesOrRejects(raw)


@settings(deterministic, max_examples=300)
@given(messageLike)
def test_decode_of_message_like_objects_returns_a_message_or_raises_message_error(obj):
    decodesOrRejects(json.dumps(obj).encode("utf-8"))


@deterministic
@given(validMessages, st.data())
def test_decode_of_a_mutated_valid_line_returns_a_message_or_raises_message_error(
        msg, data):
    encoded = bytearray(msg.encode())
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    decodesOrRejects(bytes(encoded[:cut]))


# -- addresses ----------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    ("example.com:1", ("example.com", 1)),
    ("localhost:65535", ("localhost", 65535)),
    ("[::1]:9000", ("::1", 9000)),
    ("[fe80::1%eth0]:80", ("fe80::1%eth0", 80)),
])
def test_parse_address(text, expected):
    assert parseAddress(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("", "expected host:port"),
    ("localhost", "expected host:port"),
    (":9000", "expected host:port"),
    ("[]:9000", "expected host:port"),
    ("::1:9000", "put an IPv6 address in brackets: [::1]:9000"),
    ("host:", "bad port"),
    ("host:0", "bad port"),
    ("host:65536", "bad port"),
    ("host:-1", "bad port"),
    ("host:+80", "bad port"),
    ("host: 80", "bad port"),
    ("host:80a", "bad port"),
    ("host:\u0663", "bad port"),  # ARABIC-INDIC DIGIT THREE
    ("host:\u00b2", "bad port"),  # SUPERSCRIPT TWO
])
def test_parse_address_rejects(text, reason):
    with pytest.raises(ValueError) as info:
        parseAddress(text)
    assert reason in str(info.value)


@pytest.mark.parametrize("host, port, text", [
    ("127.0.0.1", 9000, "127.0.0.1:9000"),
    ("example.com", 1, "example.com:1"),
    ("::1", 9000, "[::1]:9000"),
    ("2001:db8::7", 65535, "[2001:db8::7]:65535"),
])
def test_format_address(host, port, text):
    assert formatAddress(host, port) == text
    assert parseAddress(text) == (host, port)


@deterministic
@given(st.text(st.characters(exclude_characters="[]"), min_size=1),
       st.integers(1, 65535))
def test_format_then_parse_round_trip(host, port):
    assert parseAddress(formatAddress(host, port)) == (host, port)


@deterministic
@given(st.text(st.sampled_from("[]:.0123456789abc\u0663\u00b2 ") | st.characters()))
@example("[]:1")
@example("x:\u0663")
def test_parse_address_of_any_text_gives_a_valid_address_or_value_error(text):
    try:
        host, port = parseAddress(text)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert host
        assert 1 <= port <= 65535
        portText = text.rpartition(":")[2]
        assert portText.isascii() and int(portText) == port


# -- peer lookup --------------------------------------------------------------

def info(nodeId, host="10.0.0.1", port=9000, name="", since=0.0,
         direction=INBOUND):
    return PeerInfo(nodeId, host, port, name, direction, since)


@pytest.fixture
def registry():
    registry = PeerRegistry()
    registry.add(info("aaaa1111" + "0" * 24, "10.0.0.1", 9001, "alice", 1.0),
                 object())
    registry.add(info("aaaa2222" + "0" * 24, "10.0.0.2", 9002, "bob", 2.0,
                      OUTBOUND), object())
    registry.add(info("bbbb3333" + "0" * 24, "::1", 9003, "", 3.0), object())
    return registry


def test_find_by_address(registry):
    assert registry.find("10.0.0.2:9002").name == "bob"
    assert registry.find("[::1]:9003").node_id.startswith("bbbb3333")
    # The observed host with a port the peer does not listen on is no match.
    assert registry.find("10.0.0.2:9001") is None


def test_find_by_full_id(registry):
    nodeId = "aaaa2222" + "0" * 24
    assert registry.find(nodeId).node_id == nodeId
    assert registry.find(nodeId.upper()).node_id == nodeId


def test_find_by_unique_prefix(registry):
    assert registry.find("aaaa1").name == "alice"
    assert registry.find("AAAA2").name == "bob"
    assert registry.find("bbbb").port == 9003
    # A prefix needs four digits at least.
    assert registry.find("bbb") is None


def test_find_by_name(registry):
    assert registry.find("alice").port == 9001
    assert registry.find("bob").port == 9002
    assert registry.find("carol") is None
    # A peer without a name is not found by the empty name.
    assert registry.find("") is None


def test_find_ambiguous_prefix(registry):
    with pytest.raises(AmbiguousPeer) as raised:
        registry.find("aaaa")
    message = str(raised.value)
    assert "'aaaa' matches 2 peers" in message
    assert "10.0.0.1:9001" in message and "10.0.0.2:9002" in message
    assert issubclass(AmbiguousPeer, LookupError)


class Link:
    def __init__(self, role):
        self.role = role


def test_the_lists_of_connections_and_neighbours_follow_every_change():
    registry = PeerRegistry()
    a, b = Link("neighbour"), Link("direct")
    registry.add(info("1" * 32, port=1), a)
    assert registry.neighbours() == [a] and registry.neighbourCount() == 1
    registry.add(info("2" * 32, port=2), b)
    assert registry.connections() == [a, b]
    assert registry.neighbours() == [a]
    registry.neighbours().clear()  # A copy: the registry's stays.
    assert registry.neighbours() == [a]
    c = Link("neighbour")
    registry.add(info("2" * 32, port=2), c)  # b replaced
    assert registry.connections() == [a, c] and registry.neighbourCount() == 2
    assert not registry.remove("1" * 32, b)
    assert registry.remove("1" * 32, a)
    assert registry.connections() == [c] and registry.neighbours() == [c]


def test_by_address_follows_a_peer_that_moves_and_prefers_the_oldest():
    registry = PeerRegistry()
    registry.add(info("1" * 32, "10.0.0.1", 9000, since=5.0), object())
    registry.add(info("2" * 32, "10.0.0.1", 9000, since=3.0), object())
    assert registry.byAddress("10.0.0.1", 9000).node_id == "2" * 32
    first = object()
    registry.add(info("3" * 32, "10.0.0.3", 9003), first)
    registry.add(info("3" * 32, "10.0.0.4", 9003), first)  # it moved
    assert registry.byAddress("10.0.0.3", 9003) is None
    assert registry.byAddress("10.0.0.4", 9003).node_id == "3" * 32
    assert registry.remove("3" * 32, first)
    assert registry.byAddress("10.0.0.4", 9003) is None
    assert registry.byAddress("10.0.0.1", 9001) is None


def test_find_ambiguous_name():
    registry = PeerRegistry()
    registry.add(info("1" * 32, name="twin", port=1), object())
    registry.add(info("2" * 32, name="twin", port=2), object())
    with pytest.raises(AmbiguousPeer):
        registry.find("twin")


def test_registry_snapshot_remove_and_lookups(registry):
    snapshot = registry.snapshot()
    assert [p.name for p in snapshot] == ["alice", "bob", ""]
    assert len(registry) == 3
    bob = "aaaa2222" + "0" * 24
    assert bob in registry
    connection = registry.connection(bob)
    assert registry.remove(bob, object()) is False
    assert bob in registry
    assert registry.remove(bob, connection) is True
    assert bob not in registry and registry.get(bob) is None
    assert registry.byAddress("10.0.0.1", 9001).name == "alice"
    assert registry.byAddress("10.0.0.2", 9002) is None


def test_peer_info_labels():
    peer = info("0123456789abcdef" * 2, "::1", 9000, "bob")
    assert peer.address == "[::1]:9000"
    assert peer.shortId == "01234567"
    assert peer.describe() == "[::1]:9000 (01234567 'bob')"
    assert info("f" * 32, port=1).describe() == "10.0.0.1:1 (ffffffff)"


# -- the seen cache -----------------------------------------------------------

def test_seen_cache_reports_new_and_known_ids():
    clock = Clock()
    cache = SeenCache(10, 60.0, clock.seconds)
    assert cache.add("a") is True
    assert cache.add("a") is False
    assert "a" in cache and "b" not in cache
    assert len(cache) == 1


def test_seen_cache_is_bounded_and_evicts_the_oldest():
    clock = Clock()
    cache = SeenCache(3, 60.0, clock.seconds)
    for key in "abc":
        assert cache.add(key)
        clock.advance(1)
    assert cache.add("d") is True
    assert len(cache) == 3
    assert "a" not in cache
    assert all(key in cache for key in "bcd")
    # The evicted id counts as new again; it evicts the next oldest.
    assert cache.add("a") is True
    assert "b" not in cache and len(cache) == 3


def test_seen_cache_forgets_after_its_ttl():
    clock = Clock()
    cache = SeenCache(100, 10.0, clock.seconds)
    cache.add("a")
    clock.advance(5)
    cache.add("b")
    clock.advance(4.75)
    assert "a" in cache
    assert cache.add("a") is False
    clock.advance(0.25)  # a is 10 s old.
    assert "a" not in cache
    assert "b" in cache
    assert cache.add("a") is True
    clock.advance(5)  # b is 10 s old, the new a 5 s.
    assert "b" not in cache and "a" in cache
    assert len(cache) == 1


def test_seen_cache_expiry_also_happens_on_add():
    clock = Clock()
    cache = SeenCache(100, 1.0, clock.seconds)
    for i in range(50):
        cache.add(str(i))
    clock.advance(2)
    cache.add("new")
    assert len(cache) == 1


def test_a_key_derived_node_id_of_64_digits_is_accepted():
    nodeId = NodeKey.generate().nodeId
    line = Hello(nodeId, 1, 9000, "k").encode()
    assert P2PMessage.decode(line) == Hello(nodeId, 1, 9000, "k")
    with pytest.raises(MessageError, match="64 \\(or 32\\) lowercase hex"):
        P2PMessage.decode(Hello(nodeId + "0" * 32, 1, 9000).encode())

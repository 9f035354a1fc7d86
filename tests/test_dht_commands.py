"""
The console's (and the control endpoint's) DHT commands, on an in-memory
overlay of real nodes: lookup, send by an id never heard of, put and get.
"""

from __future__ import annotations

from p2poverlay.commands import CommandInterpreter
from p2poverlay.identity import NodeKey
from p2poverlay.signing import Signer

from memoverlay import bodies, outcome
from test_dht_memory import overlayOf


def run(overlay, node, line):
    return outcome(overlay, CommandInterpreter(node, lambda: None).execute(line),
                   timeout=30)


def test_lookup_prints_the_path_and_json():
    overlay, nodes = overlayOf(40, seed=21)
    source = nodes[0]
    target = next(n for n in nodes[1:] if not source.peers.connection(n.nodeId))
    reply = run(overlay, source, f"lookup {target.nodeId}")
    assert reply.ok, reply.error
    assert reply.lines[0].startswith(f"lookup {target.nodeId[:16]}: found ")
    assert f"({target.nodeId[:8]}) in " in reply.lines[0]
    assert any(line.startswith("  round 1: ") for line in reply.lines)
    assert reply.result["found"]["node_id"] == target.nodeId
    assert reply.result["rounds"] >= 1 and reply.result["path"]


def test_lookup_refuses_what_is_not_a_node_id():
    overlay, nodes = overlayOf(3, seed=22)
    for line in ("lookup", "lookup abc", f"lookup {nodes[0].nodeId[:-1]}x"):
        reply = run(overlay, nodes[0], line)
        assert not reply.ok and reply.lines[0].startswith("error: usage: lookup")
    reply = run(overlay, nodes[0], f"lookup {nodes[0].nodeId}")
    assert reply.error == "that is this node's own id"


def test_send_says_when_it_found_the_node_by_lookup():
    overlay, nodes = overlayOf(40, seed=23)
    sender = nodes[0]
    target = next(n for n in nodes[1:] if not sender.peers.connection(n.nodeId))
    # Whatever peer exchange told the sender of it, it forgets.
    sender.addressBook.forget(target.nodeId)
    assert sender.reach.needsLookup(target.nodeId)
    reply = run(overlay, sender, f"send {target.nodeId} hello there")
    assert reply.ok, reply.error
    assert "(found by lookup: " in reply.lines[0]
    assert reply.result["lookup"]["found"]["node_id"] == target.nodeId
    assert bodies(overlay, target, "direct") == ["hello there"]


def test_put_and_get_through_commands():
    overlay, nodes = overlayOf(40, seed=24)
    # Nodes in memory have no key; these two are given one to sign with.
    writer, reader = nodes[2], nodes[30]
    writer.values.signer = Signer(NodeKey.generate())
    reply = run(overlay, writer, "put motd all is well")
    assert reply.ok, reply.error
    assert reply.lines[0].startswith("stored 'motd' on 20 of the 20 nodes")
    reply = run(overlay, reader, "get motd")
    assert reply.ok, reply.error
    assert reply.lines[0].startswith("get 'motd': 1 value, held by ")
    assert reply.lines[1].startswith("  all is well (by ")
    assert reply.result["records"][0]["writer"] == \
        writer.values.signer.key.nodeId
    assert reply.result["holders"] >= 18  # 90 % of the k replica holders


def test_put_without_a_key_and_bad_usage_fail_in_one_line():
    overlay, nodes = overlayOf(3, seed=25)
    reply = run(overlay, nodes[0], "put k v")
    assert reply.error == "put failed: this node has no key: it cannot sign " \
                          "a record"
    assert run(overlay, nodes[0], "put onlykey").error == "usage: put <key> <value>"
    assert run(overlay, nodes[0], "get").error == "usage: get <key>"
    reply = run(overlay, nodes[0], "get nothing-here")
    assert reply.ok and reply.lines[0].startswith("get 'nothing-here': 0 values")

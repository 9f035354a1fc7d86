"""
Routing by id between 30 real C{twistd -n p2p} processes on 127.0.0.1,
each with at most two neighbours: C{send} to a node the sender was never
told of, C{lookup}, and C{put} on one process read by C{get} on another.
"""

from __future__ import annotations

import re

from processes import label, waitUntil

SIZE = 30
SPARSE = ("--min-peers", "1", "--max-peers", "2")
KNOWN_ID = re.compile(r"\b([0-9a-f]{64})\b")
# The longest a command may take before it reports either way: a lookup
# (requests time out after 5 s), a dial (connect and handshake, 10 s
# each) and, for a send, the confirmation (30 s).  Thirty processes
# joining the DHT at once on two cores can come near it.
OUTCOME = 90.0


def outcome(node, ending: str, success: str) -> str:
    """
    The line that tells how the command just typed ended (one starting
    with C{ending}, or an C{error:}): it must match C{success}.
    """
    line = node.expect(rf"^(?:{re.escape(ending)}|error: ).*",
                       timeout=OUTCOME).group(0)
    assert re.match(success, line), f"{node.name}: {line}"
    return line


def waitFindable(node) -> None:
    """Wait until C{node}'s own lookup has told the nodes nearest it of it
    (a node that joined a moment ago may not be found yet)."""
    def findable() -> bool:
        node.type("info")
        return node.expect(r"^  dht:     ").string.endswith(", findable")

    waitUntil(findable, f"{node.name} to be findable", timeout=OUTCOME,
              interval=0.2)


def test_send_lookup_put_and_get_across_thirty_processes(processes):
    # The sender keeps 8 nodes in its address book and 4 direct links (a
    # DHT join links a node to most of 30): it cannot know them all.
    nodes = [processes.node("n0", *SPARSE, "--address-book-size", "8",
                            "--max-direct-links", "4")]
    for index in range(1, SIZE):
        nodes.append(processes.node(f"n{index}", *SPARSE, "--join",
                                    nodes[-1].address))
    for node in nodes:
        waitFindable(node)
    sender = nodes[0]
    # The nodes the sender has heard of: its peers and its address book.
    heard = set(KNOWN_ID.findall("\n".join(
        sender.command("known") + sender.command("peers"))))
    strangers = [n for n in nodes[1:] if n.nodeId not in heard]
    assert strangers, "the sender has heard of every node"
    target = strangers[-1]
    sender.type(f"send {target.nodeId} found by id")
    outcome(sender, "delivered to",
            rf"delivered to {label(target)} \(found by lookup: \d+ rounds?, "
            rf"\d+ asked")
    target.expect(rf"^\[direct\] {label(sender)}: found by id$")

    other = nodes[SIZE // 2]
    sender.type(f"lookup {other.nodeId}")
    outcome(sender, f"lookup {other.nodeId[:16]}:",
            rf"lookup {other.nodeId[:16]}: found {label(other)} in \d+ "
            rf"rounds?, \d+ asked")

    writer, reader = nodes[3], nodes[SIZE - 4]
    writer.type("put motd across processes")
    outcome(writer, "stored 'motd' on",
            r"stored 'motd' on [1-9]\d* of the \d+ nodes nearest it")
    reader.type("get motd")
    outcome(reader, "get 'motd':", r"get 'motd': 1 value, held by [1-9]\d* of")
    reader.expect(rf"^  across processes \(by {writer.nodeId[:8]}, "
                  rf"expires in \d+ s\)$")
    for node in nodes:
        assert "Traceback" not in node.transcript()

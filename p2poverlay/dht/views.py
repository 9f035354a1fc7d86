"""
How the DHT's results read, as JSON and as console lines (as
L{p2poverlay.views} does for the rest of the node).
"""

from __future__ import annotations

from typing import Any, Dict, List

from p2poverlay.dht.lookup import LookupResult
from p2poverlay.dht.record import ValueRecord
from p2poverlay.dht.routing import Contact
from p2poverlay.dht.values import GetResult, PutResult

JSON = Dict[str, Any]


def contactView(contact: Contact) -> JSON:
    return {"node_id": contact.nodeId, "host": contact.host,
            "port": contact.port}


def describeContact(contact: Contact) -> str:
    host = f"[{contact.host}]" if ":" in contact.host else contact.host
    return f"{host}:{contact.port} ({contact.nodeId[:8]})"


def lookupView(result: LookupResult) -> JSON:
    """A lookup, as the web API and C{p2p-console --json} give it."""
    return {
        "target": f"{result.target:064x}",
        "found": contactView(result.found) if result.found else None,
        "rounds": result.rounds,
        "named_in_round": result.namedIn,
        "asked": result.asked,
        "unanswered": result.failed,
        "elapsed_ms": round(result.elapsed * 1000, 1),
        "path": [{"round": r, "node_id": nodeId, "answered": answered}
                 for r, nodeId, answered in result.path],
        "closest": [contactView(c) for c in result.closest],
    }


def lookupSummary(result: LookupResult) -> str:
    """Rounds, nodes asked and time, in a few words."""
    rounds = "round" if result.rounds == 1 else "rounds"
    return (f"{result.rounds} {rounds}, {result.asked} asked "
            f"({result.failed} no answer), {result.elapsed * 1000:.0f} ms")


def lookupLines(reference: str, result: LookupResult) -> List[str]:
    """What the console prints for C{lookup}: the outcome, then the path."""
    if result.found is not None:
        head = f"found {describeContact(result.found)}"
    else:
        head = f"not found: {len(result.closest)} nearest nodes answered"
    lines = [f"lookup {reference[:16]}: {head} in "
             f"{lookupSummary(result)}"]
    byRound: Dict[int, List[str]] = {}
    for round, nodeId, answered in result.path:
        byRound.setdefault(round, []).append(
            nodeId[:8] + ("" if answered else " (no answer)"))
    for round in sorted(byRound):
        lines.append(f"  round {round}: {', '.join(byRound[round])}")
    return lines


def recordView(record: ValueRecord) -> JSON:
    return {"key": record.key, "value": record.value,
            "writer": record.writer, "seq": record.seq,
            "expires": record.expires / 1000}


def putView(result: PutResult) -> JSON:
    return {"record": recordView(result.record), "stored": result.stored,
            "asked": result.asked, "refused": result.refused,
            "lookup": lookupView(result.lookup) if result.lookup else None}


def putLines(result: PutResult) -> List[str]:
    line = (f"stored {result.record.key!r} on {result.stored} of the "
            f"{result.asked} nodes nearest it")
    if result.lookup is not None:
        line += f" (lookup: {lookupSummary(result.lookup)})"
    refused = sorted(set(r for r in result.refused if r))
    return [line] + [f"  refused: {why}" for why in refused]


def getView(result: GetResult) -> JSON:
    return {"key": result.key,
            "records": [recordView(r) for r in result.records],
            "holders": result.holders, "lookup": lookupView(result.lookup)}


def getLines(result: GetResult, now: float) -> List[str]:
    found = (f"{len(result.records)} value"
             f"{'' if len(result.records) == 1 else 's'}")
    lines = [f"get {result.key!r}: {found}, held by {result.holders} of "
             f"{result.lookup.asked} nodes asked "
             f"({lookupSummary(result.lookup)})"]
    for record in result.records:
        left = max(0.0, record.expires / 1000 - now)
        lines.append(f"  {record.value} (by {record.writer[:8]}, expires in "
                     f"{left:.0f} s)")
    return lines

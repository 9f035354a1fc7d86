"""
The control protocol as both of its ends write and read it: one JSON
object a line, C{hello}, requests, replies and events.

The node's side (L{p2poverlay.control}) and the client's
(L{p2poverlay.client}) share this module and nothing else, so that the
client imports none of the node.  The protocol is described in
C{docs/control.rst}.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = [
    "CLOSING", "CONTROL_PROTOCOL_VERSION", "CONTROL_SOCKET", "EVENT", "HELLO",
    "REPLY", "BadRequest", "closingMessage", "decode", "defaultControlPath",
    "encode", "eventMessage", "helloMessage", "parseRequest",
    "replyMessage", "requestMessage", "unixDescription",
]

CONTROL_PROTOCOL_VERSION = 1
CONTROL_SOCKET = "control.sock"

# Message types, and the event that announces the end of a connection.
HELLO = "hello"
REPLY = "reply"
EVENT = "event"
CLOSING = "closing"

RequestId = Union[int, str, None]
Message = Dict[str, Any]


def defaultControlPath(dataDir: str) -> str:
    """Where a node with data directory C{dataDir} listens for control."""
    return os.path.join(dataDir, CONTROL_SOCKET)


def unixDescription(path: str) -> str:
    """A server or client endpoint description of the UNIX socket C{path}."""
    return "unix:" + path.replace("\\", "\\\\").replace(":", "\\:")


def encode(message: Message) -> bytes:
    """One line of the control protocol, newline included."""
    return json.dumps(message, separators=(",", ":")).encode("ascii") + b"\n"


def decode(line: bytes) -> Message:
    """
    Read one line a node sent.

    @return: the message, a JSON object with a string C{type}.
    @raise ValueError: if the line is not such a message.
    """
    message = json.loads(line)
    if not isinstance(message, dict) or not isinstance(
            message.get("type"), str):
        raise ValueError("not a control protocol message")
    return message


# -- client to node ------------------------------------------------------------

class BadRequest(ValueError):
    """A control request that cannot be understood."""


def requestMessage(requestId: RequestId, command: str,
                   wantJSON: bool = False) -> Message:
    """
    A request to run one command line.

    @param requestId: copied into the reply, to tell replies apart.
    @param wantJSON: whether the reply should carry the structured result.
    """
    return {"id": requestId, "command": command, "json": wantJSON}


def parseRequest(line: bytes) -> Tuple[RequestId, str, bool]:
    """
    Read one request line.

    @return: C{(id, command, wantJSON)}.
    @raise BadRequest: with a one-line reason, if the line is not a request.
    """
    try:
        request = json.loads(line)
    except ValueError:
        raise BadRequest("not a JSON object") from None
    if not isinstance(request, dict):
        raise BadRequest("not a JSON object")
    requestId = request.get("id")
    if requestId is not None and (
            isinstance(requestId, bool)
            or not isinstance(requestId, (int, str))):
        raise BadRequest("'id' must be a string or a number")
    command = request.get("command")
    if not isinstance(command, str):
        raise BadRequest("'command' must be a string")
    wantJSON = request.get("json", False)
    if not isinstance(wantJSON, bool):
        raise BadRequest("'json' must be true or false")
    return requestId, command, wantJSON


# -- node to client ------------------------------------------------------------

def helloMessage(nodeId: str, name: Optional[str], port: int,
                 line: str, log: Optional[str] = None,
                 web: Optional[str] = None) -> Message:
    """
    What a node says first to every client.

    @param port: the port the node listens on for peers.
    @param line: a one-line description of the node, to show.
    @param log: where the node logs, if it says (sent only if given).
    @param web: the address of its web UI, if it says (sent only if given).
    """
    message: Message = {"type": HELLO, "version": CONTROL_PROTOCOL_VERSION,
                        "node_id": nodeId, "name": name, "port": port,
                        "line": line}
    for key, value in (("log", log), ("web", web)):
        if value is not None:
            message[key] = value
    return message


def replyMessage(requestId: RequestId, lines: List[str], result: Any = None,
                 error: Optional[str] = None,
                 wantJSON: bool = False) -> Message:
    """
    The answer to one request.

    @param lines: what a console prints, unescaped.
    @param result: the structured answer, sent only if C{wantJSON}.
    @param error: why the command failed; C{None} if it succeeded.
    """
    message: Message = {"type": REPLY, "id": requestId, "ok": error is None,
                        "lines": lines}
    if wantJSON:
        message["result"] = result
    if error is not None:
        message["error"] = error
    return message


def eventMessage(event: str, line: str, data: Dict[str, Any]) -> Message:
    """
    Something that happened at the node.

    @param event: what kind of thing (C{message}, C{connected}, ...).
    @param line: what a console prints for it, unescaped.
    @param data: the event as a JSON object.
    """
    return {"type": EVENT, "event": event, "line": line, "data": data}


def closingMessage(why: str) -> Message:
    """The last event: the node closes the connection, because C{why}."""
    return eventMessage(CLOSING, why, {"reason": why})

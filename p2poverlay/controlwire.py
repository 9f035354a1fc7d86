"""
The control protocol as both of its ends write and read it: one JSON
object a line, C{auth} (on TCP), C{hello}, requests, replies and events.

The node's side (L{p2poverlay.control}) and the client's
(L{p2poverlay.client}) share this module and nothing else, so that the
client imports none of the node.  The protocol is described in
C{docs/control.rst}.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = [
    "CLOSING", "CONTROL_PROTOCOL_VERSION", "CONTROL_SOCKET", "EVENT", "HELLO",
    "HTTP_REFUSAL", "REPLY", "BadRequest", "authMessage", "closingMessage",
    "decode", "defaultControlPath", "encode", "eventMessage", "helloMessage",
    "looksLikeHTTP", "parseAuth", "parseObject", "parseRequest",
    "replyMessage", "requestMessage", "unixDescription",
]

CONTROL_PROTOCOL_VERSION = 2
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


def authMessage(cookie: str) -> Message:
    """The first line a client of a TCP endpoint sends: the node's cookie."""
    return {"auth": cookie}


def parseObject(line: bytes) -> Message:
    """
    Read one line a client sent as a JSON object.

    @raise BadRequest: if it is not one.
    """
    try:
        message = json.loads(line)
    except ValueError:
        raise BadRequest("not a JSON object") from None
    if not isinstance(message, dict):
        raise BadRequest("not a JSON object")
    return message


def parseAuth(line: bytes) -> str:
    """
    Read the C{auth} line.

    @return: the cookie it presents.
    @raise BadRequest: if the line is not an C{auth} line.
    """
    cookie = parseObject(line).get("auth")
    if not isinstance(cookie, str):
        raise BadRequest("the first line must be {\"auth\": COOKIE}")
    return cookie


_HTTP_REQUEST = re.compile(rb"[A-Z][A-Z_-]{2,15} \S")
_HTTP_VERSION = re.compile(rb"\sHTTP/\d(\.\d)?$")

HTTP_REFUSAL_TEXT = b"This is a p2poverlay control endpoint, not a web server.\n"
HTTP_REFUSAL = (b"HTTP/1.0 400 Bad Request\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % len(HTTP_REFUSAL_TEXT)
                + HTTP_REFUSAL_TEXT)


def looksLikeHTTP(line: bytes) -> bool:
    """
    Whether C{line} looks like the request line of HTTP (C{GET /},
    C{OPTIONS * HTTP/1.1}, ...): what a browser sends to a page's address,
    which no control client sends.
    """
    line = line.strip()
    return bool(_HTTP_REQUEST.match(line) or _HTTP_VERSION.search(line))


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
    request = parseObject(line)
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

"""
The plugin's option values as Twisted endpoint descriptions: ``--port``,
``--web`` and ``--control``, each checked, with a bare port number made
into the endpoint it means; and whether the node can listen on them.
"""

from __future__ import annotations

import os
import re
import sys

from twisted.python import usage

from p2poverlay.controlwire import defaultControlPath, unixDescription
from p2poverlay.errors import ListenError
from p2poverlay.listening import probe

__all__ = ["checkListening", "controlDescription", "listenDescription",
           "portLabel", "webDescription"]


def _endpointDescription(option: str, value: str, bareNumber: str) -> str:
    """
    Check a server endpoint description given as C{--option}; a bare port
    number becomes C{bareNumber} formatted with it.

    @raise usage.UsageError: if it is neither a port nor a valid endpoint.
    """
    if value.isascii() and value.isdigit():
        if not 0 <= int(value) <= 65535:
            raise usage.UsageError(
                f"--{option} {value}: not a port number (0-65535)")
        return bareNumber.format(value)
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    try:
        serverFromString(reactor, value)
    except Exception as e:
        raise usage.UsageError(
            f"--{option} {value!r}: not a port number or server endpoint ({e})") from None
    return value


def listenDescription(port: str) -> str:
    """
    Turn the C{--port} value into a server endpoint description: a bare
    number means TCP on every interface.
    """
    return _endpointDescription("port", port, "tcp:{}")


def webDescription(web: str) -> str:
    """
    Turn the C{--web} value into a server endpoint description: a bare
    number means TCP on 127.0.0.1 only.
    """
    return _endpointDescription("web", web, "tcp:{}:interface=127.0.0.1")


def portLabel(listen: str) -> str:
    """
    A file-name friendly label for a listen description: its port, or for
    a port chosen at start (0, or none found) one unique to this process.
    """
    match = re.search(r"(?:^|:)(?:port=)?(\d+)(?::|$)", listen)
    if match and int(match.group(1)) != 0:
        return match.group(1)
    return f"pid{os.getpid()}"


def controlDescription(control, dataDir: str) -> str:
    """
    Turn the C{--control} value into a server endpoint description, or
    C{""} for no control endpoint.  A bare port, or TCP without an
    interface, listens on loopback only; TCP needs a data directory, where
    the node keeps the cookie its clients present.

    @raise usage.UsageError: if it is neither C{none} nor a valid endpoint,
        or is TCP without a data directory.
    """
    if control is None:
        return unixDescription(defaultControlPath(dataDir)) if dataDir else ""
    if control.strip().lower() == "none":
        return ""
    from p2poverlay.controllisten import controlListenDescription, needsCookie
    try:
        description = controlListenDescription(control)
    except ValueError as e:
        raise usage.UsageError(f"--control {control!r}: {e}") from None
    if not dataDir and needsCookie(description):
        raise usage.UsageError(
            f"--control {control!r}: a TCP control endpoint needs a data "
            f"directory for its cookie (give --data-dir)")
    return description


def checkListening(options: usage.Options) -> None:
    """
    Before twistd leaves the terminal: stop with one line there if the node
    or its web UI cannot listen (a daemon would only log it).
    """
    from twisted.internet import reactor
    try:
        probe(reactor, options["listen"], "listen")
        if options.get("web"):
            probe(reactor, options["web"], "web", " for the web UI")
    except ListenError as e:
        print(f"p2p: {e}", file=sys.__stderr__, flush=True)
        raise SystemExit(1) from None

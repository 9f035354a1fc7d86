"""
Where a node's control endpoint listens: the description C{--control}
gives (a bare port or a TCP endpoint without an interface listens on
loopback only), and listening on it, a UNIX socket privately.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import List

from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure

from p2poverlay.errors import ListenError
from p2poverlay.listening import listenError

__all__ = ["SOCKET_MODE", "controlListenDescription", "listenControl",
           "listenUNIXPrivately", "needsCookie", "removeStaleSocket"]

SOCKET_MODE = 0o600

# What a TCP endpoint without an interface listens on.
_LOOPBACK = {"tcp": "127.0.0.1", "tcp6": "\\:\\:1"}


def _fields(description: str) -> List[str]:
    """C{description} split at its colons that are not escaped."""
    fields, current, escaped = [], "", False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    return fields + [current]


def _parseEndpoint(reactor, description: str):
    try:
        return serverFromString(reactor, description)
    except Exception as e:
        raise ValueError(f"not a server endpoint or 'none' ({e})") from None


def controlListenDescription(value: str, reactor=None) -> str:
    """
    The server endpoint description of C{--control VALUE}: a bare port
    number, or a C{tcp} or C{tcp6} endpoint without an interface, listens
    on loopback only; anything else is checked and kept.

    @raise ValueError: with a one-line reason, if it is not an endpoint.
    """
    if reactor is None:
        from twisted.internet import reactor
    if value.isascii() and value.isdigit():
        if not 0 <= int(value) <= 65535:
            raise ValueError("not a port number (0-65535)")
        value = f"tcp:{value}"
    _parseEndpoint(reactor, value)
    kind, *args = _fields(value)
    loopback = _LOOPBACK.get(kind.lower())
    positional = [arg for arg in args if "=" not in arg]
    if loopback is not None and len(positional) < 2 and not any(
            arg.startswith("interface=") for arg in args):
        value = f"{value}:interface={loopback}"
        _parseEndpoint(reactor, value)
    return value


def needsCookie(description: str, reactor=None) -> bool:
    """
    Whether the clients of endpoint C{description} must present the
    node's cookie: any endpoint but a UNIX socket (whose file's mode keeps
    others out).  C{False} for what is not an endpoint at all, which
    cannot be listened on anyway.
    """
    if reactor is None:
        from twisted.internet import reactor
    try:
        endpoint = serverFromString(reactor, description)
    except Exception:
        return False
    return not isinstance(endpoint, UNIXServerEndpoint)


def removeStaleSocket(path: str) -> None:
    """
    Remove a UNIX socket file at C{path} that nothing listens on any more
    (left by a process that crashed).

    @raise ListenError: if a process listens there, or C{path} is not a
        socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ListenError(f"cannot listen on {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ListenError(
            f"cannot listen on {path}: the file exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # Stale: nobody listens.
    except OSError as e:
        raise ListenError(f"cannot listen on {path}: {e.strerror or e}") from None
    else:
        raise ListenError(f"cannot listen on {path}: another process "
                          f"listens there")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def listenUNIXPrivately(reactor, path: str, factory,
                        backlog: int = 50) -> IListeningPort:
    """
    Listen on the UNIX socket C{path}, usable by this user only: the file
    is created with mode 0600 (no moment where it is more open), replacing
    a stale socket file.

    @raise ListenError: if it cannot.
    """
    removeStaleSocket(path)
    # listenUNIX binds, then chmods: bind under a umask that already
    # leaves only the owner's read and write bits.
    oldMask = os.umask(0o177)
    try:
        port = reactor.listenUNIX(path, factory, backlog=backlog,
                                  mode=SOCKET_MODE, wantPID=False)
    except CannotListenError as e:
        why = getattr(e.socketError, "strerror", None) or str(e.socketError)
        raise ListenError(f"cannot listen on {path}: {why}") from None
    finally:
        os.umask(oldMask)
    actual = stat.S_IMODE(os.stat(path).st_mode)
    if actual != SOCKET_MODE:
        port.stopListening()
        raise ListenError(f"cannot listen on {path}: its mode is "
                          f"{actual:04o}, not {SOCKET_MODE:04o}")
    return port


def listenControl(reactor, description: str, factory) -> IListeningPort:
    """
    Listen on the server endpoint C{description}; a UNIX socket is made
    private (L{listenUNIXPrivately}).

    @raise ListenError: if it cannot, in one line.
    """
    try:
        endpoint = serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as e:
        raise ListenError(f"bad control endpoint {description!r}: {e}") from None
    if isinstance(endpoint, UNIXServerEndpoint):
        return listenUNIXPrivately(reactor, endpoint._address, factory,
                                   backlog=endpoint._backlog)
    outcome: list = []
    endpoint.listen(factory).addBoth(outcome.append)
    if not outcome:
        raise ListenError(f"cannot listen on {description}: the endpoint "
                          f"does not listen at once")
    if isinstance(outcome[0], Failure):
        raise listenError(description, outcome[0])
    return outcome[0]

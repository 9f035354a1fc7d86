"""
The control cookie: the secret a TCP control client presents first.

A node with a TCP control endpoint writes a new random cookie to
C{control.cookie} in its data directory at each start (mode 0600, written
atomically) and removes it when it stops; a client reads it from there.
Whoever can read the file may control the node, as whoever can open the
UNIX socket beside it may.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile

__all__ = ["COOKIE_BYTES", "COOKIE_FILE", "COOKIE_MODE", "CookieError",
           "defaultCookiePath", "readCookie", "removeCookie", "writeCookie"]

COOKIE_FILE = "control.cookie"
COOKIE_BYTES = 32
COOKIE_MODE = 0o600

_COOKIE = re.compile(r"[0-9a-f]{%d}" % (2 * COOKIE_BYTES))


class CookieError(Exception):
    """A cookie file that cannot be written or read, in one line."""


def defaultCookiePath(dataDir: str) -> str:
    """Where a node with data directory C{dataDir} keeps its cookie."""
    return os.path.join(dataDir, COOKIE_FILE)


def _checkPrivate(path: str, mode: int) -> None:
    if stat.S_IMODE(mode) & 0o077:
        raise CookieError(f"{path} may be read by others (mode "
                          f"{stat.S_IMODE(mode):04o}, not "
                          f"{COOKIE_MODE:04o})")


def writeCookie(path: str) -> str:
    """
    Write a new random cookie to C{path}, replacing the file there at
    once (never a moment where it is partly written or more open than
    0600).

    @return: the cookie, in hex.
    @raise CookieError: if it cannot, or the file would be readable by
        others.
    """
    cookie = secrets.token_hex(COOKIE_BYTES)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{COOKIE_FILE}.",
                                         dir=directory)
    except OSError as e:
        raise CookieError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            _checkPrivate(path, os.fstat(f.fileno()).st_mode)
            f.write(cookie + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as e:
        os.unlink(temporary)
        raise CookieError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        os.unlink(temporary)
        raise
    return cookie


def readCookie(path: str) -> str:
    """
    Read the cookie in C{path}.

    @raise CookieError: if it cannot, if others may read the file, or if
        it holds no cookie.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            _checkPrivate(path, os.fstat(f.fileno()).st_mode)
            text = f.read(4 * COOKIE_BYTES).strip()
    except OSError as e:
        raise CookieError(f"cannot read {path}: {e.strerror or e}") from None
    if not _COOKIE.fullmatch(text):
        raise CookieError(f"{path} holds no control cookie")
    return text


def removeCookie(path: str) -> None:
    """Remove the cookie file C{path}, if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

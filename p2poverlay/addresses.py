"""Network addresses as the overlay writes and reads them: ``host:port``."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Tuple


def addressOf(port: Any) -> str:
    """``host:port`` of a listening port (its C{getHost()})."""
    host = port.getHost()
    return formatAddress(getattr(host, "host", "?"), getattr(host, "port", 0))


def formatAddress(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@functools.lru_cache(maxsize=1 << 16)  # a host per node: many in a simulator
def isLoopback(host: str) -> bool:
    """Is C{host} a loopback address (or ``localhost``)?"""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parseAddress(text: str) -> Tuple[str, int]:
    """
    Parse ``host:port`` or ``[v6host]:port``.

    @raise ValueError: with a one-line reason.
    """
    host, sep, portText = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets: [{host}]:{portText}")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {text!r}")
    # isdigit() alone accepts non-ASCII digits such as "²" or "٣".
    if not (portText.isascii() and portText.isdigit()) \
            or not 1 <= int(portText) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, int(portText)


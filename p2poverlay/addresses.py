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


@functools.lru_cache(maxsize=1024)
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


@functools.lru_cache(maxsize=4096)
def addressGroup(host: str) -> str:
    """
    The group of hosts likely run by one party, for limits and diversity:
    an IPv4 /16 or an IPv6 /32 on the internet (as Bitcoin Core groups
    them); a loopback, private or link-local address is its own group (so
    that hosts of one machine or one LAN count apart), as is a name.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_private or address.is_link_local:
        return str(address)
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.ip_network(f"{address}/16", strict=False))
    return str(ipaddress.ip_network(f"{address}/32", strict=False))

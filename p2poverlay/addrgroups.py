"""
Address groups: which hosts count as one source of addresses.

A node that floods fake addresses can use every address of the network it
sits in, but rarely many networks: so the address book shares its room out
by group, as Bitcoin Core's addrman does.  A public IPv4 address belongs to
its /16, a public IPv6 address to its /32; a loopback, private or
link-local address (and a host name) is a group of its own, so that hosts
of one LAN, or 127.0.0.x in tests, count as distinct sources.
"""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=1 << 16)
def addressGroup(host: str) -> str:
    """
    The group of C{host}: ``a.b.0.0/16``, ``x:y::/32``, or the host itself.

    @param host: an IP address or a host name, as a connection or a peer
        exchange gives it.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global:
        return str(ip)
    prefix = 16 if ip.version == 4 else 32
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

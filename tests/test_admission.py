"""Address groups: who counts as one party for per-address limits."""

import pytest

from p2poverlay.addresses import addressGroup


@pytest.mark.parametrize("host, group", [
    ("8.8.4.4", "8.8.0.0/16"),
    ("8.8.200.1", "8.8.0.0/16"),
    ("::ffff:8.8.8.8", "8.8.0.0/16"),
    ("2a00:1450:4001::1", "2a00:1450::/32"),
    # One machine's or one LAN's hosts count apart.
    ("127.0.0.5", "127.0.0.5"),
    ("10.1.2.3", "10.1.2.3"),
    ("192.168.1.7", "192.168.1.7"),
    ("fe80::1", "fe80::1"),
    ("::1", "::1"),
    ("node.example", "node.example"),
])
def test_address_groups(host, group):
    assert addressGroup(host) == group


def test_internet_hosts_of_one_16_are_one_group():
    assert addressGroup("1.2.3.4") == addressGroup("1.2.99.1")
    assert addressGroup("1.2.3.4") != addressGroup("1.3.3.4")

"""
A node's TCP listener queues L{LISTEN_BACKLOG} connections, not Twisted's
50: a burst of joins or of DHT requests is not turned back by the kernel.
"""

from __future__ import annotations

import subprocess

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from p2poverlay.network import LISTEN_BACKLOG, TCPNetwork, withBacklog


@pytest.mark.parametrize("description, expected", [
    ("tcp:9000", f"tcp:9000:backlog={LISTEN_BACKLOG}"),
    ("tcp:port=0:interface=127.0.0.1",
     f"tcp:port=0:interface=127.0.0.1:backlog={LISTEN_BACKLOG}"),
    ("tcp6:0:interface=\\:\\:1", f"tcp6:0:interface=\\:\\:1:backlog="
     f"{LISTEN_BACKLOG}"),
    ("tcp:9000:backlog=5", "tcp:9000:backlog=5"),  # the user's own
    ("unix:/tmp/p2p.sock", "unix:/tmp/p2p.sock"),
])
def test_tcp_descriptions_get_the_backlog(description, expected):
    assert withBacklog(description) == expected


def listenQueueLimit(port: int) -> int:
    """The accept queue limit of the loopback listener on C{port}, as
    ``ss`` reports it (Send-Q of a listening socket)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


@pytest_twisted.inlineCallbacks
def test_a_real_listener_queues_that_many_connections():
    try:
        subprocess.run(["ss", "-V"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("ss (iproute2) is needed to read a listener's queue")
    endpoint = TCPNetwork(reactor).serverEndpoint(
        "tcp:0:interface=127.0.0.1")
    port = yield endpoint.listen(Factory.forProtocol(Protocol))
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            cap = int(f.read())
        assert listenQueueLimit(port.getHost().port) == min(LISTEN_BACKLOG,
                                                            cap)
    finally:
        yield port.stopListening()

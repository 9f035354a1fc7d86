"""
L{InboundPolicy}'s per-address connection rates, on a L{task.Clock}: an
address gets its burst and no more until its bucket refills, and the
policy forgets an address once its bucket has refilled, since a new
bucket would start the same.
"""

from types import SimpleNamespace

from twisted.internet.task import Clock

from p2poverlay.admission import InboundPolicy
from p2poverlay.config import NodeConfig
from p2poverlay.reasons import CloseKind

RATE, BURST = 2.0, 4.0
REFILL = BURST / RATE


def inbound(host):
    """An inbound connection from C{host}, as the policy sees one."""
    return SimpleNamespace(
        remoteHost=host, relayedBy=None, closing=False, peer=None,
        outbound=False,
        transport=SimpleNamespace(getHost=lambda: SimpleNamespace(
            host="10.9.9.9")))


def makePolicy():
    clock = Clock()
    config = NodeConfig(connectionRatePerAddress=RATE,
                        connectionBurstPerAddress=BURST)
    return InboundPolicy(config, clock), clock


def admitted(policy, host, attempts):
    refusals = [policy.refusal(inbound(host), [], None)
                for _ in range(attempts)]
    return sum(refusal is None for refusal in refusals), refusals


def test_an_address_gets_its_burst_then_waits_for_the_refill():
    policy, clock = makePolicy()
    count, refusals = admitted(policy, "10.0.0.1", 6)
    assert count == BURST
    assert refusals[-1].kind is CloseKind.ADDRESS_LIMIT
    clock.advance(1 / RATE)
    assert admitted(policy, "10.0.0.1", 2)[0] == 1


def test_addresses_whose_bucket_refilled_are_forgotten():
    policy, clock = makePolicy()
    for index in range(100):
        admitted(policy, f"10.0.1.{index}", 1)
    assert policy.ratesTracked == 100
    clock.advance(REFILL)
    admitted(policy, "10.0.2.1", 1)
    assert policy.ratesTracked == 1


def test_an_address_still_refilling_is_remembered():
    policy, clock = makePolicy()
    assert admitted(policy, "10.0.0.1", 4)[0] == BURST
    clock.advance(REFILL / 2)
    admitted(policy, "10.0.0.2", 1)
    assert policy.ratesTracked == 2
    # Half refilled: two more now, not a fresh burst of four.
    assert admitted(policy, "10.0.0.1", 4)[0] == 2

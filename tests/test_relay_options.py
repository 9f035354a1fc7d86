"""The plugin's relay options reach the node's settings and limits."""

import pytest

from p2poverlay import tap
from p2poverlay.config import ConfigError, NodeConfig
from p2poverlay.relay import limitsOf


def test_relay_options_set_the_relays_limits():
    options = tap.Options()
    options.parseOptions(["--no-relay", "--relay-circuits", "5",
                          "--relay-reservations", "7",
                          "--relay-circuit-bytes", "1000000",
                          "--relay-circuit-time", "90"])
    config = tap.nodeConfig(options)
    assert config.relay is False
    limits = limitsOf(config)
    assert (limits.circuits, limits.reservations, limits.circuitBytes,
            limits.circuitSeconds) == (5, 7, 1_000_000, 90.0)


def test_the_defaults_relay_within_generous_limits():
    options = tap.Options()
    options.parseOptions([])
    config = tap.nodeConfig(options)
    assert config.relay is True
    limits = limitsOf(config)
    assert (limits.circuits, limits.reservations, limits.circuitBytes,
            limits.circuitSeconds) == (64, 128, 64 << 20, 3600.0)
    assert "67,108,864 bytes)" in str(options)


def test_a_bad_relay_setting_names_its_option():
    with pytest.raises(ConfigError) as caught:
        NodeConfig(relayCircuits=0).check()
    assert tap.optionNames(caught.value).startswith("--relay-circuits ")

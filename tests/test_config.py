"""NodeConfig checks itself: an embedder gets the errors twistd users get."""

import pytest

from p2poverlay import ConfigError, Node, NodeConfig
from p2poverlay.tap import Options, optionNames
from twisted.python import usage


@pytest.mark.parametrize("settings, message", [
    (dict(minPeers=9, maxPeers=8), "minPeers (9) is more than maxPeers (8)"),
    (dict(minPeers=0), "minPeers must be a whole number, at least 1, got 0"),
    (dict(maxInbound=True), "maxInbound must be a whole number"),
    (dict(peerTimeout=0), "peerTimeout must be a number more than 0, got 0"),
    (dict(banTime=-1.5), "banTime must be a number more than 0, got -1.5"),
    (dict(messageRate="fast"), "messageRate must be a number more than 0"),
    (dict(broadcastTTL=0), "broadcastTTL must be between 1 and 255, got 0"),
    (dict(broadcastMode="gossip"), "broadcastMode must be 'tree' or 'flood'"),
    (dict(name="x" * 65), "name must be at most 64 printable characters"),
    (dict(name="a\nb"), "name must be at most 64 printable characters"),
    (dict(listen=""), "listen must be a server endpoint description"),
    (dict(join=[("127.0.0.1", 0)]), "join must hold (host, port) pairs"),
    (dict(join=["127.0.0.1:9000"]), "join must hold (host, port) pairs"),
    (dict(dhtB=0), "dhtB must be a whole number, at least 1, got 0"),
    (dict(dhtB=9), "dhtB must be at most 8 (2^b - 1 buckets per b bits), "
                   "got 9"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError) as caught:
        NodeConfig(**settings).check()
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    # A Node refuses them too, before it does anything.
    with pytest.raises(ConfigError):
        Node(NodeConfig(**settings), reactor=object())


def test_defaults_and_edges_are_valid():
    NodeConfig().check()
    NodeConfig(minPeers=5, maxPeers=5, lazyDelay=0, broadcastTTL=255,
               join=(("::1", 65535),), name="n" * 64, dhtB=8).check()


def test_twistd_names_its_options_in_the_same_errors():
    error = ConfigError("minPeers (9) is more than maxPeers (8)",
                        "minPeers", "maxPeers")
    assert optionNames(error) == "--min-peers (9) is more than --max-peers (8)"
    options = Options()
    with pytest.raises(usage.UsageError) as caught:
        options.parseOptions(["--min-peers", "9", "--max-peers", "8"])
    assert str(caught.value) == "--min-peers (9) is more than --max-peers (8)"


def test_a_setting_named_inside_another_is_not_renamed():
    error = ConfigError("maxPeersPerExchange must be a whole number",
                        "maxPeersPerExchange")
    assert optionNames(error) == "--max-peers-per-exchange must be a whole number"

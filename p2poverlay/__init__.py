"""p2poverlay: a decentralized peer-to-peer overlay network on Twisted."""

__version__ = "0.1.0"

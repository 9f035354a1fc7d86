"""Routing by node id: a Kademlia DHT on node keys."""

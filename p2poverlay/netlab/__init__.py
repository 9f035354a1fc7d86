"""
A network lab: hosts, NAT routers and firewalls in network namespaces, with
real nodes running inside them (see docs/netlab.rst).  It needs root, and
changes nothing outside the namespaces it makes.
"""

from p2poverlay.netlab.lab import Lab
from p2poverlay.netlab.namespaces import (
    LabError, available, listNamespaces, whyUnavailable)
from p2poverlay.netlab.nodes import LabNode
from p2poverlay.netlab.rules import (
    DOUBLE, FIREWALL, KINDS, MASQUERADE, SYMMETRIC)
from p2poverlay.netlab.topology import Machine, Router

__all__ = ["Lab", "LabError", "LabNode", "Machine", "Router", "available",
           "listNamespaces", "whyUnavailable", "DOUBLE", "FIREWALL", "KINDS",
           "MASQUERADE", "SYMMETRIC"]

"""
The web UI of a node: an HTML page, a JSON API, a live feed of events
(server-sent events) and metrics for Prometheus.  Off unless started:
C{twistd p2p --web tcp:8080:interface=127.0.0.1}.
"""

from p2poverlay.web.service import WebService

__all__ = ["WebService"]

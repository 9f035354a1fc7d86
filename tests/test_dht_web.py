"""The web API of routing by id, over real HTTP against TLS nodes."""

from __future__ import annotations

from urllib.parse import quote

import pytest_twisted

from p2poverlay.message import newNodeId

from helpers import PROMPT, waitFor
from test_dht_wire import chain
from test_web import getJSON, postJSON, web  # noqa: F401 (the fixture)


@pytest_twisted.inlineCallbacks
def test_lookup_put_and_get_over_http(overlay, web):  # noqa: F811
    nodes = yield chain(overlay, 4, plaintext=False)
    yield waitFor(lambda: all(n.dht.lookups == 0 for n in nodes),
                  timeout=PROMPT, what="the nodes joining the DHT")
    service = web.start(nodes[0])
    target = nodes[-1].nodeId
    status, found = yield getJSON(service, f"/api/lookup?id={target}")
    assert status == 200 and found["found"]["node_id"] == target
    status, put = yield postJSON(service, "/api/put",
                                 {"key": "colour of the sky", "value": "blue"})
    assert status == 200 and put["stored"] == 3
    assert put["record"]["writer"] == nodes[0].nodeId
    other = web.start(nodes[2])
    status, got = yield getJSON(
        other, f"/api/get?key={quote('colour of the sky')}")
    assert status == 200
    assert [r["value"] for r in got["records"]] == ["blue"]
    assert got["holders"] >= 2


@pytest_twisted.inlineCallbacks
def test_bad_dht_requests_get_a_one_line_error(overlay, web):  # noqa: F811
    # A node of a chosen id has no key: it cannot sign a record.
    node = yield overlay.start(name="alone", nodeId=newNodeId())
    service = web.start(node)
    for path, message in (("/api/lookup", "give exactly one id="),
                          ("/api/lookup?id=xyz", "id must be a full node id"),
                          ("/api/get", "give exactly one key="),
                          ("/api/get?key=", "key is empty")):
        status, answer = yield getJSON(service, path)
        assert status == 400 and message in answer["error"], (path, answer)
    status, answer = yield postJSON(service, "/api/put", {"key": "k"})
    assert status == 400 and "value" in answer["error"]
    status, answer = yield postJSON(service, "/api/put",
                                    {"key": "k", "value": "v"})
    assert status == 502 and "no key" in answer["error"]

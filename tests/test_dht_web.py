"""The web API of routing by id, over real HTTP against TLS nodes."""

from __future__ import annotations

from urllib.parse import quote

import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families

from p2poverlay.message import newNodeId

from helpers import PROMPT, waitFor
from test_dht_wire import chain
from test_web import (  # noqa: F401 (web: the fixture)
    baseURL, getJSON, http, postJSON, web,
)


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

    # What it did shows in the metrics, JSON and Prometheus alike.
    status, snapshot = yield getJSON(service, "/api/metrics")
    assert status == 200
    assert snapshot["dht_contacts"] == len(nodes[0].dht.table) >= 3
    assert snapshot["dht_lookups_succeeded"] >= 2  # the lookup and the put
    assert snapshot["dht_requests_sent"] >= snapshot["dht_lookups"]
    assert snapshot["dht_records"] == len(nodes[0].values.store) == 1
    status, _, data = yield http("GET", baseURL(service) + "/metrics")
    samples = {s.name: s.value
               for f in text_string_to_metric_families(data.decode())
               for s in f.samples}
    assert samples["p2p_dht_records"] == 1
    assert samples["p2p_dht_record_bytes"] > len("colour of the skyblue")
    assert samples["p2p_dht_lookups_total"] >= snapshot["dht_lookups"]


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

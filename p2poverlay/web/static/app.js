// The node's page: reads the JSON API, follows the live feed and draws the
// overlay.  Everything that comes from the network is put in the page as
// text (textContent, createElement), never parsed as HTML.
"use strict";

(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_FEED = 200;
  const MAX_DRAWN = 48;
  const seen = new Set();
  let nodeId = null;

  function $(id) { return document.getElementById(id); }

  function element(tag, text, className) {
    const el = document.createElement(tag);
    if (text !== undefined && text !== null) el.textContent = String(text);
    if (className) el.className = className;
    return el;
  }

  function api(path, options) {
    options = options || {};
    const headers = Object.assign({}, options.headers || {});
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(path, Object.assign({}, options, { headers: headers }))
      .then(function (response) {
        return response.json().catch(function () { return {}; })
          .then(function (data) {
            if (!response.ok) {
              throw new Error(data.error || ("HTTP " + response.status));
            }
            return data;
          });
      });
  }

  function post(path, value) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(value),
    });
  }

  function shortId(id) { return id ? String(id).slice(0, 8) : "?"; }

  function when(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
  }

  function duration(seconds) {
    seconds = Math.floor(seconds);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
  }

  // A node as "address (shortid name)"; every record of the API that
  // names a node has node_id, name and address.
  function label(peer) {
    if (!peer) return "?";
    let text = peer.address || shortId(peer.node_id);
    text += " (" + shortId(peer.node_id) + (peer.name ? " " + peer.name : "") + ")";
    return text;
  }

  // -- node -------------------------------------------------------------

  function showNode(node) {
    nodeId = node.node_id;
    $("node-name").textContent = node.name ? node.name : "";
    $("node-id").textContent = node.node_id;
    $("node-address").textContent = node.address || "not listening";
    $("node-uptime").textContent = duration(node.uptime);
    $("node-reach").textContent = reachText(node.reachability);
    document.title = "p2poverlay " + (node.name || shortId(node.node_id));
  }

  function reachText(reach) {
    if (!reach) return "unknown";
    if (reach.state === "public") return "public at " + reach.address;
    if (reach.state === "private") return "private (NAT: " + reach.nat + ")";
    return "unknown";
  }

  // -- peers ------------------------------------------------------------

  function showPeers(peers) {
    const order = { connected: 0, reconnecting: 1, known: 2, dead: 3, left: 4 };
    peers.sort(function (a, b) {
      return (order[a.state] - order[b.state]) ||
        String(a.address).localeCompare(String(b.address));
    });
    const body = document.querySelector("#peers tbody");
    body.replaceChildren();
    const choices = $("peer-choices");
    choices.replaceChildren();
    let connected = 0;
    peers.forEach(function (peer) {
      const row = document.createElement("tr");
      row.dataset.id = peer.node_id;
      row.appendChild(element("td", peer.address, "address"));
      const id = element("td", shortId(peer.node_id), "id");
      id.title = peer.node_id;
      row.appendChild(id);
      row.appendChild(element("td", peer.name));
      let shown = peer.role === "direct" ? "connected (direct link)" : peer.state;
      if (peer.link === "relayed") shown += " (relayed through " + shortId(peer.relay) + ")";
      else if (peer.link === "punch") shown += " (punched)";
      else if (peer.link === "reversal") shown += " (reversed)";
      row.appendChild(element("td", shown, "state " + peer.state));
      row.appendChild(element("td", when(peer.since)));
      const key = element("td", peer.verified ? "verified" :
        (peer.state === "connected" ? "not verified" : ""), "key");
      key.title = peer.fingerprint || "";
      row.appendChild(key);
      body.appendChild(row);
      if (peer.state === "connected") {
        connected += 1;
        const option = document.createElement("option");
        option.value = peer.address;
        option.label = label(peer);
        choices.appendChild(option);
      }
    });
    $("peer-count").textContent = "(" + connected + " connected, " +
      peers.length + " known)";
    drawOverlay(peers);
  }

  function svg(tag, attributes, text) {
    const el = document.createElementNS(SVG, tag);
    Object.keys(attributes).forEach(function (name) {
      el.setAttribute(name, attributes[name]);
    });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // This node in the centre, connected peers on an inner ring, the other
  // nodes it knows of (greyed) on an outer ring.
  function drawOverlay(peers) {
    const drawing = $("overlay");
    drawing.replaceChildren();
    const inner = peers.filter(function (p) { return p.state === "connected"; });
    const outer = peers.filter(function (p) { return p.state !== "connected"; });
    const rings = [[inner.slice(0, MAX_DRAWN), 95, "connected"],
                   [outer.slice(0, MAX_DRAWN), 165, "other"]];
    const edges = svg("g", {});
    const nodes = svg("g", {});
    drawing.appendChild(edges);
    drawing.appendChild(nodes);
    rings.forEach(function (ring) {
      const list = ring[0], radius = ring[1], kind = ring[2];
      list.forEach(function (peer, index) {
        // The rings start at different angles so that their nodes and
        // lines do not line up.
        const angle = 2 * Math.PI * index / list.length +
          (kind === "other" ? Math.PI / list.length - Math.PI / 4
                            : -3 * Math.PI / 4);
        const x = (radius * Math.cos(angle)).toFixed(1);
        const y = (radius * Math.sin(angle)).toFixed(1);
        edges.appendChild(svg("line", { x1: 0, y1: 0, x2: x, y2: y,
                                        "class": kind }));
        const dot = svg("circle", { cx: x, cy: y, r: 9, "class": kind });
        dot.appendChild(svg("title", {}, label(peer) + ": " + peer.state));
        nodes.appendChild(dot);
        nodes.appendChild(svg("text", { x: x, y: Number(y) + 21, "class": kind },
                              peer.name || shortId(peer.node_id)));
      });
    });
    const me = svg("circle", { cx: 0, cy: 0, r: 14, "class": "me" });
    me.appendChild(svg("title", {}, "this node"));
    nodes.appendChild(me);
    nodes.appendChild(svg("text", { x: 0, y: 30 }, "this node"));
  }

  // -- feed -------------------------------------------------------------

  function addFeedItem(item) {
    const feed = $("feed");
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > MAX_FEED) feed.removeChild(feed.lastChild);
  }

  function showMessage(message) {
    if (seen.has(message.seq)) return;
    seen.add(message.seq);
    const item = element("li", null, "message " + message.direction);
    item.dataset.seq = message.seq;
    const meta = element("div", null, "meta");
    meta.appendChild(element("span", message.kind, "kind " + message.kind));
    let who;
    if (message.direction === "out") {
      who = message.kind === "broadcast"
        ? "sent to " + message.neighbours + " neighbour(s)"
        : "sent to " + label(message.to);
    } else {
      // sender is null when the node that wrote it is not a peer.
      who = "from " + label({ node_id: message.sender_id,
                              name: message.sender_name,
                              address: message.sender && message.sender.address });
      if (message.kind === "broadcast" && message.via &&
          message.via.node_id !== message.sender_id) {
        who += " via " + label(message.via);
      }
    }
    meta.appendChild(element("span", who + " · " + when(message.time)));
    item.appendChild(meta);
    item.appendChild(element("div", message.body, "body"));
    addFeedItem(item);
  }

  function showPeerEvent(event) {
    const item = element("li", null, "peer-event");
    const meta = element("div", null, "meta");
    meta.appendChild(element("span", "peer " + event.change, "kind peer"));
    let text = label(event.peer) + (event.change === "up" ? " connected" : " disconnected");
    if (event.reason) text += " (" + event.reason + ")";
    meta.appendChild(element("span", text + " · " + when(event.time)));
    item.appendChild(meta);
    addFeedItem(item);
  }

  // -- refreshing ---------------------------------------------------------

  function refresh() {
    return Promise.all([api("api/node").then(showNode),
                        api("api/known").then(function (d) { showPeers(d.known); })])
      .catch(function (error) { status(error.message, true); });
  }

  function status(text, isError) {
    const line = $("send-status");
    line.textContent = text;
    line.className = isError ? "error" : "ok";
  }

  function follow() {
    const url = "api/events" + (token ? "?token=" + encodeURIComponent(token) : "");
    const events = new EventSource(url);
    events.addEventListener("open", function () {
      $("feed-status").textContent = "live";
      // Whatever arrived before the stream opened is in the ring buffer.
      api("api/messages").then(function (d) { d.messages.forEach(showMessage); });
      refresh();
    });
    events.addEventListener("error", function () {
      $("feed-status").textContent = "reconnecting…";
    });
    events.addEventListener("message", function (e) {
      showMessage(JSON.parse(e.data));
    });
    events.addEventListener("peer", function (e) {
      showPeerEvent(JSON.parse(e.data));
      refresh();
    });
  }

  $("broadcast-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const input = $("broadcast-body");
    post("api/broadcast", { body: input.value }).then(function (result) {
      status("broadcast sent to " + result.neighbours + " neighbour(s)", false);
      input.value = "";
    }).catch(function (error) { status(error.message, true); });
  });

  $("send-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const body = $("send-body");
    status("sending…", false);
    post("api/send", { peer: $("send-peer").value, body: body.value })
      .then(function (result) {
        status("delivered to " + label(result.peer), false);
        body.value = "";
      }).catch(function (error) { status(error.message, true); });
  });

  refresh();
  follow();
  setInterval(refresh, 5000);
})();

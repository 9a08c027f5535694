// Refreshes the status page from status.json every few seconds without
// reloading it. The markup mirrors the server's templates. Every value is
// inserted as text (text nodes, attribute values, encoded URLs), never as
// markup: labels, requestors and comments come from ZooKeeper and are
// user-controlled.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";

  // el builds an element: attrs are set as attributes, children are nodes
  // or strings (which become text nodes); null children are skipped.
  function el(tag, attrs, children, ns) {
    var e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (var k in attrs || {}) {
      if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return e;
  }
  function link(kind, id) { return el("a", { href: kind + "?id=" + encodeURIComponent(id) }, [id]); }
  function list(items, sep, fn) {
    var out = [];
    items.forEach(function (x, i) { if (i) out.push(sep); out.push(fn(x)); });
    return out;
  }
  function table(cls, heads, rows) {
    return el("table", { "class": cls }, [
      el("thead", {}, [el("tr", {}, heads.map(function (h) { return el("th", {}, [h]); }))]),
      el("tbody", {}, rows.map(function (cells) {
        return el("tr", {}, cells.map(function (c) { return el("td", {}, [].concat(c)); }));
      }))
    ]);
  }
  function empty(text) { return el("p", { "class": "empty" }, [text]); }
  function replace(id, nodes) {
    var box = document.getElementById(id);
    if (!box) return;
    while (box.firstChild) box.removeChild(box.firstChild);
    [].concat(nodes).forEach(function (n) {
      if (n === null || n === undefined) return;
      box.appendChild(typeof n === "string" ? document.createTextNode(n) : n);
    });
  }

  function health(h) {
    var launchers = h.launchers && h.launchers.length ? list(h.launchers, ", ", function (l) {
      return l.hostname + " (" + l.version + ", " + l.state + ")";
    }) : ["none"];
    return el("dl", { "class": "health" }, [
      el("dt", {}, ["ZooKeeper"]),
      el("dd", { "class": h.connected ? "ok" : "bad" }, [(h.connected ? "connected" : "not connected (" + h.session + ")") + " · session " + h.session_id]),
      el("dt", {}, ["Launcher"]),
      el("dd", { "class": h.ready ? "ok" : "bad" }, [h.ready ? "ready" : "starting"]),
      el("dt", {}, ["Last cleanup pass"]), el("dd", {}, [h.last_cleanup]),
      el("dt", {}, ["Launchers registered"]), el("dd", {}, launchers)
    ]);
  }

  function bars(s) {
    if (!s.providers || !s.providers.length) return empty("No nodes.");
    return el("div", { "class": "bars" }, s.providers.map(function (p) {
      var svg = el("svg", { "class": "bar", viewBox: "0 0 100 10", preserveAspectRatio: "none", role: "img", "aria-label": "nodes of " + p.provider + " by state" },
        p.segments.map(function (g) {
          return el("rect", { x: g.start, width: g.width, height: 10, "class": "st-" + g.state }, [el("title", {}, [g.state + ": " + g.count], SVG)], SVG);
        }), SVG);
      var counts = [];
      p.segments.forEach(function (g) { counts.push(el("span", { "class": "chip st-" + g.state }, [g.state + " " + g.count]), " "); });
      counts.push(el("b", {}, [p.total]));
      return el("div", { "class": "bar-row" }, [
        el("span", { "class": "bar-name" }, [p.provider]), svg, el("span", { "class": "bar-counts" }, counts)
      ]);
    }));
  }

  function gauges(gs) {
    return gs.map(function (g) {
      var bar = g.limited
        ? el("meter", { min: 0, max: g.max, value: g.used, low: g.low, high: g.high, optimum: 0, "class": "lvl-" + g.level })
        : el("span", { "class": "nolimit" });
      return el("div", { "class": "gauge" }, [
        el("span", { "class": "gauge-name" }, [g.name]), bar, el("span", { "class": "gauge-text lvl-" + g.level }, [g.text])
      ]);
    });
  }

  function quota(s) {
    var cards = (s.pools || []).map(function (p) {
      var title = [p.provider + "/" + p.pool];
      if (p.paused) title.push(" ", el("span", { "class": "badge bad" }, ["paused"]));
      return el("div", { "class": "card" }, [el("h3", {}, title)].concat(gauges(p.gauges)));
    }).concat((s.tenants || []).map(function (t) {
      return el("div", { "class": "card" }, [el("h3", {}, ["tenant " + t.tenant])].concat(gauges(t.gauges)));
    }));
    return [el("div", { "class": "cards" }, cards), cards.length ? null : empty("No pools configured.")];
  }

  function explain(es) {
    if (!es || !es.length) return el("ul", { "class": "explain" }, [el("li", { "class": "ex-unseen" }, ["no launcher pool has considered it yet"])]);
    return el("ul", { "class": "explain" }, es.map(function (e) {
      var parts = [el("b", {}, [e.pool]), " ", el("span", { "class": "badge ex-" + e.status }, [e.status]), " " + e.reason];
      if (e.behind && e.behind.length) {
        parts.push(" — behind ");
        parts = parts.concat(list(e.behind, ", ", function (b) { return link("request", b); }));
      }
      parts.push(" ", el("span", { "class": "since" }, ["for " + e.since]));
      return el("li", { "class": "ex-" + e.status }, parts);
    }));
  }

  function queue(s) {
    if (!s.queue || !s.queue.length) return empty("No waiting requests.");
    var out = [table("queue", ["Request", "Priority", "State", "Requestor", "Labels", "Age", "Why it waits"], s.queue.map(function (r) {
      return [link("request", r.id), r.priority + "/" + r.relative_priority, r.state, r.requestor, r.labels.join(", "), r.age, explain(r.explain)];
    }))];
    if (s.queue_total > s.queue.length) {
      out.push(el("p", { "class": "more" }, [s.queue.length + " of " + s.queue_total + " shown; all in ", el("a", { href: "request-list" }, ["the request list"]), "."]));
    }
    return out;
  }

  function nodes(s) {
    if (!s.nodes || !s.nodes.length) return empty("No nodes.");
    var out = [table("nodes", ["Node", "Provider", "Pool", "Label", "State", "Age", "Allocated to", "Comment"], s.nodes.map(function (n) {
      return [link("node", n.id), n.provider, n.pool, n.labels.join(", "), el("span", { "class": "chip st-" + n.state }, [n.state]), n.age,
        n.allocated_to ? link("request", n.allocated_to) : "", n.comment];
    }))];
    if (s.node_total > s.nodes.length) {
      out.push(el("p", { "class": "more" }, [s.nodes.length + " newest of " + s.node_total + " shown; all in ", el("a", { href: "node-list" }, ["the node list"]), "."]));
    }
    return out;
  }

  function images(s) {
    var out = [el("h3", {}, ["Builds"])];
    out.push(s.builds && s.builds.length ? table("builds", ["Image", "Build", "State", "Age", "Builder", "Formats"], s.builds.map(function (b) {
      return [b.image, b.id, b.state, b.age, b.builder, b.formats.join(", ")];
    })) : empty("No image builds."));
    (s.uploads || []).forEach(function (p) {
      out.push(el("h3", {}, ["Uploads to " + p.provider]));
      out.push(table("uploads", ["Image", "Build", "Upload", "State", "Age", "Name in the cloud"], p.uploads.map(function (u) {
        return [u.image, u.build, u.id, u.state, u.age, u.external_name];
      })));
    });
    return out;
  }

  function render(s) {
    replace("errors", (s.errors || []).map(function (e) { return el("p", { "class": "error" }, [e]); }));
    replace("health", health(s.health));
    replace("bars", bars(s));
    replace("quota", quota(s));
    replace("queue", queue(s));
    replace("nodes", nodes(s));
    replace("images", images(s));
    replace("generated", [s.generated]);
  }

  function live(text, bad) {
    var e = document.getElementById("live");
    if (!e) return;
    e.textContent = text;
    e.className = bad ? "bad" : "";
  }

  var refreshes = 0;
  function refresh() {
    fetch("status.json", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (s) {
        render(s);
        refreshes++;
        document.body.setAttribute("data-refreshes", String(refreshes));
        live("(live)", false);
      })
      .catch(function (err) { live("(stale: " + err.message + ")", true); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 5000;
    live("(live)", false);
    setInterval(refresh, every);
    refresh();
  });
})();

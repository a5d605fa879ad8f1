// swimnet dashboard: the latency map, networks and tables, and the
// activity charts (drawn with uPlot, vendored under /ui/vendor/).
"use strict";

(() => {
  const { api, ApiError, state, el, $, statusBadge, b64text, pollHooks, viewHooks } = UI;
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // ---------------------------------------------------------------- map
  // Serf's estimate: Euclidean distance plus both heights, with the
  // adjustments added when that keeps it positive. Seconds.
  function vivaldi(a, b) {
    let s = 0;
    for (let i = 0; i < a.vec.length; i++) { const d = a.vec[i] - (b.vec[i] || 0); s += d * d; }
    const raw = Math.sqrt(s) + a.height + b.height;
    const adj = raw + a.adjustment + b.adjustment;
    return adj > 0 ? adj : raw;
  }
  const MAX_POINTS = 400;
  // Classical MDS: double-centre the squared distances and take the two
  // leading eigenvectors (power iteration with deflation).
  function mds(D) {
    const n = D.length;
    const B = D.map((row) => row.map((d) => -0.5 * d * d));
    const rowMean = B.map((r) => r.reduce((a, b) => a + b, 0) / n);
    const all = rowMean.reduce((a, b) => a + b, 0) / n;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) B[i][j] += all - rowMean[i] - rowMean[j];
    const out = Array.from({ length: n }, () => [0, 0]);
    for (let k = 0; k < 2; k++) {
      let v = Array.from({ length: n }, (_, i) => Math.sin(i + 1 + k * 7));
      let lambda = 0;
      for (let it = 0; it < 200; it++) {
        const w = B.map((row) => row.reduce((a, x, j) => a + x * v[j], 0));
        const norm = Math.hypot(...w) || 1;
        lambda = norm; v = w.map((x) => x / norm);
      }
      const s = Math.sqrt(Math.max(lambda, 0));
      for (let i = 0; i < n; i++) out[i][k] = v[i] * s;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) B[i][j] -= lambda * v[i] * v[j];
    }
    return out;
  }
  // Kruskal's stress-1 of a layout against the distances it was drawn from.
  function stress(D, P) {
    let num = 0, den = 0;
    for (let i = 0; i < D.length; i++) for (let j = i + 1; j < D.length; j++) {
      const d = Math.hypot(P[i][0] - P[j][0], P[i][1] - P[j][1]);
      num += (D[i][j] - d) ** 2; den += D[i][j] ** 2;
    }
    return den > 0 ? Math.sqrt(num / den) : 0;
  }

  function renderMap() {
    const map = $("#map"), note = $("#map-note");
    const c = state.coords;
    if (!c) return;
    map.replaceChildren();
    if (c.error) { note.textContent = "Latency map not available: " + c.error; map.dataset.points = "0"; return; }
    const usable = c.coordinates.filter((x) => x.coord.vec.length).slice(0, MAX_POINTS);
    const nodes = usable.map((x) => x.node);
    const byName = new Map(usable.map((x) => [x.node, x.coord]));
    const D = usable.map((a) => usable.map((b) => (a === b ? 0 : vivaldi(a.coord, b.coord))));
    const P = usable.length > 1 ? mds(D) : usable.map(() => [0, 0]);
    const near = new Set(c.near_cluster || []);
    const xs = P.map((p) => p[0]), ys = P.map((p) => p[1]);
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys), 1e-6);
    const W = 600, H = 420, M = 40, scale = Math.min(W - 2 * M, H - 2 * M) / span;
    const cx = (Math.max(...xs) + Math.min(...xs)) / 2, cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    const ours = byName.get(c.node);
    const missing = [...state.members.keys()].filter((n) => !byName.has(n)).length;
    note.textContent = "Classical MDS of the members' pairwise Vivaldi estimates (height included): stress " +
      stress(D, P).toFixed(3) + " (0 is exact; below 0.1 is good). " + usable.length + " members drawn" +
      (missing ? ", " + missing + " without a coordinate yet" : "") + "; near cluster: " +
      (near.size ? near.size + " members" : "none (no latency structure, or selection off)") + ". " +
      "Scale bar: " + (100 / scale * 1000).toFixed(2) + " ms per 100 px.";
    map.append(svg("line", { x1: W - M - 100, y1: H - 12, x2: W - M, y2: H - 12, stroke: "#999" }));
    P.forEach((p, i) => {
      const name = nodes[i];
      const m = state.members.get(name);
      const status = m ? m.status : "left";
      const x = W / 2 + (p[0] - cx) * scale, y = H / 2 + (p[1] - cy) * scale;
      const g = svg("g", { "data-node": name, "data-status": status, "data-near": String(near.has(name)) });
      if (near.has(name)) g.append(svg("circle", { class: "near-ring", cx: x, cy: y, r: 11 }));
      if (name === c.node) g.append(svg("circle", { class: "self-ring", cx: x, cy: y, r: 11 }));
      const pt = svg("circle", { class: "pt", cx: x, cy: y, r: 7, fill: `var(--${status})` });
      const rtt = ours && name !== c.node ? (vivaldi(ours, byName.get(name)) * 1000).toFixed(3) + " ms" : "this agent";
      const title = svg("title", {}); title.textContent = name + ": " + rtt;
      pt.append(title);
      g.append(pt);
      const label = svg("text", { x: x + 10, y: y - 8 }); label.textContent = name;
      g.append(label);
      g.addEventListener("mouseenter", () => {
        $("#map-hover").replaceChildren(el("h3", { text: name }), statusBadge(status),
          el("p", { "data-rtt": name, text: "Estimated RTT from " + c.node + ": " + rtt }),
          el("p", { class: "muted", text: near.has(name) ? "In the near cluster." : "Not in the near cluster." }));
      });
      map.append(g);
    });
    map.dataset.points = String(usable.length);
  }
  // The projection costs O(n^2) per iteration: only while it is on screen.
  pollHooks.coords.push(() => { if (state.view === "map") renderMap(); });
  viewHooks.push((v) => { if (v === "map") renderMap(); });

  // ---------------------------------------------------- networks, tables
  const PAGE = 25;
  const browser = { nid: null, table: null, entries: [], page: 0 };
  let reloadTimer = null;

  async function refreshNetworks() {
    let nets;
    try { nets = (await api("/v1/networks")).networks; }
    catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        $("#networks-na").hidden = false; $("#networks-body").hidden = true;
        $("#networks-na").textContent = "Networks and tables are not available in this mode (" +
          (state.protocol || "not networkdb") + "): they exist only on an agent started with --protocol networkdb.";
        return;
      }
      throw e;
    }
    $("#networks-na").hidden = true; $("#networks-body").hidden = false;
    const cards = await Promise.all(nets.sort().map(async (nid) => {
      const [peers, tables] = await Promise.all([
        api("/v1/networks/" + encodeURIComponent(nid) + "/peers"),
        api("/v1/networks/" + encodeURIComponent(nid) + "/tables")]);
      const card = el("div", { class: "network", "data-network": nid },
        el("h3", { text: "Network " + nid }),
        el("p", {}, "Peers (" + peers.peers.length + "): ",
          ...peers.peers.map((p) => el("span", { class: "tag", "data-peer": p.name, text: p.name + (p.ip ? " " + p.ip : "") }))),
        el("p", {}, "Tables: ", ...(tables.tables.length ? tables.tables.map((t) =>
          el("button", { class: "table", "data-table": t.table, "data-entries": String(t.entries),
            onclick: () => openTable(nid, t.table), text: t.table + " (" + t.entries + " entries)" }))
          : [el("span", { class: "muted", text: "no entries" })])));
      return card;
    }));
    $("#networks").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted", text: "This node is attached to no network." })]));
  }
  pollHooks.networks.push(refreshNetworks);
  viewHooks.push((v) => { if (v === "networks") refreshNetworks().catch(() => {}); });

  async function openTable(nid, table) {
    if (browser.nid !== nid || browser.table !== table) { browser.page = 0; $("#table-changes").replaceChildren(); }
    browser.nid = nid; browser.table = table;
    $("#table-browser").hidden = false;
    $("#table-title").textContent = "Table " + table + " in network " + nid;
    await reloadTable();
  }
  async function reloadTable() {
    if (!browser.table) return;
    const v = await api("/v1/tables/" + encodeURIComponent(browser.nid) + "/" + encodeURIComponent(browser.table));
    browser.entries = v.entries;
    renderEntries();
  }
  function renderEntries() {
    const pages = Math.max(1, Math.ceil(browser.entries.length / PAGE));
    browser.page = Math.min(browser.page, pages - 1);
    $("#page-info").textContent = " page " + (browser.page + 1) + " of " + pages + " (" + browser.entries.length + " entries) ";
    const rows = browser.entries.slice(browser.page * PAGE, (browser.page + 1) * PAGE).map((e) => {
      const v = b64text(e.value);
      return el("tr", { "data-key": e.key },
        el("td", { text: e.key }), el("td", { text: e.owner }),
        el("td", { class: "value" + (v.b64 ? " b64" : ""), text: v.text }),
        el("td", {}, e.owner === state.self ? el("button", { onclick: () => deleteEntry(e.key), text: "Delete..." }) : null));
    });
    $("#entries tbody").replaceChildren(...rows);
  }
  async function act(question, fn) {
    if (!window.confirm(question)) return;
    try { await fn(); } catch (e) { window.alert(e.message); }
    refreshNetworks().catch(() => {}); reloadTable().catch(() => {});
  }
  function deleteEntry(key) {
    const path = "/v1/tables/" + [browser.nid, browser.table, key].map(encodeURIComponent).join("/");
    act("Delete entry " + key + " from " + browser.table + "? Every node of the network will see it go.",
      () => api(path, { method: "DELETE", headers: { "Content-Type": "application/json" } }));
  }

  // Table changes streamed for the table on screen.
  UI.state.listeners.push((ev) => {
    if (!ev.type.startsWith("table-") && !ev.type.startsWith("network-")) return;
    if (browser.table && ev.network === browser.nid && ev.table === browser.table) {
      const v = b64text(ev.value || ev.prev || "");
      const list = $("#table-changes");
      list.prepend(el("li", { "data-type": ev.type, "data-key": ev.key },
        new Date(ev.time_ms || Date.now()).toLocaleTimeString() + " " + ev.type + " " + ev.key + " = " + v.text));
      while (list.children.length > 100) list.lastChild.remove();
    }
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => { reloadTable().catch(() => {}); refreshNetworks().catch(() => {}); }, 300);
  });

  // ----------------------------------------------------------- charts
  const WINDOW = 150; // samples of 2 s: the last 5 minutes
  const series = { t: [], bin: [], bout: [], pok: [], pfail: [], pind: [], susp: [] };
  let last = null;
  const charts = [];
  function chart(title, labels, keys, colors) {
    const box = el("div", { class: "chart", "data-chart": keys[0] });
    $("#charts").append(box);
    const opts = {
      title, width: 440, height: 180,
      series: [{}].concat(labels.map((l, i) => ({ label: l, stroke: colors[i], width: 1.5 }))),
      axes: [{}, { size: 60 }],
    };
    const u = new uPlot(opts, [[], ...keys.map(() => [])], box);
    charts.push({ u, keys });
  }
  chart("Traffic (bytes/s)", ["in", "out"], ["bin", "bout"], ["#2f6fdf", "#e0a100"]);
  chart("Probes (/s)", ["ok", "indirect", "failed"], ["pok", "pind", "pfail"], ["#2e9d4f", "#e0a100", "#d23b3b"]);
  chart("Suspicions (/s)", ["suspicions"], ["susp"], ["#d23b3b"]);
  pollHooks.stats.push((s) => {
    const now = Date.now() / 1000, st = s.stats;
    if (last && now > last.t) {
      const dt = now - last.t, rate = (k) => Math.max(0, (st[k] - last.s[k]) / dt);
      series.t.push(now); series.bin.push(rate("bytes_in")); series.bout.push(rate("bytes_out"));
      series.pok.push(rate("probes_ok")); series.pind.push(rate("probes_indirect"));
      series.pfail.push(rate("probes_failed")); series.susp.push(rate("suspicions"));
      for (const k of Object.keys(series)) if (series[k].length > WINDOW) series[k].shift();
      for (const c of charts) c.u.setData([series.t, ...c.keys.map((k) => series[k])]);
    }
    last = { t: now, s: st };
  });

  $("#page-prev").addEventListener("click", () => { browser.page = Math.max(0, browser.page - 1); renderEntries(); });
  $("#page-next").addEventListener("click", () => { browser.page += 1; renderEntries(); });
  $("#join-btn").addEventListener("click", () => {
    const nid = $("#join-nid").value.trim();
    if (!nid) return;
    act("Attach this node to network " + nid + "? Its peers will start syncing that network's tables with it.",
      () => api("/v1/networks/" + encodeURIComponent(nid) + "/join", { method: "POST", headers: { "Content-Type": "application/json" } }));
  });
  $("#entry-write").addEventListener("click", () => {
    const key = $("#entry-key").value;
    if (!browser.table || !key) return;
    const path = "/v1/tables/" + [browser.nid, browser.table, key].map(encodeURIComponent).join("/");
    act("Write " + key + " = " + JSON.stringify($("#entry-value").value) + " in " + browser.table + "? Every node of the network will get it.",
      () => api(path, { method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: new TextEncoder().encode($("#entry-value").value) }));
  });

  UI.start();
})();

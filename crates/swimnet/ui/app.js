// swimnet dashboard: shared state, API access, the live event stream, the
// Members and Activity views. views.js adds the map, networks and charts.
// Everything it loads comes from the agent that served it.
"use strict";

const UI = (() => {
  // ---- token: #token=T or ?token=T, kept in this tab's session storage
  const TOKEN_KEY = "swimnet-token";
  function takeToken() {
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
    const query = new URLSearchParams(location.search);
    const t = fromHash || query.get("token");
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t);
      query.delete("token");
      const q = query.toString();
      history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
    }
    return !!t;
  }
  takeToken();
  // A token pasted into the address bar later: start again with it.
  window.addEventListener("hashchange", () => { if (takeToken()) location.reload(); });
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = sessionStorage.getItem(TOKEN_KEY);
    if (t) h["Authorization"] = "Bearer " + t;
    return h;
  }

  // An API error that says what the agent said.
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path, opts) {
    opts = opts || {};
    const r = await fetch(path, { method: opts.method || "GET", headers: headers(opts.headers), body: opts.body });
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
    if (!r.ok) throw new ApiError(r.status, (body && body.error) || ("HTTP " + r.status));
    return body;
  }

  const state = {
    self: "", protocol: "", health: 0,
    members: new Map(),        // name -> MemberView
    changes: new Map(),        // name -> {status, time} seen on this page
    coords: null,              // GET /v1/coordinate, or {error}
    connected: false, pollFailed: false, authFailed: false,
    view: "members",
    listeners: [],             // fn(event) for each streamed event
  };

  // ---- small DOM helpers
  const $ = (sel) => document.querySelector(sel);
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function statusBadge(s) { return el("span", { class: "status " + s, text: s }); }
  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    return s < 90 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }
  function b64text(b64) {
    // Text when the bytes are printable UTF-8, else the base64 itself.
    try {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const t = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      if (!/[\u0000-\u0008\u000e-\u001f\u007f]/.test(t)) return { text: t, b64: false };
    } catch (_) { /* not text */ }
    return { text: b64, b64: true };
  }

  // ---- connection banner
  function showBanner() {
    $("#banner").hidden = state.connected && !state.pollFailed;
    $("#banner").textContent = state.authFailed
      ? "The agent refused the page's token (or it needs one): open /ui#token=TOKEN."
      : "Disconnected from the agent: reconnecting...";
    document.body.dataset.connected = String(state.connected && !state.pollFailed);
  }

  // ---- the live stream: server-sent events read with fetch (so the
  // token goes in a header), reconnecting after the agent restarts.
  const MAX_BUFFER = 1 << 20;
  async function follow() {
    let delay = 500;
    for (;;) {
      try {
        const r = await fetch("/v1/events?format=sse", { headers: headers({ Accept: "text/event-stream" }) });
        state.authFailed = r.status === 401;
        if (!r.ok) throw new ApiError(r.status, "events: HTTP " + r.status);
        state.connected = true; delay = 500; showBanner();
        refreshAll();
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "", lagged = false;
        while (!lagged) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          if (buf.length > MAX_BUFFER) break;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
            if (!data) continue;
            let ev; try { ev = JSON.parse(data); } catch (_) { continue; }
            if (ev.type === "lagged") { lagged = true; break; }
            onEvent(ev);
          }
        }
        reader.cancel().catch(() => {});
      } catch (_) { /* the agent is away: retry below */ }
      state.connected = false; showBanner();
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 4000);
    }
  }

  function onEvent(ev) {
    if (ev.member) {
      state.members.set(ev.member.name, ev.member);
      state.changes.set(ev.member.name, { status: ev.member.status, type: ev.type, time: ev.time_ms || Date.now() });
      if (ev.type === "member-reap") state.members.delete(ev.member.name);
      renderMembers();
    }
    addFeed(ev);
    for (const f of state.listeners) f(ev);
  }

  function describe(ev) {
    if (ev.member) return ev.member.name + " (" + ev.member.addr + ") " + ev.member.status;
    if (ev.table) return ev.network + "/" + ev.table + "/" + ev.key + " (" + ev.origin + ")";
    if (ev.node) return ev.node + " " + ev.network;
    if (ev.name) return ev.name;
    return "";
  }
  const FEED_MAX = 300;
  function addFeed(ev) {
    const feed = $("#feed");
    const t = new Date(ev.time_ms || Date.now()).toLocaleTimeString();
    feed.prepend(el("li", { "data-type": ev.type }, t + "  " + ev.type + "  " + describe(ev)));
    while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  }

  // ---- snapshots
  async function refreshMembers() {
    const v = await api("/v1/members");
    const seen = new Set();
    for (const m of v.members) {
      const old = state.members.get(m.name);
      if (old && old.status !== m.status) state.changes.set(m.name, { status: m.status, type: "poll", time: Date.now() });
      state.members.set(m.name, m); seen.add(m.name);
    }
    for (const n of [...state.members.keys()]) if (!seen.has(n)) state.members.delete(n);
    renderMembers();
  }
  async function refreshStats() {
    const s = await api("/v1/stats");
    state.self = s.name; state.protocol = s.protocol; state.health = s.health_score;
    $("#agent").textContent = s.name + " · " + s.protocol + " · health score " + s.health_score;
    for (const f of pollHooks.stats) f(s);
  }
  async function refreshCoords() {
    try { state.coords = await api("/v1/coordinate"); }
    catch (e) { if (e.status) state.coords = { error: e.message }; else throw e; }
    for (const f of pollHooks.coords) f(state.coords);
  }
  const pollHooks = { stats: [], coords: [], networks: [] };
  async function guarded(fn) {
    try { await fn(); state.pollFailed = false; }
    catch (e) { if (!(e instanceof ApiError) || e.status >= 500) state.pollFailed = true; }
    showBanner();
  }
  function refreshAll() {
    guarded(refreshStats); guarded(refreshMembers); guarded(refreshCoords);
    for (const f of pollHooks.networks) guarded(f);
  }

  // ---- Members view
  let sortKey = "name", sortDesc = false, selected = null;
  function memberKey(m, k) {
    if (k === "tags") return Object.entries(m.tags).map(([a, b]) => a + "=" + b).join(",");
    if (k === "protocol") return m.protocol.version;
    return m[k];
  }
  function renderMembers() {
    const q = $("#member-filter").value.trim().toLowerCase();
    const all = [...state.members.values()];
    const counts = {};
    for (const m of all) counts[m.status] = (counts[m.status] || 0) + 1;
    const c = $("#member-counts"); c.replaceChildren();
    c.append(el("span", { "data-count": "total", text: all.length + " members" }));
    for (const s of ["alive", "suspect", "failed", "left"]) {
      c.append(el("span", { "data-count": s }, statusBadge(s), " " + (counts[s] || 0)));
    }
    const rows = all.filter((m) => !q || [m.name, m.addr, m.status, memberKey(m, "tags")].some((x) => x.toLowerCase().includes(q)));
    rows.sort((a, b) => {
      const x = memberKey(a, sortKey), y = memberKey(b, sortKey);
      const r = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return sortDesc ? -r : r;
    });
    const body = $("#members tbody"); body.replaceChildren();
    for (const m of rows) {
      const tags = el("td", {}, ...Object.entries(m.tags).map(([k, v]) => el("span", { class: "tag", text: k + "=" + v })));
      const tr = el("tr", { "data-member": m.name, "data-status": m.status, class: m.name === selected ? "selected" : "", onclick: () => { selected = m.name; renderMembers(); showDetail(m.name); } },
        el("td", { text: m.name + (m.name === state.self ? " (this agent)" : "") }), el("td", { text: m.addr }),
        el("td", {}, statusBadge(m.status)), el("td", { text: String(m.incarnation) }), tags,
        el("td", { text: m.protocol.version + " (" + m.protocol.min + "-" + m.protocol.max + ")" }));
      body.append(tr);
    }
    for (const th of document.querySelectorAll("#members th")) {
      th.classList.toggle("sorted", th.dataset.sort === sortKey);
      th.classList.toggle("desc", th.dataset.sort === sortKey && sortDesc);
    }
    if (selected && state.members.has(selected)) updateDetailStatus(selected);
  }
  function updateDetailStatus(name) {
    const m = state.members.get(name), s = $("#detail-status");
    if (m && s && s.dataset.name === name) s.replaceChildren(statusBadge(m.status));
  }
  async function showDetail(name) {
    const m = state.members.get(name);
    if (!m) return;
    const ch = state.changes.get(name);
    const rtt = el("dd", { id: "detail-rtt", text: "..." });
    $("#member-detail").replaceChildren(
      el("h3", { text: name }),
      el("dl", {},
        el("dt", { text: "Status" }), el("dd", { id: "detail-status", "data-name": name }, statusBadge(m.status)),
        el("dt", { text: "Address" }), el("dd", { text: m.addr }),
        el("dt", { text: "Incarnation" }), el("dd", { text: String(m.incarnation) }),
        el("dt", { text: "Estimated RTT from " + (state.self || "this agent") }), rtt,
        el("dt", { text: "Last state change" }),
        el("dd", { text: ch ? ch.status + ", " + ago(ch.time) : "none since this page was opened" })));
    if (name === state.self) { rtt.textContent = "0 ms (this agent)"; return; }
    try {
      const r = await api("/v1/rtt?a=" + encodeURIComponent(name));
      rtt.textContent = r.rtt_ms.toFixed(3) + " ms";
    } catch (e) { rtt.textContent = e.message; }
  }

  // ---- tabs
  function show(view) {
    state.view = view;
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.view === view);
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
    document.body.dataset.view = view;
    for (const f of viewHooks) f(view);
  }
  const viewHooks = [];

  function start() {
    for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => show(b.dataset.view));
    for (const th of document.querySelectorAll("#members th")) th.addEventListener("click", () => {
      if (sortKey === th.dataset.sort) sortDesc = !sortDesc; else { sortKey = th.dataset.sort; sortDesc = false; }
      renderMembers();
    });
    $("#member-filter").addEventListener("input", renderMembers);
    const initial = new URLSearchParams(location.search).get("view");
    show(initial || "members");
    showBanner();
    follow();
    setInterval(() => {
      guarded(refreshStats); guarded(refreshMembers);
      // The detail's RTT: a coordinate arrives with a probe of that node.
      if (selected && state.view === "members") showDetail(selected);
    }, 2000);
    setInterval(() => guarded(refreshCoords), 3000);
    setInterval(() => { for (const f of pollHooks.networks) guarded(f); }, 5000);
  }

  return { api, ApiError, state, el, $, statusBadge, b64text, pollHooks, viewHooks, start, show, refreshAll };
})();

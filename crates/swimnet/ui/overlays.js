// swimnet dashboard: the Overlays view. Per overlay its ID, subnet, VNI,
// the hosts attached and its endpoints grouped by host, from
// GET /v1/overlays and GET /v1/overlays/NAME/endpoints; refreshed every
// 5 s while shown and soon after a table or network event of an overlay.
// Nothing here changes the cluster, except loading the list on an agent
// that has not used overlays yet (that joins the definitions network),
// which asks first.
"use strict";

(() => {
  const { api, ApiError, state, el, $, pollHooks, viewHooks } = UI;
  // The NetworkDB network holding the definitions (the agent's defs.rs).
  const DEFS_NETWORK = "swimnet-overlay-definitions";
  const MAX_OVERLAYS = 64; // endpoint lists fetched per refresh
  let known = new Set();   // network IDs of the overlays on screen
  let loadAllowed = false; // the user agreed to join the definitions network
  let timer = null;

  function notAvailable(text) {
    $("#overlays-na").hidden = false; $("#overlays-body").hidden = true;
    $("#overlays-na").textContent = text;
  }

  async function refreshOverlays() {
    if (state.view !== "overlays") return;
    let nets;
    try { nets = (await api("/v1/networks")).networks; }
    catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        notAvailable("Overlays are not available in this mode (" + (state.protocol || "not networkdb") +
          "): they exist only on an agent started with --protocol networkdb.");
        return;
      }
      throw e;
    }
    if (!nets.includes(DEFS_NETWORK) && !loadAllowed) {
      $("#overlays-na").hidden = true; $("#overlays-body").hidden = false;
      $("#overlays").replaceChildren(el("p", { class: "muted", id: "overlays-unused" },
        "This agent has used no overlay yet: it is not in the definitions network " + DEFS_NETWORK +
        ", and reading the overlay list would join it. ",
        el("button", { id: "overlays-load", onclick: confirmLoad, text: "Load overlays..." })));
      return;
    }
    let list;
    try { list = await api("/v1/overlays"); }
    catch (e) {
      if (!(e instanceof ApiError)) throw e;
      notAvailable(e.status === 409 ? "Overlays are not available in this mode: " + e.message
        : "Overlays are not available: " + e.message);
      return;
    }
    list.sort((a, b) => a.name.localeCompare(b.name));
    const shown = list.slice(0, MAX_OVERLAYS);
    const cards = await Promise.all(shown.map(card));
    known = new Set(list.map((o) => o.id));
    $("#overlays-na").hidden = true; $("#overlays-body").hidden = false;
    $("#overlays").replaceChildren(...(cards.length ? cards
      : [el("p", { class: "muted", text: "No overlay is defined in the cluster." })]));
    if (list.length > shown.length) {
      $("#overlays").append(el("p", { class: "muted", text: (list.length - shown.length) + " more overlays not shown." }));
    }
  }

  // One overlay: its definition, then its endpoints grouped by host.
  async function card(o) {
    let body;
    try {
      const eps = await api("/v1/overlays/" + encodeURIComponent(o.name) + "/endpoints");
      body = endpointsByHost(eps);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      // 409 "not here": only hosts attached to an overlay hold its tables.
      body = el("p", { class: "muted", "data-endpoints-error": String(e.status), text: e.message });
    }
    return el("div", { class: "network overlay", "data-overlay": o.name },
      el("h3", { text: "Overlay " + o.name }),
      el("dl", { class: "facts" },
        el("dt", { text: "Network ID" }), el("dd", { class: "value", "data-field": "id", text: o.id }),
        el("dt", { text: "Subnet" }), el("dd", { "data-field": "subnet", text: o.subnet }),
        el("dt", { text: "VNI" }), el("dd", { "data-field": "vni", text: String(o.vni) }),
        el("dt", { text: "Hosts attached" }), el("dd", { "data-field": "hosts" },
          ...(o.hosts.length ? o.hosts.map((h) => el("span", { class: "tag", "data-host": h, text: h }))
            : [el("span", { class: "muted", text: "none" })]))),
      body);
  }

  function endpointsByHost(eps) {
    if (!eps.length) return el("p", { class: "muted", text: "No endpoint is attached." });
    const hosts = new Map();
    for (const e of eps) { if (!hosts.has(e.host)) hosts.set(e.host, []); hosts.get(e.host).push(e); }
    const rows = [];
    for (const h of [...hosts.keys()].sort()) {
      const list = hosts.get(h).sort((a, b) => a.name.localeCompare(b.name));
      rows.push(el("tr", { class: "group", "data-host-group": h },
        el("th", { colspan: "4", text: h + (h === state.self ? " (this agent)" : "") + ": " + list.length + " endpoint" + (list.length === 1 ? "" : "s") })));
      for (const e of list) {
        rows.push(el("tr", { "data-endpoint": e.id, "data-host": h },
          el("td", { text: e.name || "(unnamed)" }), el("td", { text: e.ip }),
          el("td", { class: "value", text: e.mac }), el("td", { text: e.vtep })));
      }
    }
    return el("table", { class: "grid endpoints" },
      el("thead", {}, el("tr", {}, el("th", { text: "Name" }), el("th", { text: "IP" }), el("th", { text: "MAC" }), el("th", { text: "VTEP" }))),
      el("tbody", {}, ...rows));
  }

  function confirmLoad() {
    if (!window.confirm("Join the overlay definitions network (" + DEFS_NETWORK + ") on this agent to read the overlay list? " +
      "The agent will gossip that network's definitions from now on.")) return;
    loadAllowed = true;
    refreshOverlays().catch(() => {});
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(() => refreshOverlays().catch(() => {}), 300);
  }
  // Table and network events of the definitions or of an overlay on screen.
  state.listeners.push((ev) => {
    if (state.view !== "overlays" || !ev.network) return;
    if (ev.network === DEFS_NETWORK || known.has(ev.network)) soon();
  });
  pollHooks.networks.push(refreshOverlays);
  viewHooks.push((v) => { if (v === "overlays") refreshOverlays().catch(() => {}); });
})();

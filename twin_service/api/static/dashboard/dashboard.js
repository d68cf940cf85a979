// twin-service live dashboard: plain JavaScript and canvas, no build step, nothing fetched from elsewhere.
//
// Data: GET ../v1/map once per run (roads, servers), then GET ../v1/stream: Server-Sent Events, a snapshot
// and then one delta per tick (see the route's docs at ../docs). The stream is read with fetch() so that it
// can send the X-API-Key header when the service has a key. A click on a vehicle or a server loads its twin
// (GET ../v1/twins/...) and, for a vehicle, its decisions for the latest tick (POST ../v1/decisions/...).
// Cities: the page's ?city=NAME goes with every request; GET ../v1/cities fills the city picker, which opens the
// page again for the city picked (a fresh start: nothing of one city's run is mixed into another's).
"use strict";

(() => {
  const API = new URL("../", window.location.href); // the service root, wherever it is mounted
  const CITY = new URLSearchParams(window.location.search).get("city") || ""; // "" = the service's own
  const CITIES_REFRESH_MS = 15000;
  const TIER_COLOUR = { rsu: "#005aff", uav: "#ff8c00", satellite: "#a64be0" };
  const FAILED_COLOUR = "#dc0000";
  const MIGRATION_COLOUR = "#ff2fa0";
  const MIGRATION_SHOW_MS = 2500;
  const HISTORY_TICKS = 300;
  const KEY_STORE = "twin-service-api-key";

  const KPI_CHARTS = {
    latency: { kpi: "latency_mean_s", scale: 1000, unit: "ms", digits: 1, colour: "#5fa8ff" },
    loss: { kpi: "packet_loss", scale: 100, unit: "%", digits: 2, colour: "#ff6b6b" },
    variance: { kpi: "load_variance_mb2", scale: 1, unit: "MB²", digits: 0, colour: "#f0c14b" },
    migrations: { kpi: "migrations", scale: 1, unit: "/tick", digits: 0, colour: MIGRATION_COLOUR },
    cost: { kpi: "offload_cost_mean", scale: 1, unit: "", digits: 3, colour: "#4fd1c5" },
    success: { kpi: "task_success_rate", scale: 100, unit: "%", digits: 1, colour: "#7ee787" },
  };

  // ---- state ------------------------------------------------------------------------------------
  const state = {
    connected: false,
    run: null,
    map: null,
    tick: null,
    simTime: null,
    serverIds: [],
    serverTiers: [],
    servers: [], // index -> {id, tier, x, y, load, hosted, overloaded, forecast}
    vehicles: new Map(), // id -> {x, y, host, failed}
    kpis: [], // [{tick, sim_time_s, kpis}]
    serverHistory: new Map(), // index -> [[tick, load, forecast]]
    migrations: [], // {id, from, to, at}
    loadSource: "",
    health: { state: "ok", reasons: [] }, // the service's last status event
    selected: null, // {kind: "vehicle"|"server", id}
    ticksSeen: 0,
    events: [], // GET /v1/events: the run's what-if events
    outServers: new Set(), // indices of servers out of service (an outage or a recall in force)
  };
  window.twinDashboard = state; // for the browser tests and the curious

  const $ = (id) => document.getElementById(id);
  const mapCanvas = $("map");
  const loadsCanvas = $("loads");
  let apiKey = readKey();

  function readKey() {
    const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("key");
    if (fromHash) {
      sessionStorage.setItem(KEY_STORE, fromHash);
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return sessionStorage.getItem(KEY_STORE) || "";
  }

  function api(path) {
    const url = new URL(path, API);
    if (CITY) url.searchParams.set("city", CITY);
    return url;
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (apiKey) h["X-API-Key"] = apiKey;
    return h;
  }

  function setStatus(kind, text) {
    const el = $("status");
    el.dataset.state = kind;
    el.textContent = text;
  }

  // The service's own word on whether it can do its job (the stream's status events): a banner unless ok.
  const BANNER_TITLE = {
    degraded: "Degraded: the twins are live, but decisions are not coming from the decision service",
    unavailable: "Unavailable: the service cannot reach Redis",
    error: "No live data from the service",
  };
  function setBanner(kind, reasons) {
    const banner = $("banner");
    state.health = { state: kind, reasons: reasons || [] };
    if (kind === "ok") {
      banner.hidden = true;
      return;
    }
    banner.hidden = false;
    banner.dataset.state = kind;
    $("banner-title").textContent = BANNER_TITLE[kind] || kind;
    const list = $("banner-reasons");
    list.replaceChildren(...(reasons || []).map((r) => el("li", { text: r })));
  }

  function onStatus(body) {
    const kind = body.state || (body.redis && body.redis !== "ok" ? "unavailable" : "ok");
    setBanner(kind, body.reasons || (body.detail ? [body.detail] : []));
    if (kind === "unavailable") setStatus("error", `Redis: ${body.redis}`);
    else if (kind === "degraded") setStatus("degraded", state.connected ? "live · degraded" : "degraded");
    else if (state.connected) setStatus("live", "live");
  }

  // ---- colours ----------------------------------------------------------------------------------
  function loadRgb(fraction) {
    // as sumo-gui's overlay: green at 0, yellow at 0.5, red at 1 or more
    const f = Math.min(Math.max(fraction, 0), 1);
    if (f <= 0.5) return [Math.round(510 * f), 200, 0];
    return [255, Math.round(400 * (1 - f)), 0];
  }
  const rgba = (rgb, a) => `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${a})`;

  function serverCache(index) {
    const s = state.map && state.map.servers[index];
    return s && s.cache_bits ? s.cache_bits : null;
  }
  function loadFraction(index) {
    const cache = serverCache(index);
    const s = state.servers[index];
    return cache && s ? s.load / cache : 0;
  }

  // ---- stream -----------------------------------------------------------------------------------
  async function connect() {
    setStatus("connecting", "connecting…");
    let response;
    try {
      response = await fetch(api("v1/stream"), { headers: headers({ Accept: "text/event-stream" }), cache: "no-store" });
    } catch (err) {
      return retry(`offline (${err.message})`);
    }
    if (response.status === 401) {
      setStatus("error", "API key needed");
      $("key-form").hidden = false;
      return; // the form reconnects
    }
    if (!response.ok) {
      let detail = `HTTP ${response.status}`;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      setBanner("error", [`the live stream answered: ${detail}`]);
      return retry(detail);
    }
    $("key-form").hidden = true;
    if (state.health.state === "error") setBanner("ok", []);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handleBlock(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      return retry(`stream broke (${err.message})`);
    }
    retry("stream ended");
  }

  function retry(why) {
    state.connected = false;
    setStatus("error", `${why}; retrying`);
    setTimeout(connect, 2000);
  }

  function handleBlock(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    const body = JSON.parse(data.join("\n"));
    if (state.paused) {
      held.push([event, body]); // applied in order on resume: deltas build on each other
      return;
    }
    dispatch(event, body);
  }

  function dispatch(event, body) {
    if (event === "snapshot") onSnapshot(body);
    else if (event === "tick") onTick(body);
    else if (event === "status") onStatus(body);
  }

  function onSnapshot(body) {
    const newRun = !state.run || state.run.started_wall_time !== body.run.started_wall_time;
    state.run = body.run;
    state.serverIds = body.server_ids;
    state.serverTiers = body.server_tiers;
    state.servers = body.server_ids.map((id, k) => ({ id, tier: body.server_tiers[k], x: 0, y: 0, load: 0, hosted: 0, overloaded: 0, forecast: 0 }));
    state.vehicles.clear();
    state.kpis = [];
    state.migrations = [];
    state.serverHistory.clear();
    state.loadSource = body.load_source || "";
    $("scenario").textContent = body.run.scenario || "–";
    $("load-source").textContent = `forecast: ${state.loadSource}`;
    if (newRun || !state.map) loadMap();
    fillServerChoice();
    apply(body, false);
    pollEvents();
  }

  function onTick(body) {
    if (!state.run) return;
    apply(body, true);
  }

  function apply(body, isDelta) {
    const now = performance.now();
    for (const id of body.left) state.vehicles.delete(id);
    for (const [id, x, y, host, failed] of body.vehicles) state.vehicles.set(id, { x, y, host, failed });
    for (const [index, x, y, load, hosted, overloaded, forecast] of body.servers) {
      Object.assign(state.servers[index], { x, y, load, hosted, overloaded, forecast });
    }
    if (isDelta) for (const [id, from, to] of body.migrations) state.migrations.push({ id, from, to, at: now });
    state.servers.forEach((s, k) => {
      let h = state.serverHistory.get(k);
      if (!h) state.serverHistory.set(k, (h = []));
      h.push([body.tick, s.load, s.forecast]);
      if (h.length > HISTORY_TICKS) h.shift();
    });
    for (const sample of body.kpis) state.kpis.push(sample);
    if (state.kpis.length > HISTORY_TICKS) state.kpis.splice(0, state.kpis.length - HISTORY_TICKS);
    state.tick = body.tick;
    state.simTime = body.sim_time_s;
    if (body.load_source) {
      state.loadSource = body.load_source;
      $("load-source").textContent = `forecast: ${state.loadSource}`;
    }
    state.ticksSeen += 1;
    state.connected = true;
    if (state.health.state === "degraded") setStatus("degraded", "live · degraded");
    else setStatus("live", "live");
    updateFacts();
    drawCharts();
    drawLoads();
    requestDraw();
    if (state.selected) refreshDetail();
  }

  function updateFacts() {
    $("tick").textContent = state.tick;
    $("sim-time").textContent = `${Math.round(state.simTime)} s`;
    $("n-vehicles").textContent = state.vehicles.size;
    const counts = { rsu: 0, uav: 0, satellite: 0 };
    for (const v of state.vehicles.values()) {
      const tier = state.serverTiers[v.host];
      if (tier in counts) counts[tier] += 1;
    }
    $("hosts").textContent = `RSU ${counts.rsu} · UAV ${counts.uav} · sat ${counts.satellite}`;
  }

  async function loadMap() {
    try {
      const response = await fetch(api("v1/map"), { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      state.map = await response.json();
      const note = $("map-note");
      note.hidden = !state.map.roads_detail;
      note.textContent = state.map.roads_detail ? `no roads: ${state.map.roads_detail}` : "";
      view.fitted = false;
      roadsLayer = null;
      requestDraw();
      drawLoads();
    } catch (err) {
      setTimeout(loadMap, 2000);
    }
  }

  // ---- map --------------------------------------------------------------------------------------
  const view = { scale: 1, ox: 0, oy: 0, fitted: false }; // screen = (x * scale + ox, oy - y * scale)
  let roadsLayer = null;
  let drawPending = false;
  let dpr = window.devicePixelRatio || 1;

  function toScreen(x, y) {
    return [x * view.scale + view.ox, view.oy - y * view.scale];
  }
  function toWorld(sx, sy) {
    return [(sx - view.ox) / view.scale, (view.oy - sy) / view.scale];
  }

  function fit() {
    const b = state.map.boundary;
    const w = mapCanvas.clientWidth;
    const h = mapCanvas.clientHeight;
    const pad = 30;
    const bw = Math.max(b[2] - b[0], 1);
    const bh = Math.max(b[3] - b[1], 1);
    view.scale = Math.min((w - 2 * pad) / bw, (h - 2 * pad) / bh);
    view.ox = (w - bw * view.scale) / 2 - b[0] * view.scale;
    view.oy = (h + bh * view.scale) / 2 + b[1] * view.scale;
    view.fitted = true;
    roadsLayer = null;
  }

  function sizeCanvas(canvas) {
    dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
      return true;
    }
    return false;
  }

  function renderRoads() {
    const layer = document.createElement("canvas");
    layer.width = mapCanvas.width;
    layer.height = mapCanvas.height;
    const ctx = layer.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#5b6673";
    for (const road of state.map.roads) {
      ctx.lineWidth = Math.max(0.8, Math.min(4, road.lanes * 3.2 * view.scale));
      ctx.beginPath();
      const xy = road.xy;
      for (let k = 0; k < xy.length; k += 2) {
        const [sx, sy] = toScreen(xy[k], xy[k + 1]);
        if (k === 0) ctx.moveTo(sx, sy);
        else ctx.lineTo(sx, sy);
      }
      ctx.stroke();
    }
    return layer;
  }

  function satellitePoint() {
    return [mapCanvas.clientWidth - 46, 46]; // the satellite is in the sky: drawn in a corner of the view
  }

  function serverPoint(index) {
    const s = state.servers[index];
    if (!s) return null;
    if (s.tier === "satellite") return satellitePoint();
    return toScreen(s.x, s.y);
  }

  function requestDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      drawMap();
    });
  }

  function drawMap() {
    if (sizeCanvas(mapCanvas)) roadsLayer = null;
    const ctx = mapCanvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#0f1419";
    ctx.fillRect(0, 0, mapCanvas.width, mapCanvas.height);
    if (!state.map) return;
    if (!view.fitted) fit();
    if (!roadsLayer) roadsLayer = renderRoads();
    ctx.drawImage(roadsLayer, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const now = performance.now();

    // UAV patrols and coverage circles, shaded by load
    let serversDrawn = 0;
    state.map.servers.forEach((m, k) => {
      if (m.tier === "uav" && m.patrol_xy.length > 1) {
        ctx.setLineDash([4, 4]);
        ctx.strokeStyle = "rgba(255,140,0,0.35)";
        ctx.lineWidth = 1;
        ctx.beginPath();
        m.patrol_xy.forEach(([x, y], i) => {
          const [sx, sy] = toScreen(x, y);
          if (i === 0) ctx.moveTo(sx, sy);
          else ctx.lineTo(sx, sy);
        });
        ctx.stroke();
        ctx.setLineDash([]);
      }
    });
    state.servers.forEach((s, k) => {
      const m = state.map.servers[k];
      if (s.tier === "satellite" || !m || !m.range_m || state.outServers.has(k)) return;
      const [sx, sy] = toScreen(s.x, s.y);
      const f = Math.min(loadFraction(k), 1);
      const rgb = loadRgb(f);
      ctx.beginPath();
      ctx.arc(sx, sy, m.range_m * view.scale, 0, 2 * Math.PI);
      if (f > 0.5) { // circles overlap: only a server past half its L_max tints its area
        ctx.fillStyle = rgba(rgb, 0.25 * (f - 0.5));
        ctx.fill();
      }
      ctx.strokeStyle = rgba(rgb, 0.2 + 0.5 * f);
      ctx.lineWidth = 1;
      ctx.stroke();
    });

    // host links: each vehicle to the server hosting its twin
    let links = 0;
    ctx.lineWidth = 0.8;
    for (const [tier, colour] of Object.entries(TIER_COLOUR)) {
      ctx.strokeStyle = colour + (tier === "satellite" ? "30" : "70");
      ctx.beginPath();
      for (const v of state.vehicles.values()) {
        if (state.serverTiers[v.host] !== tier || v.failed) continue;
        const p = serverPoint(v.host);
        if (!p) continue;
        const [sx, sy] = toScreen(v.x, v.y);
        ctx.moveTo(sx, sy);
        ctx.lineTo(p[0], p[1]);
        links += 1;
      }
      ctx.stroke();
    }

    // migrations: the twin's move from the old host to the new one, fading out
    state.migrations = state.migrations.filter((m) => now - m.at < MIGRATION_SHOW_MS);
    for (const mig of state.migrations) {
      const v = state.vehicles.get(mig.id);
      const a = serverPoint(mig.from);
      const b = serverPoint(mig.to);
      if (!v || !a || !b) continue;
      const alpha = 1 - (now - mig.at) / MIGRATION_SHOW_MS;
      const [vx, vy] = toScreen(v.x, v.y);
      ctx.strokeStyle = `rgba(255,47,160,${alpha.toFixed(3)})`;
      ctx.lineWidth = 2.5;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath();
      ctx.moveTo(vx, vy);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(vx, vy, 6, 0, 2 * Math.PI);
      ctx.stroke();
    }

    // vehicles, coloured by their host's tier (red: service failed this tick)
    let vehiclesDrawn = 0;
    for (const [id, v] of state.vehicles) {
      const [sx, sy] = toScreen(v.x, v.y);
      ctx.fillStyle = v.failed ? FAILED_COLOUR : TIER_COLOUR[state.serverTiers[v.host]] || "#ffffff";
      ctx.beginPath();
      ctx.arc(sx, sy, 2.6, 0, 2 * Math.PI);
      ctx.fill();
      vehiclesDrawn += 1;
      if (state.selected && state.selected.kind === "vehicle" && state.selected.id === id) {
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(sx, sy, 8, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }

    // servers: RSU squares and UAV triangles filled by load, the satellite in its corner
    state.servers.forEach((s, k) => {
      const p = serverPoint(k);
      if (!p) return;
      const [sx, sy] = p;
      const out = state.outServers.has(k); // out of service: greyed, crossed out
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = out ? OUT_STROKE : TIER_COLOUR[s.tier] || "#ffffff";
      ctx.fillStyle = out ? OUT_FILL : rgba(loadRgb(loadFraction(k)), 1);
      ctx.beginPath();
      if (s.tier === "rsu") {
        ctx.rect(sx - 4.5, sy - 4.5, 9, 9);
      } else if (s.tier === "uav") {
        ctx.moveTo(sx, sy - 7);
        ctx.lineTo(sx + 6.5, sy + 5);
        ctx.lineTo(sx - 6.5, sy + 5);
        ctx.closePath();
      } else {
        ctx.fillStyle = out ? OUT_FILL : TIER_COLOUR.satellite;
        ctx.strokeStyle = out ? OUT_STROKE : "#e9d5ff";
        ctx.rect(sx - 6, sy - 6, 12, 12);
        ctx.moveTo(sx - 20, sy - 3);
        ctx.rect(sx - 20, sy - 4, 11, 8);
        ctx.rect(sx + 9, sy - 4, 11, 8);
      }
      ctx.fill();
      ctx.stroke();
      if (out) {
        ctx.strokeStyle = OUT_STROKE;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(sx - 8, sy - 8);
        ctx.lineTo(sx + 8, sy + 8);
        ctx.moveTo(sx + 8, sy - 8);
        ctx.lineTo(sx - 8, sy + 8);
        ctx.stroke();
        ctx.fillStyle = "#d0d6dc";
        ctx.font = "11px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.fillText(`${s.id} out`, sx, sy - 12);
      }
      if (s.tier === "satellite") {
        ctx.fillStyle = "#e9d5ff";
        ctx.font = "11px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.fillText(`${s.id} · ${s.hosted} twins`, sx, sy + 20);
      }
      if (state.selected && state.selected.kind === "server" && state.selected.id === s.id) {
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(sx, sy, 11, 0, 2 * Math.PI);
        ctx.stroke();
      }
      serversDrawn += 1;
    });

    const d = mapCanvas.dataset;
    d.tick = state.tick;
    d.vehicles = vehiclesDrawn;
    d.servers = serversDrawn;
    d.links = links;
    d.migrations = state.migrations.length;
    d.roads = state.map.roads.length;
    d.outServers = [...state.outServers].map((k) => state.serverIds[k]).join(",");
    if (state.migrations.length) requestDraw(); // keep fading
  }

  // pan and zoom
  let drag = null;
  mapCanvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const factor = Math.exp(-e.deltaY * 0.0015);
    const rect = mapCanvas.getBoundingClientRect();
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    view.ox = mx - (mx - view.ox) * factor;
    view.oy = my - (my - view.oy) * factor;
    view.scale *= factor;
    roadsLayer = null;
    requestDraw();
  }, { passive: false });
  mapCanvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
  mapCanvas.addEventListener("mousemove", (e) => {
    const rect = mapCanvas.getBoundingClientRect();
    if (drag && (e.buttons & 1)) {
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      view.ox += dx;
      view.oy += dy;
      drag.x = e.clientX;
      drag.y = e.clientY;
      roadsLayer = null;
      requestDraw();
      return;
    }
    const hit = hitTest(e.clientX - rect.left, e.clientY - rect.top);
    const tip = $("tooltip");
    tip.hidden = !hit;
    if (hit) {
      tip.textContent = hit.kind === "vehicle" ? `vehicle ${hit.id}` : `${state.servers[hit.index].tier} ${hit.id}`;
      tip.style.left = `${e.clientX - rect.left + 12}px`;
      tip.style.top = `${e.clientY - rect.top + 12}px`;
    }
  });
  mapCanvas.addEventListener("dblclick", () => { view.fitted = false; requestDraw(); });
  mapCanvas.addEventListener("click", (e) => {
    if (drag && drag.moved) return;
    const rect = mapCanvas.getBoundingClientRect();
    const hit = hitTest(e.clientX - rect.left, e.clientY - rect.top);
    select(hit ? { kind: hit.kind, id: hit.id } : null);
  });
  window.addEventListener("resize", () => { view.fitted = false; requestDraw(); drawCharts(); drawLoads(); });

  function hitTest(px, py) {
    let best = null;
    let bestD = 10;
    state.servers.forEach((s, index) => {
      const p = serverPoint(index);
      if (!p) return;
      const d = Math.hypot(p[0] - px, p[1] - py);
      if (d < bestD) { best = { kind: "server", id: s.id, index }; bestD = d; }
    });
    if (best) return best;
    bestD = 8;
    for (const [id, v] of state.vehicles) {
      const [sx, sy] = toScreen(v.x, v.y);
      const d = Math.hypot(sx - px, sy - py);
      if (d < bestD) { best = { kind: "vehicle", id }; bestD = d; }
    }
    return best;
  }

  // page positions of a vehicle and of a server (the browser tests click and check pixels there)
  state.screenPosition = (id) => {
    const v = state.vehicles.get(id);
    if (!v) return null;
    const rect = mapCanvas.getBoundingClientRect();
    const [sx, sy] = toScreen(v.x, v.y);
    return [rect.left + sx, rect.top + sy];
  };

  state.serverScreenPosition = (index) => {
    const p = serverPoint(index);
    if (!p) return null;
    const rect = mapCanvas.getBoundingClientRect();
    return [rect.left + p[0], rect.top + p[1]];
  };

  // ---- charts -----------------------------------------------------------------------------------
  function blank(canvas) {
    // a cleared canvas at the screen's pixel ratio, drawn on in CSS pixels
    sizeCanvas(canvas);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function drawLine(canvas, series, colour, opts) {
    const { ctx, w, h } = blank(canvas);
    const all = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
    let points = 0;
    if (!all.length) return 0;
    let lo = Math.min(...all, opts && opts.zero ? 0 : Infinity);
    let hi = Math.max(...all);
    if (hi - lo < 1e-9) { hi += 1; lo = Math.max(0, lo - 1); }
    const t0 = series[0].points.length ? series[0].points[0][0] : 0;
    const t1 = Math.max(t0 + 1, ...series.map((s) => (s.points.length ? s.points[s.points.length - 1][0] : t0)));
    const left = 30;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (w - left - 4);
    const y = (v) => h - 12 - ((v - lo) / (hi - lo)) * (h - 18);
    ctx.fillStyle = "#8393a3";
    ctx.font = "9px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.fillText(fmt(hi), left - 3, 10);
    ctx.fillText(fmt(lo), left - 3, h - 10);
    ctx.strokeStyle = "#26303b";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, y(hi));
    ctx.lineTo(w, y(hi));
    ctx.moveTo(left, y(lo));
    ctx.lineTo(w, y(lo));
    ctx.stroke();
    if (opts && opts.refLine !== undefined && opts.refLine >= lo && opts.refLine <= hi) {
      ctx.setLineDash([3, 3]);
      ctx.strokeStyle = "#ff6b6b";
      ctx.beginPath();
      ctx.moveTo(left, y(opts.refLine));
      ctx.lineTo(w, y(opts.refLine));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    for (const s of series) {
      ctx.strokeStyle = s.colour || colour;
      ctx.lineWidth = 1.5;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      let started = false;
      for (const [t, v] of s.points) {
        if (!Number.isFinite(v)) continue;
        if (!started) { ctx.moveTo(x(t), y(v)); started = true; } else ctx.lineTo(x(t), y(v));
        points += 1;
      }
      ctx.stroke();
      ctx.setLineDash([]);
    }
    return points;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 10 || a === 0) return v.toFixed(0);
    return v.toPrecision(2);
  }

  function drawCharts() {
    for (const canvas of document.querySelectorAll("canvas.chart")) {
      const spec = KPI_CHARTS[canvas.dataset.kpi];
      const pts = state.kpis
        .filter((s) => spec.kpi in s.kpis && s.kpis[spec.kpi] !== null)
        .map((s) => [s.tick, s.kpis[spec.kpi] * spec.scale]);
      canvas.dataset.points = drawLine(canvas, [{ points: pts }], spec.colour, { zero: true });
      const last = pts.length ? pts[pts.length - 1][1] : null;
      document.querySelector(`[data-value="${canvas.dataset.kpi}"]`).textContent =
        last === null ? "–" : `${last.toFixed(spec.digits)} ${spec.unit}`;
    }
  }

  function drawLoads() {
    const { ctx, w, h } = blank(loadsCanvas);
    const shown = state.servers.map((s, k) => k).filter((k) => serverCache(k));
    loadsCanvas.dataset.bars = 0;
    loadsCanvas.dataset.forecasts = 0;
    if (!shown.length) return;
    const top = Math.max(1.2, ...shown.map((k) => loadFraction(k)), ...shown.map((k) => state.servers[k].forecast / serverCache(k)));
    const left = 24;
    const bw = (w - left - 4) / shown.length;
    const y = (f) => h - 14 - (f / top) * (h - 22);
    ctx.fillStyle = "#8393a3";
    ctx.font = "9px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.fillText("L", left - 4, y(1) + 3);
    ctx.fillText("0", left - 4, h - 12);
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = "#ff6b6b";
    ctx.beginPath();
    ctx.moveTo(left, y(1));
    ctx.lineTo(w, y(1));
    ctx.stroke();
    ctx.setLineDash([]);
    let bars = 0;
    let forecasts = 0;
    loadsCanvas._layout = { left, bw, shown };
    shown.forEach((k, i) => {
      const s = state.servers[k];
      const f = loadFraction(k);
      const x0 = left + i * bw;
      ctx.fillStyle = rgba(loadRgb(f), 0.9);
      ctx.fillRect(x0 + bw * 0.12, y(f), Math.max(1, bw * 0.76), h - 14 - y(f));
      bars += 1;
      const pf = s.forecast / serverCache(k);
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x0, y(pf));
      ctx.lineTo(x0 + bw, y(pf));
      ctx.stroke();
      forecasts += 1;
      if (state.selected && state.selected.kind === "server" && state.selected.id === s.id) {
        ctx.strokeStyle = MIGRATION_COLOUR;
        ctx.strokeRect(x0 + 0.5, 2, bw - 1, h - 16);
      }
      if (s.tier === "uav") {
        ctx.fillStyle = TIER_COLOUR.uav;
        ctx.fillRect(x0 + bw * 0.12, h - 12, Math.max(1, bw * 0.76), 3);
      }
    });
    loadsCanvas.dataset.bars = bars;
    loadsCanvas.dataset.forecasts = forecasts;
  }

  loadsCanvas.addEventListener("click", (e) => {
    const layout = loadsCanvas._layout;
    if (!layout) return;
    const rect = loadsCanvas.getBoundingClientRect();
    const i = Math.floor((e.clientX - rect.left - layout.left) / layout.bw);
    if (i >= 0 && i < layout.shown.length) select({ kind: "server", id: state.servers[layout.shown[i]].id });
  });

  // ---- twin detail ------------------------------------------------------------------------------
  let detailBusy = false;
  let detailToken = 0;

  function select(target) {
    state.selected = target;
    $("detail").hidden = !target;
    $("detail-hint").hidden = !!target;
    if (target) {
      $("detail-title").textContent = `${target.kind} ${target.id}`;
      $("detail-body").textContent = "loading…";
      detailBusy = false;
      refreshDetail();
    }
    requestDraw();
    drawLoads();
  }
  $("detail-close").addEventListener("click", () => select(null));

  async function getJson(url, init) {
    const response = await fetch(url, init);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }

  async function refreshDetail() {
    if (detailBusy || !state.selected) return;
    detailBusy = true;
    const target = state.selected;
    const token = ++detailToken;
    try {
      const path = target.kind === "vehicle" ? "vehicles" : "servers";
      const twin = await getJson(api(`v1/twins/${path}/${encodeURIComponent(target.id)}`), { cache: "no-store" });
      let migration = null;
      let offload = null;
      let decisionError = "";
      let logged = null;
      if (target.kind === "vehicle") {
        logged = await getJson(new URL(`v1/decisions/log?vehicle=${encodeURIComponent(target.id)}&last=10`, API), { headers: headers(), cache: "no-store" }).catch((err) => ({ error: err.message }));
        const init = (body) => ({ method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
        try {
          [migration, offload] = await Promise.all([
            getJson(api("v1/decisions/migration"), init({ tick: twin.tick, vehicle_ids: [target.id] })),
            getJson(api("v1/decisions/offload"), init({ tick: twin.tick, vehicle_ids: [target.id] })),
          ]);
        } catch (err) {
          decisionError = err.message;
        }
      }
      if (token === detailToken && state.selected === target) renderDetail(target, twin, migration, offload, decisionError, logged);
    } catch (err) {
      if (token === detailToken && state.selected === target) $("detail-body").textContent = `gone: ${err.message}`;
    } finally {
      detailBusy = false;
    }
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function num(v, digits) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return v.toFixed(digits === undefined ? 2 : digits);
  }

  function kv(pairs) {
    const dl = el("dl", { class: "kv" });
    for (const [k, v] of pairs) dl.append(el("dt", { text: k }), el("dd", { text: v }));
    return dl;
  }

  function serverName(index) {
    const s = state.servers[index];
    return s ? `${s.id} (${s.tier})` : String(index);
  }

  function renderDetail(target, twin, migration, offload, decisionError, logged) {
    const body = $("detail-body");
    body.replaceChildren();
    body.dataset.tick = twin.tick;
    const st = twin.state;
    if (target.kind === "vehicle") {
      body.append(
        kv([
          ["host", serverName(st.host_index)],
          ["road", st.road_id],
          ["speed", `${num(st.speed_mps, 1)} m/s`],
          ["latency", `${num(st.latency_s * 1000, 1)} ms`],
          ["service", st.failed ? "failed" : "ok"],
          ["migrated", st.migrated ? "this tick" : "no"],
          ["rho", num(st.rho, 2)],
          ["task", st.task_success ? "met deadline" : "missed"],
          ["offload cost", num(st.offload_cost, 3)],
          ["battery", `${num(st.energy_frac * 100, 1)} %`],
        ]),
      );
      body.append(el("h3", { text: `window: last ${twin.history.length} ticks` }));
      const table = el("table", { class: "window" }, [
        el("tr", {}, ["tick", "speed m/s", "host", "latency ms", "failed"].map((t) => el("th", { text: t }))),
      ]);
      for (const h of twin.history) {
        const v = h.values;
        table.append(
          el("tr", {}, [h.tick, num(v.speed_mps, 1), state.servers[v.host_index] ? state.servers[v.host_index].id : v.host_index, num(v.latency_s * 1000, 1), v.failed ? "yes" : ""].map(
            (t) => el("td", { text: String(t) }),
          )),
        );
      }
      const m = twin.window_mean;
      table.append(el("tr", {}, ["mean", num(m.speed_mps, 1), "", num(m.latency_s * 1000, 1), num(m.failed, 2)].map((t) => el("th", { text: String(t) }))));
      body.append(table);
      body.append(el("h3", { text: "last decision" }));
      if (decisionError) body.append(el("p", { class: "muted", text: `decisions unavailable: ${decisionError}` }));
      if (migration && migration.decisions.length) {
        const d = migration.decisions[0];
        body.append(
          el("p", { class: "decision", text: `migration (${migration.policy.name}@${migration.policy.version}): ${serverName(d.host_index)} → ${serverName(d.target_index)}` }),
        );
        const feasible = new Set(d.feasible_server_ids);
        const mask = el("div", { class: "mask", title: "action mask (Eq. 23): green = feasible" });
        migration.server_ids.forEach((sid) => {
          const cls = (feasible.has(sid) ? "ok" : "") + (sid === d.target_server_id ? " chosen" : "");
          mask.append(el("i", { class: cls.trim(), title: sid }));
        });
        body.append(el("div", { class: "muted small", text: `mask: ${feasible.size} of ${migration.server_ids.length} servers feasible` }), mask);
        const probs = el("div", { class: "prob" });
        Object.entries(d.probabilities)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8)
          .forEach(([sid, p]) => {
            const chosen = sid === d.target_server_id ? "chosen" : "";
            probs.append(
              el("span", { class: chosen, text: sid }),
              el("span", { class: "track" }, [el("span", { class: "fill", style: `width:${(100 * p).toFixed(1)}%;display:block` })]),
              el("span", { class: chosen, text: p.toFixed(3) }),
            );
          });
        body.append(probs);
      }
      body.append(el("h3", { text: "recent decisions (decision log)" }));
      if (!logged || logged.error) {
        body.append(el("p", { class: "muted", text: `none logged: ${logged ? logged.error : "–"}` }));
      } else {
        const table = el("table", { class: "declog" }, [
          el("tr", {}, ["tick", "by", "host → target", "rho", "mask", "top score", "pred. MB"].map((t) => el("th", { text: t }))),
        ]);
        for (const d of logged.decisions.slice().reverse()) {
          const top = d.top[0];
          table.append(el("tr", {}, [
            el("td", { text: String(d.tick) }),
            el("td", { text: d.fallback ? "fallback" : d.source.replace(/^api:/, "").split("+")[0], title: d.source }),
            el("td", { class: d.migrates ? "mig" : "", text: d.migrates ? `${d.host_server_id} → ${d.target_server_id}` : String(d.target_server_id) }),
            el("td", { text: num(d.rho, 2) }),
            el("td", { text: String(d.mask_size) }),
            el("td", { text: top ? `${top.server_id} ${num(top.score, 2)}` : "–" }),
            el("td", { text: num(d.predicted_load_mb, 1) }),
          ]));
        }
        body.append(table);
      }
      if (offload && offload.decisions.length) {
        const o = offload.decisions[0];
        body.append(
          el("p", { class: "decision", text: `offload (${offload.policy.name}@${offload.policy.version}):` }),
          kv([
            ["rho", num(o.rho, 2)],
            ["delay", `${num(o.expected_delay_s * 1000, 1)} ms`],
            ["deadline", `${num(o.deadline_s * 1000, 0)} ms`],
            ["met", o.deadline_met ? "yes" : "no"],
            ["energy", `${num(o.expected_energy_j, 3)} J`],
            ["cost", num(o.expected_cost, 3)],
          ]),
        );
      }
    } else {
      const index = state.serverIds.indexOf(target.id);
      const cache = serverCache(index);
      body.append(
        kv([
          ["tier", state.servers[index] ? state.servers[index].tier : "–"],
          ["hosted twins", num(st.hosted, 0)],
          ["load", `${num(st.load_bits / 8e6, 1)} MB`],
          ["L_max", cache ? `${num(cache / 8e6, 0)} MB` : "unlimited"],
          ["backlog", `${num(st.backlog_bits / 8e6, 1)} MB`],
          ["overloaded", st.overloaded ? "yes" : "no"],
          ["offloaders", num(st.offloaders, 0)],
          ["CPU", `${num(st.f_hz / 1e9, 1)} GHz`],
        ]),
      );
      body.append(el("h3", { text: "load vs forecast (MB)" }));
      const mini = el("canvas", { class: "mini" });
      body.append(mini, el("p", { class: "muted small", text: `solid: load · dashed: forecast (${state.loadSource})` }));
      const hist = state.serverHistory.get(index) || [];
      requestAnimationFrame(() => {
        mini.dataset.points = drawLine(
          mini,
          [
            { points: hist.map(([t, l]) => [t, l / 8e6]), colour: "#5fa8ff" },
            { points: hist.map(([t, , f]) => [t, f / 8e6]), colour: "#ffffff", dash: [4, 3] },
          ],
          "#5fa8ff",
          { zero: true, refLine: cache ? cache / 8e6 : undefined },
        );
      });
      body.append(el("h3", { text: `window: last ${twin.history.length} ticks` }));
      const table = el("table", {}, [el("tr", {}, ["tick", "load MB", "hosted", "overloaded"].map((t) => el("th", { text: t })))]);
      for (const h of twin.history) {
        const v = h.values;
        table.append(el("tr", {}, [h.tick, num(v.load_bits / 8e6, 1), num(v.hosted, 0), v.overloaded ? "yes" : ""].map((t) => el("td", { text: String(t) }))));
      }
      body.append(table);
    }
  }

  // ---- what-if events ---------------------------------------------------------------------------
  const OUT_FILL = "#4a525c";
  const OUT_STROKE = "#aab4be";
  const EVENT_POLL_MS = 2000;

  function describeEvent(e) {
    const what = e.kind.replace("_", " ");
    const target = e.server || (e.kind.startsWith("uav") ? "every UAV" : e.kind === "channel" ? "every link" : "");
    const factor = e.factor !== undefined && e.factor !== null ? ` ×${e.factor}` : "";
    const until = e.end_s !== null && e.end_s !== undefined && e.status === "active" ? ` until ${Math.round(e.end_s)} s` : "";
    return `${what} ${target}${factor}${until}`.replace(/\s+/g, " ").trim();
  }

  function applyEvents(events) {
    state.events = events;
    const out = new Set();
    const active = events.filter((e) => e.status === "active");
    for (const e of active) {
      if (e.kind === "server_outage" || (e.kind === "uav_recall" && e.server)) {
        const k = state.serverIds.indexOf(e.server);
        if (k >= 0) out.add(k);
      } else if (e.kind === "uav_recall") {
        state.serverTiers.forEach((t, k) => { if (t === "uav") out.add(k); });
      }
    }
    state.outServers = out;
    const banner = $("whatif-banner");
    banner.hidden = active.length === 0;
    $("whatif-list").textContent = active.map((e) => `#${e.id} ${describeEvent(e)}${e.note ? ` (${e.note})` : ""}`).join(" · ");
    const list = $("event-list");
    list.replaceChildren(...events.slice(-8).reverse().map((e) => {
      const li = el("li", { "data-status": e.status }, [el("span", { text: `#${e.id} ${describeEvent(e)} · ${e.status}${e.reason ? ` (${e.reason})` : ""}` })]);
      if ((e.status === "active" || e.status === "pending") && !e.end_requested) {
        const button = el("button", { type: "button", text: "end" });
        button.addEventListener("click", () => endEvent(e.id));
        li.append(button);
      }
      return li;
    }));
    requestDraw();
  }

  async function pollEvents() {
    try {
      const body = await getJson(new URL("v1/events", API), { headers: headers(), cache: "no-store" });
      applyEvents(body.events);
    } catch (err) {
      $("event-result").textContent = `events unavailable: ${err.message}`;
    }
  }
  setInterval(pollEvents, EVENT_POLL_MS);

  function fillServerChoice() {
    const select = $("event-server");
    const kind = $("event-kind").value;
    const keep = select.value;
    const tiers = kind.startsWith("uav") ? ["uav"] : ["rsu", "uav", "satellite"];
    const options = [];
    if (kind !== "server_outage") options.push(el("option", { value: "", text: kind.startsWith("uav") ? "every UAV" : "all" }));
    state.serverIds.forEach((id, k) => { if (tiers.includes(state.serverTiers[k])) options.push(el("option", { value: id, text: id })); });
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
    select.disabled = kind === "demand_scale";
    $("event-factor").disabled = !(kind === "demand_scale" || kind === "channel");
    $("event-duration").disabled = kind === "uav_launch";
  }
  $("event-kind").addEventListener("change", fillServerChoice);

  async function sendEvent(method, path, body) {
    const response = await fetch(new URL(path, API), {
      method,
      headers: headers(body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = Array.isArray(answer.detail)
        ? answer.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
        : answer.detail || `HTTP ${response.status}`;
      throw new Error(detail);
    }
    return answer;
  }

  $("event-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const kind = $("event-kind").value;
    const body = { kind };
    const server = $("event-server").value;
    if (server && kind !== "demand_scale") body.server = server;
    if (kind === "demand_scale" || kind === "channel") body.factor = Number($("event-factor").value);
    const duration = $("event-duration").value;
    if (duration && kind !== "uav_launch") body.duration_s = Number(duration);
    try {
      const made = await sendEvent("POST", "v1/events", body);
      $("event-result").textContent = `event #${made.id} posted: in force from the bridge's next tick`;
    } catch (err) {
      $("event-result").textContent = `refused: ${err.message}`;
    }
    pollEvents();
  });

  async function endEvent(id) {
    try {
      await sendEvent("DELETE", `v1/events/${encodeURIComponent(id)}`);
      $("event-result").textContent = `event #${id}: ends at the bridge's next tick`;
    } catch (err) {
      $("event-result").textContent = `could not end #${id}: ${err.message}`;
    }
    pollEvents();
  }

  // ---- pause ------------------------------------------------------------------------------------
  const held = [];
  state.paused = false;
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").setAttribute("aria-pressed", String(state.paused));
    $("pause").textContent = state.paused ? "resume" : "pause";
    if (!state.paused) for (const [event, body] of held.splice(0)) dispatch(event, body);
  });

  // ---- cities -----------------------------------------------------------------------------------
  // The picker shows every city (run) in the service's Redis; picking one opens the page for it.
  let citiesTimer = null;
  async function loadCities() {
    clearTimeout(citiesTimer); // one refresh loop, however often it is started (the key form starts it again)
    try {
      const list = await getJson(new URL("v1/cities", API), { headers: headers(), cache: "no-store" });
      const current = CITY || list.default;
      const picker = $("city");
      const options = list.cities.map((c) => {
        const vehicles = c.n_vehicles === null ? "no tick yet" : `${c.n_vehicles} vehicles`;
        const scenario = c.scenario && c.scenario !== c.name ? `${c.scenario}, ` : "";
        return el("option", { value: c.name, text: `${c.name} (${scenario}${vehicles})` });
      });
      if (!list.cities.some((c) => c.name === current)) options.push(el("option", { value: current, text: `${current} (gone)` }));
      picker.replaceChildren(...options);
      picker.value = current;
      picker.dataset.default = list.default;
      $("city-pick").hidden = false;
      document.title = `twin-service · ${current} · live`;
    } catch (err) {
      // an older service, or reads need a key not yet given: no picker, the page serves its one city
    }
    clearTimeout(citiesTimer); // a call that finished first scheduled one already
    citiesTimer = setTimeout(loadCities, CITIES_REFRESH_MS);
  }
  $("city").addEventListener("change", () => {
    const name = $("city").value;
    const params = new URLSearchParams(window.location.search);
    if (name === $("city").dataset.default) params.delete("city");
    else params.set("city", name);
    const query = params.toString();
    window.location.assign(window.location.pathname + (query ? `?${query}` : ""));
  });

  // ---- start ------------------------------------------------------------------------------------
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apiKey = $("key-input").value.trim();
    sessionStorage.setItem(KEY_STORE, apiKey);
    connect();
    loadCities();
  });
  connect();
  loadCities();
})();

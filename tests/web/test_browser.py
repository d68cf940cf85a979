"""End to end in a real browser, against the web stack of a live city run (``conftest.py``).

* The dashboard: from the DOM and from screenshots, vehicles, servers and chart points are drawn and change
  between two ticks; a click on a vehicle shows its twin, its window and its last decision.
* The API docs render from the service's own files.
* noVNC connects by itself and shows sumo-gui's picture with the migration overlay.

No page may fetch anything from anywhere but the stack itself.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest

from tests.web.conftest import API_KEY, PREDICTOR, WebStack, get_json
from twin_service.policies import DEFAULT_MIGRATION_POLICY

pytestmark = pytest.mark.gui

RSU_BLUE = (0, 90, 255)
TIER_RGB = {"rsu": RSU_BLUE, "uav": (255, 140, 0), "satellite": (166, 75, 224)}
LATENCY_LINE = (0x5F, 0xA8, 0xFF)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return np.abs(img - np.array(rgb)).max(axis=2) <= tol


def _only_local(urls: list[str], *roots: str) -> list[str]:
    return [u for u in urls if not u.startswith(roots) and not u.startswith("data:")]


READ_VIEW = """() => {
  const d = window.twinDashboard;
  const map = document.getElementById('map');
  const vehicles = [...d.vehicles.entries()].map(([id, v]) => ({
    id, x: v.x, y: v.y, tier: d.serverTiers[v.host], failed: v.failed, at: d.screenPosition(id),
  }));
  const servers = d.servers.map((s, k) => ({id: s.id, tier: s.tier, at: d.serverScreenPosition(k)}));
  return {
    tick: +map.dataset.tick, drawnVehicles: +map.dataset.vehicles, drawnServers: +map.dataset.servers,
    links: +map.dataset.links, vehicles, servers,
    points: [...document.querySelectorAll('canvas.chart')].map(c => +c.dataset.points),
    bars: +document.getElementById('loads').dataset.bars,
    forecasts: +document.getElementById('loads').dataset.forecasts,
  };
}"""


def _frozen_view(page: Any) -> tuple[dict, np.ndarray]:
    """Pause the dashboard (its own pause button), let it finish drawing, read the DOM and take a screenshot
    of the same picture, then resume."""
    page.click("#pause")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    view = page.evaluate(READ_VIEW)
    shot = _pixels(page.screenshot())
    page.click("#pause")
    return view, shot


def _check_picture(view: dict, shot: np.ndarray) -> None:
    h, w, _ = shot.shape

    def inside(at: list[float] | None) -> bool:
        return at is not None and 3 <= at[0] < w - 3 and 3 <= at[1] < h - 3

    vehicles = [v for v in view["vehicles"] if inside(v["at"]) and not v["failed"]]
    assert vehicles, "no vehicle on screen"
    hits = sum(_near(shot[int(v["at"][1]), int(v["at"][0])][None, None], TIER_RGB[v["tier"]])[0, 0] for v in vehicles)
    # A vehicle under a server marker or under another vehicle shows that one's colour instead.
    assert hits >= 0.7 * len(vehicles), f"{hits} of {len(vehicles)} vehicles show their host tier's colour"
    rsus = [s for s in view["servers"] if s["tier"] == "rsu" and inside(s["at"])]
    assert rsus
    loaded = 0
    for s in rsus:  # filled green (idle) through yellow to red (at L_max): never blue, never background
        r, g, b = shot[int(s["at"][1]), int(s["at"][0])]
        loaded += int(b < 80 and (g > 120 or r > 200))
    assert loaded >= 0.8 * len(rsus), f"{loaded} of {len(rsus)} RSU markers show a load colour"


def test_dashboard_draws_the_live_run_and_follows_it(browser: Any, web_stack: WebStack):
    servers_total = get_json(f"{web_stack.api}/v1/twins/servers?limit=1")["total"]
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{web_stack.api}/dashboard/#key={API_KEY}")  # the stream needs the key: given in the fragment
        page.wait_for_function(
            "() => +document.getElementById('map').dataset.vehicles > 0 && "
            "[...document.querySelectorAll('canvas.chart')].every(c => +c.dataset.points >= 2)",
            timeout=60_000,
        )
        first, shot1 = _frozen_view(page)
        page.wait_for_function(f"() => +document.getElementById('map').dataset.tick >= {first['tick'] + 2}")
        second, shot2 = _frozen_view(page)
        label = page.text_content("#load-source")
        banner_hidden = page.locator("#banner").is_hidden()
        status = page.text_content("#status")
    finally:
        page.close()
    assert not errors, errors
    assert not _only_local(requests, web_stack.api), "the dashboard fetched from elsewhere"
    # The forecast is labelled with what serves it: the workload predictor, by name.
    assert label.startswith(f"forecast: forecast by predictor {PREDICTOR}@"), label
    assert banner_hidden and status == "live"  # a healthy run: no banner

    for view in (first, second):
        assert view["drawnVehicles"] == len(view["vehicles"]) > 0
        assert view["drawnServers"] == servers_total == len(view["servers"])
        assert view["links"] > 0
        assert view["bars"] > 0 and view["forecasts"] == view["bars"]
        _check_picture(view, view_shot := (shot1 if view is first else shot2))
        assert _near(view_shot, LATENCY_LINE, 30).sum() > 20, "the latency chart has no line"
    assert second["tick"] >= first["tick"] + 2
    assert all(b > a for a, b in zip(first["points"], second["points"], strict=True)), (first, second)
    before = {v["id"]: (v["x"], v["y"]) for v in first["vehicles"]}
    moved = [v for v in second["vehicles"] if v["id"] in before and before[v["id"]] != (v["x"], v["y"])]
    assert moved, "no vehicle moved between the two ticks"
    changed = np.abs(shot1 - shot2).max(axis=2) > 30
    assert changed.mean() > 0.0005, "the picture did not change between the ticks"


def test_a_click_on_a_vehicle_shows_its_twin_window_and_decision(browser: Any, web_stack: WebStack):
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    try:
        page.goto(f"{web_stack.api}/dashboard/#key={API_KEY}")
        page.wait_for_function("() => +document.getElementById('map').dataset.vehicles > 3", timeout=60_000)
        page.click("#pause")
        page.evaluate("() => new Promise(r => requestAnimationFrame(r))")
        # A vehicle clear of server markers (a click near a server selects the server).
        target = page.evaluate(
            """() => {
              const d = window.twinDashboard;
              const servers = d.servers.map((s, k) => d.serverScreenPosition(k));
              for (const id of d.vehicles.keys()) {
                const p = d.screenPosition(id);
                if (p && servers.every(q => Math.hypot(q[0] - p[0], q[1] - p[1]) > 14)) return {id, p};
              }
              return null;
            }"""
        )
        assert target is not None
        page.mouse.click(*target["p"])
        page.click("#pause")  # resume: the detail follows the live run
        page.wait_for_selector("#detail-body .prob", timeout=20_000)
        title = page.text_content("#detail-title")
        window_rows = page.locator("#detail-body table tr").count()
        mask_cells = page.locator("#detail-body .mask i").count()
        feasible = page.locator("#detail-body .mask i.ok").count()
        probabilities = page.locator("#detail-body .prob > span:nth-child(3n)").all_text_contents()
        body_text = page.text_content("#detail-body")
    finally:
        page.close()
    assert title == f"vehicle {target['id']}"
    assert window_rows >= 3  # header, at least one tick of the window, the window mean
    servers_total = get_json(f"{web_stack.api}/v1/twins/servers?limit=1")["total"]
    assert mask_cells == servers_total and 1 <= feasible <= servers_total
    shown = [float(p) for p in probabilities]  # the eight likeliest feasible servers, likeliest first
    assert shown == sorted(shown, reverse=True) and all(0.0 <= p <= 1.0 for p in shown)
    assert len(shown) == min(feasible, 8)
    if feasible <= 8:
        assert sum(shown) == pytest.approx(1.0, abs=0.01)
    assert f"migration ({DEFAULT_MIGRATION_POLICY}@" in body_text and "offload (nearest-least-loaded@" in body_text


def test_api_docs_render_from_local_files(browser: Any, web_stack: WebStack):
    page = browser.new_page()
    requests: list[str] = []
    failed: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        page.goto(f"{web_stack.api}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_text_contents()
    finally:
        page.close()
    assert not failed, failed
    assert not _only_local(requests, web_stack.api), "the docs fetched from elsewhere"
    assert any(r.endswith("/static/swagger-ui/swagger-ui-bundle.js") for r in requests)
    assert "/v1/stream" in [p.replace("\u200b", "") for p in paths]


def test_novnc_shows_sumo_gui_with_the_overlay(browser: Any, web_stack: WebStack):
    page = browser.new_page(viewport={"width": 1280, "height": 1024})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{web_stack.novnc}/vnc.html?autoconnect=1&resize=scale")
        page.wait_for_function("() => document.documentElement.classList.contains('noVNC_connected')", timeout=30_000)
        size = page.evaluate("() => ['width', 'height'].map(k => document.querySelector('#noVNC_container canvas')[k])")
        time.sleep(1.5)  # the first full framebuffer update
        canvas = page.locator("#noVNC_container canvas")
        shot1 = _pixels(canvas.screenshot())
        time.sleep(2.0)
        shot2 = _pixels(canvas.screenshot())
    finally:
        page.close()
    assert not _only_local(requests, web_stack.novnc, web_stack.novnc.replace("http", "ws"))
    assert size == [1280, 1024], "the canvas is not the Xvfb screen"
    # sumo-gui's white view with the overlay: host lines in the RSU tier's blue, server markers green to red.
    assert _near(shot1, (255, 255, 255), 10).mean() > 0.2
    assert _near(shot1, RSU_BLUE).sum() > 150, "no host lines in the RSU tier's colour"
    assert (_near(shot1, (0, 200, 0), 60) | _near(shot1, (255, 200, 0), 60)).sum() > 30, "no load-coloured servers"
    assert (np.abs(shot1 - shot2).max(axis=2) > 30).sum() > 20, "sumo-gui's picture does not move"


def test_the_dashboard_shows_a_banner_while_the_service_cannot_decide(
    browser: Any, redis_server: Any, key_prefix: str, tmp_path: Any
):
    """Ticks whose run records are missing (a Redis emptied under the run, before the bridge's next tick): a
    visible banner says the service is degraded and why; once the records are back it goes away."""
    import socket

    from tests.api.conftest import LAYOUT, fleet_frame
    from twin_service.api import create_app
    from twin_service.api.serve import ApiThread
    from twin_service.config import Settings
    from twin_service.twins import TwinStore

    store = TwinStore(redis_server.new_client(), key_prefix)
    rng = np.random.default_rng(0)
    store.write_tick(fleet_frame(1, 30, rng))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path)
    api = ApiThread(create_app(settings), "127.0.0.1", port).start()
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    try:
        page.goto(f"{api.url}/dashboard/")
        page.wait_for_selector("#banner:not([hidden])", timeout=20_000)
        title = page.text_content("#banner-title")
        reasons = page.locator("#banner-reasons li").all_text_contents()
        shot = _pixels(page.locator("#banner").screenshot())
        # The bridge's next tick puts the records back: the banner goes, the run shows.
        store.begin_run("test-fleet", "0123456789abcdef", LAYOUT)
        store.write_tick(fleet_frame(2, 30, rng))
        page.wait_for_selector("#banner", state="hidden", timeout=20_000)
        page.wait_for_function("() => +document.getElementById('map').dataset.vehicles > 0", timeout=20_000)
    finally:
        page.close()
        api.stop()
        store.clear()
    assert title.startswith("Degraded")
    assert any("no edge-server layout is stored" in r for r in reasons), reasons
    assert any("metadata is missing" in r for r in reasons), reasons
    assert shot.shape[0] > 20 and _near(shot, (0x5A, 0x4A, 0x12), 12).mean() > 0.5  # the banner's amber


def test_the_dashboard_picks_a_city(browser: Any, redis_server: Any, key_prefix: str, tmp_path: Any):
    """Two bridges' runs in one Redis: the picker lists both, the service's own is shown first, and picking the
    other opens the page on it (its scenario, its vehicles, its twins)."""
    import socket

    from tests.api.conftest import LAYOUT, fleet_frame
    from twin_service.api import create_app
    from twin_service.api.serve import ApiThread
    from twin_service.config import Settings
    from twin_service.twins import TwinStore

    rng = np.random.default_rng(2)
    stores = []
    for name, scenario, n in ((key_prefix, "test-fleet", 30), (key_prefix + ".rural", "rural", 7)):
        store = TwinStore(redis_server.new_client(), name)
        store.begin_run(scenario, "0123456789abcdef", LAYOUT)
        for t in (1, 2):
            store.write_tick(fleet_frame(t, n, rng, vehicle_ids=[f"{scenario}-{k}" for k in range(n)]))
        stores.append(store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path)
    api = ApiThread(create_app(settings), "127.0.0.1", port).start()
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{api.url}/dashboard/")
        page.wait_for_selector("#city-pick:not([hidden])", timeout=20_000)
        page.wait_for_function("() => +document.getElementById('map').dataset.vehicles === 30", timeout=20_000)
        options = page.locator("#city option").all_text_contents()
        first = (page.input_value("#city"), page.text_content("#scenario"))
        page.select_option("#city", key_prefix + ".rural")
        page.wait_for_url(f"**/dashboard/?city={key_prefix}.rural", timeout=20_000)
        page.wait_for_function("() => +document.getElementById('map').dataset.vehicles === 7", timeout=20_000)
        second = (page.input_value("#city"), page.text_content("#scenario"), page.title())
        twin_ids = page.evaluate("() => [...window.twinDashboard.vehicles.keys()].sort()")
    finally:
        page.close()
        api.stop()
        for store in stores:
            store.clear()
    assert not errors, errors
    # Other tests' runs may share the session's Redis: this test's two cities are listed, in this order.
    mine = [o for o in options if o.startswith(key_prefix)]
    assert mine == [f"{key_prefix} (test-fleet, 30 vehicles)", f"{key_prefix}.rural (rural, 7 vehicles)"]
    assert first == (key_prefix, "test-fleet")
    assert second == (key_prefix + ".rural", "rural", f"twin-service · {key_prefix}.rural · live")
    assert twin_ids == sorted(f"rural-{k}" for k in range(7))


def test_the_dashboard_injects_an_outage_shows_it_and_a_vehicles_logged_decisions(
    browser: Any, redis_server: Any, key_prefix: str, tmp_path: Any
):
    """The what-if controls post an outage; once the bridge has it in force (its course, written here as the bridge
    writes it: the bridge's part is tests/bridge/test_whatif.py) a banner names it and the server is greyed; a
    click on a vehicle shows its recent decisions from the decision log."""
    import json
    import socket

    from tests.api.conftest import LAYOUT, fleet_frame
    from tests.api.test_events import _log
    from twin_service.api import create_app
    from twin_service.api.serve import ApiThread
    from twin_service.config import Settings
    from twin_service.twins import TwinStore

    store = TwinStore(redis_server.new_client(), key_prefix)
    rng = np.random.default_rng(0)
    store.begin_run("test-fleet", "0123456789abcdef", LAYOUT)
    frames = [fleet_frame(t, 30, rng) for t in (1, 2, 3)]
    for frame in frames:
        store.write_tick(frame)
    _log(store, range(1, 4), frames[-1].vehicle_ids)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path)
    api = ApiThread(create_app(settings), "127.0.0.1", port).start()
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    try:
        page.goto(f"{api.url}/dashboard/")
        page.wait_for_function("() => +document.getElementById('map').dataset.vehicles > 0", timeout=20_000)
        assert page.is_hidden("#whatif-banner")
        page.select_option("#event-kind", "server_outage")
        page.select_option("#event-server", "rsu_1")
        page.fill("#event-duration", "60")
        page.click("#event-form button[type=submit]")
        page.wait_for_function("() => /posted/.test(document.getElementById('event-result').textContent)")
        events = get_json(f"{api.url}/v1/events")["events"]
        assert [(e["kind"], e["server"], e["duration_s"], e["status"]) for e in events] == [
            ("server_outage", "rsu_1", 60.0, "pending")
        ]
        course = {"status": "active", "start_tick": 4, "start_s": 4.0, "end_s": 64.0}
        store.redis.hset(store.keys.events_state, events[0]["id"], json.dumps(course))
        page.wait_for_selector("#whatif-banner:not([hidden])", timeout=10_000)
        banner = page.text_content("#whatif-banner")
        page.wait_for_function("() => document.getElementById('map').dataset.outServers === 'rsu_1'")
        page.click("#pause")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        where = page.evaluate("() => window.twinDashboard.serverScreenPosition(1)")
        shot = _pixels(page.screenshot())
        x, y = int(where[0]), int(where[1])  # page positions
        marker = shot[y - 3 : y + 4, x - 3 : x + 4]
        banner_shot = _pixels(page.locator("#whatif-banner").screenshot())
        target = page.evaluate(
            """() => {
              const d = window.twinDashboard;
              const servers = d.servers.map((s, k) => d.serverScreenPosition(k));
              for (const id of d.vehicles.keys()) {
                const p = d.screenPosition(id);
                const seen = p && p[0] > 10 && p[1] > 10 && p[0] < innerWidth - 10 && p[1] < innerHeight - 10;
                if (seen && servers.every(q => Math.hypot(q[0] - p[0], q[1] - p[1]) > 14)) return {id, p};
              }
              return null;
            }"""
        )
        page.click("#pause")
        page.mouse.click(*target["p"])
        page.wait_for_selector("#detail-body table.declog tr:nth-child(4)", timeout=20_000)
        logged = page.locator("#detail-body table.declog tr").all_text_contents()
    finally:
        page.close()
        api.stop()
        store.clear()
    assert "What-if in force" in banner and "server outage rsu_1" in banner and "until 64 s" in banner
    assert _near(banner_shot, (0x3B, 0x2A, 0x55), 12).mean() > 0.5  # the banner's violet
    assert (_near(marker, (0x4A, 0x52, 0x5C), 20) | _near(marker, (0xAA, 0xB4, 0xBE), 20)).mean() > 0.5  # greyed
    assert logged[0].startswith("tick") and [row.split()[0][:1] for row in logged[1:]] == ["3", "2", "1"]

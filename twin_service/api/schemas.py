"""Request and response bodies of the API (pydantic), with examples for the OpenAPI document.

Large responses (decisions for many vehicles, the batch) are written straight to JSON by the routes
without building these models; the models still document the shape, and the tests check the JSON
against the OpenAPI schema generated from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SERVERS_PER_REQUEST = 1024
"""Stateless mode: most servers a request may carry (the city scenario has about 100)."""

TwinId = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\n\x00]+$")]
CellValue = float | str | None
"""A twin's column value: numeric columns give numbers (null when not finite), text columns strings."""


class _Body(BaseModel):
    # JSON has no NaN or Infinity, but Python's parser reads them (and 1e999 as infinity): refuse them by name.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorBody(BaseModel):
    detail: str = Field(examples=["no vehicle 'veh42' at tick 120"])


# --------------------------------------------------------------------------------------------
# Health, ticks, KPIs
# --------------------------------------------------------------------------------------------


class PolicyInfo(BaseModel):
    kind: Literal["migration", "offload"]
    name: str = Field(examples=["least-loaded"])
    version: str = Field(examples=["1"])
    source: Literal["heuristic", "model"] = "heuristic"


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="ok: able to decide now; degraded: Redis answers but no decision can be made (see reasons); "
        "unavailable: Redis is not configured or unreachable."
    )
    redis: Literal["ok", "unreachable", "not configured"]
    detail: str = ""
    reasons: list[str] = Field(default_factory=list, description="Why the service cannot decide (degraded).")
    latest_tick: int | None = Field(default=None, examples=[120])
    latest_tick_age_s: float | None = Field(default=None, description="Wall-clock age of the latest tick.")
    recent_ticks: int = Field(0, description="Recent ticks in the KPI log over which fallback ticks are counted.")
    recent_fallback_ticks: int = Field(
        0, description="Of those, the ticks the bridge decided locally (it got no decision from a service)."
    )
    checked_at: float | None = Field(default=None, description="Unix time of this check.")
    defaults: list[PolicyInfo] = Field(description="The policies used when a request names none.")
    policies: list[PolicyInfo] = Field(description="Every policy a request may name.")


class TickInfo(BaseModel):
    tick: int = Field(examples=[120])
    sim_time_s: float = Field(examples=[120.0])
    wall_time: float = Field(description="Unix time the bridge took the tick.", examples=[1.7e9])
    age_s: float = Field(description="Wall-clock seconds since the tick was taken.")
    n_vehicles: int
    n_servers: int
    vehicle_columns: list[str]
    server_columns: list[str]
    kpis: dict[str, float | None] = Field(examples=[{"latency_mean_s": 0.52, "packet_loss": 0.01}])


class CityOut(BaseModel):
    name: str = Field(description="The key prefix its bridge writes under: pass it as `?city=`.", examples=["hamburg"])
    scenario: str | None = Field(description="The scenario its run simulates.", examples=["city"])
    latest_tick: int | None = Field(description="Its latest tick (null before the first).", examples=[120])
    sim_time_s: float | None = None
    n_vehicles: int | None = None
    age_s: float | None = Field(None, description="Wall-clock seconds since its latest tick was taken.")


class CityList(BaseModel):
    default: str = Field(description="The city served when a request names none (`TWIN_KEY_PREFIX`).")
    cluster: bool = Field(description="Whether the service reads a Redis Cluster.")
    cities: list[CityOut] = Field(description="Every run in this Redis, by name; the default one always.")


class KpiSampleOut(BaseModel):
    tick: int
    sim_time_s: float
    wall_time: float
    kpis: dict[str, float | None]


class KpiHistory(BaseModel):
    samples: list[KpiSampleOut] = Field(description="Oldest first.")


# --------------------------------------------------------------------------------------------
# Twins
# --------------------------------------------------------------------------------------------


class TwinRow(BaseModel):
    id: str
    state: dict[str, CellValue]


class TwinPage(BaseModel):
    tick: int
    total: int = Field(description="Twins of this kind at the tick.")
    offset: int
    limit: int
    items: list[TwinRow]


class TwinStateOut(BaseModel):
    tick: int
    sim_time_s: float
    values: dict[str, CellValue]


class TwinDetail(BaseModel):
    id: str = Field(examples=["veh42"])
    kind: Literal["vehicle", "server"]
    tick: int
    sim_time_s: float
    state: dict[str, CellValue] = Field(examples=[{"lon": 9.99, "lat": 53.55, "host_index": 3.0}])
    history: list[TwinStateOut] = Field(description="States over the sliding window (10 s), oldest first.")
    window_mean: dict[str, float | None] = Field(description="Paper B Eq. 37: numeric columns over the window.")


# --------------------------------------------------------------------------------------------
# Stateless observations
# --------------------------------------------------------------------------------------------


class ServerIn(_Body):
    """One candidate host, as the layout and the tick's server twins describe it."""

    id: TwinId
    tier: Literal["rsu", "uav", "satellite"]
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    altitude_m: float = Field(0.0, ge=0, le=1e8)
    range_m: float = Field(gt=0, le=1e12, description="D_max; use 1e12 for the satellite.")
    cache_mb: float = Field(gt=0, le=1e12, description="L_max in MB (10**6 bytes).")
    cpu_hz: float = Field(32e9, gt=0, le=1e15, description="C_m (paper A).")
    load_bits: float = Field(0.0, ge=0, le=1e18, description="Current (or predicted) load S'_m.")
    f_hz: float = Field(3e9, gt=0, le=1e15, description="Paper B RSU CPU f_m, for offloading.")
    offloaders: float = Field(0.0, ge=0, le=1e6, description="Vehicles that offloaded to it last tick.")


class VehicleIn(_Body):
    id: TwinId
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    host_index: int = Field(-1, ge=-1, description="Index of the current host in `servers`; -1: none yet.")


class OffloadVehicleIn(VehicleIn):
    """A vehicle with its current task (paper B twin, Eq. 3)."""

    f_hz: float = Field(gt=0, le=1e12, description="On-board CPU f_n.", examples=[2e9])
    r_bps: float = Field(gt=0, le=1e12, description="Rate to its host r_n.", examples=[4e7])
    data_bits: float = Field(ge=0, le=1e12, description="Task size D_n.", examples=[8e6])
    cycles: float = Field(ge=0, le=1e15, description="Task CPU cycles C_n.", examples=[1e9])
    deadline_s: float = Field(gt=0, le=1e6, description="Task deadline T_n.", examples=[0.5])
    speed_mps: float = Field(0.0, ge=0, le=200)
    energy_frac: float = Field(1.0, ge=0, le=1, description="Remaining energy E_n / capacity.")


def _check_fleet(vehicles: list[VehicleIn], servers: list[ServerIn]) -> None:
    if sum(s.tier == "satellite" for s in servers) != 1:
        raise ValueError("servers must include exactly one satellite (the host that is never masked)")
    ids = [s.id for s in servers]
    if len(set(ids)) != len(ids):
        raise ValueError("server ids must be unique")
    vids = [v.id for v in vehicles]
    if len(set(vids)) != len(vids):
        raise ValueError("vehicle ids must be unique")
    bad = [v.id for v in vehicles if v.host_index >= len(servers)]
    if bad:
        raise ValueError(f"host_index out of range of the {len(servers)} servers for vehicles {bad[:5]}")


class MigrationObservationIn(_Body):
    """The twins a migration decision is made from, when the request does not name a stored tick."""

    servers: list[ServerIn] = Field(min_length=2, max_length=MAX_SERVERS_PER_REQUEST)
    vehicles: list[VehicleIn] = Field(min_length=1)
    incoming_bits: float | None = Field(
        None, ge=0, le=1e15, description="S_v, what hosting a twin adds to a server; default: the scenario's."
    )

    @model_validator(mode="after")
    def _consistent(self) -> MigrationObservationIn:
        _check_fleet(self.vehicles, self.servers)
        return self


class OffloadObservationIn(_Body):
    """The twins an offloading decision is made from, when the request does not name a stored tick."""

    servers: list[ServerIn] = Field(min_length=2, max_length=MAX_SERVERS_PER_REQUEST)
    vehicles: list[OffloadVehicleIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> OffloadObservationIn:
        _check_fleet(self.vehicles, self.servers)
        return self


_STATELESS_EXAMPLE = {
    "servers": [
        {"id": "rsu_0", "tier": "rsu", "lon": 9.990, "lat": 53.550, "range_m": 1200, "cache_mb": 300},
        {"id": "rsu_1", "tier": "rsu", "lon": 10.005, "lat": 53.552, "range_m": 1200, "cache_mb": 300},
        {
            "id": "sat",
            "tier": "satellite",
            "lon": 10.0,
            "lat": 53.55,
            "altitude_m": 550000,
            "range_m": 1e12,
            "cache_mb": 1e9,
        },
    ],
    "vehicles": [{"id": "veh0", "lon": 9.992, "lat": 53.551, "host_index": 0}],
}


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


class MigrationRequest(_Body):
    """Decide the next host of vehicles' twins: from a stored tick (default: the latest) or a given observation."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {"vehicle_ids": ["veh0", "veh1"]},
                {"tick": 120, "policy": "greedy"},
                {"observation": _STATELESS_EXAMPLE},
            ]
        },
    )

    tick: int | None = Field(None, ge=0, description="Stored tick to decide from; default the latest.")
    vehicle_ids: list[TwinId] | None = Field(None, description="Vehicles to return; default all of the tick.")
    policy: str | None = Field(None, max_length=64, description="Migration policy name; default the service's.")
    observation: MigrationObservationIn | None = Field(None, description="Stateless mode: decide from these twins.")

    @model_validator(mode="after")
    def _one_source(self) -> MigrationRequest:
        if self.observation is not None and self.tick is not None:
            raise ValueError("give either tick or observation, not both")
        return self


class OffloadRequest(_Body):
    """Decide the offloaded fraction of vehicles' tasks, from a stored tick or a given observation."""

    tick: int | None = Field(None, ge=0, description="Stored tick to decide from; default the latest.")
    vehicle_ids: list[TwinId] | None = Field(None, description="Vehicles to return; default all of the tick.")
    policy: str | None = Field(None, max_length=64, description="Offloading policy name; default the service's.")
    observation: OffloadObservationIn | None = Field(None, description="Stateless mode: decide from these twins.")

    @model_validator(mode="after")
    def _one_source(self) -> OffloadRequest:
        if self.observation is not None and self.tick is not None:
            raise ValueError("give either tick or observation, not both")
        return self


class BatchRequest(_Body):
    """Both decisions for every vehicle of a stored tick, as arrays (what the bridge calls each tick)."""

    tick: int | None = Field(None, ge=0, description="Stored tick; default the latest.")
    migration_policy: str | None = Field(None, max_length=64)
    offload_policy: str | None = Field(None, max_length=64)
    include_expected: bool = Field(
        False, description="Also return the expected delay, energy, cost and deadline success of each rho."
    )
    log: bool = Field(
        False,
        description="Also return `decision_log`: every decision packed as the decision log keeps it (the bridge asks "
        "for it and appends it to the log with the decisions it applied).",
    )


class PolicyRef(BaseModel):
    name: str
    version: str


class MigrationDecisionOut(BaseModel):
    vehicle_id: str
    host_index: int = Field(description="Current host (-1: none yet).")
    target_index: int = Field(description="Index of the chosen server in `server_ids`.")
    target_server_id: str
    feasible_server_ids: list[str] = Field(description="Servers the mask allows (Eq. 23); the target is one.")
    probabilities: dict[str, float] = Field(
        description="Probability the policy gives each feasible server (masked servers: 0, not listed)."
    )


class MigrationResponse(BaseModel):
    tick: int | None = Field(description="The stored tick decided from; null in stateless mode.")
    sim_time_s: float | None
    policy: PolicyRef
    server_ids: list[str]
    predicted_load_bits: list[float] = Field(description="Per server (same order as `server_ids`).")
    load_source: str = Field(description="Where the predicted loads came from.")
    decisions: list[MigrationDecisionOut]


class OffloadDecisionOut(BaseModel):
    vehicle_id: str
    host_index: int
    host_server_id: str | None
    rho: float = Field(ge=0, le=1, description="Offloaded fraction of the task.")
    expected_delay_s: float | None
    expected_energy_j: float | None
    expected_cost: float | None = Field(description="Omega_n of paper B Eq. 22.")
    deadline_s: float
    deadline_met: bool


class OffloadResponse(BaseModel):
    tick: int | None
    sim_time_s: float | None
    policy: PolicyRef
    decisions: list[OffloadDecisionOut]


class ExpectedOutcome(BaseModel):
    delay_s: list[float | None]
    energy_j: list[float | None]
    cost: list[float | None]
    deadline_met: list[bool]


class BatchResponse(BaseModel):
    """Arrays aligned with ``vehicle_ids``; ``target_index`` indexes ``server_ids`` (the layout order)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tick": 120,
                    "sim_time_s": 120.0,
                    "vehicle_ids": ["veh0", "veh1"],
                    "server_ids": ["rsu_0", "rsu_1", "sat"],
                    "host_index": [0, 2],
                    "target_index": [0, 1],
                    "rho": [1.0, 0.0],
                    "expected": {
                        "delay_s": [0.31, 0.52],
                        "energy_j": [660.1, 700.0],
                        "cost": [2.05, 1.51],
                        "deadline_met": [True, False],
                    },
                    "migration_policy": {"name": "least-loaded", "version": "1"},
                    "offload_policy": {"name": "nearest-least-loaded", "version": "1"},
                    "source": "least-loaded@1+nearest-least-loaded@1",
                }
            ]
        }
    )

    tick: int
    sim_time_s: float
    vehicle_ids: list[str]
    server_ids: list[str]
    host_index: list[int]
    target_index: list[int]
    rho: list[float]
    expected: ExpectedOutcome | None = Field(description="With `include_expected`; else null.")
    migration_policy: PolicyRef
    offload_policy: PolicyRef
    source: str
    decision_log: str | None = Field(
        None,
        description="With `log`: the decisions as the decision log keeps them (base64 of a zlib-compressed record: "
        "per vehicle host, target, rho, mask size, the three best-scored servers and the target's predicted load; "
        "`twin_service.twins.declog`). Read them at `GET /v1/decisions/log`.",
    )


# --------------------------------------------------------------------------------------------
# What-if events and the decision log
# --------------------------------------------------------------------------------------------


class EventOut(BaseModel):
    """An event as posted, with its course in the run (written by the bridge in the tick it changed)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3",
                    "kind": "server_outage",
                    "server": "rsu_012",
                    "duration_s": 60.0,
                    "source": "api",
                    "posted_wall_time": 1.7e9,
                    "status": "active",
                    "start_tick": 1802,
                    "start_s": 1802.0,
                    "end_tick": None,
                    "end_s": 1862.0,
                    "reason": None,
                    "end_requested": False,
                    "end_requested_wall_time": None,
                }
            ]
        }
    )

    id: str
    kind: Literal["server_outage", "uav_recall", "uav_launch", "demand_scale", "channel"]
    server: str | None = None
    factor: float | None = None
    duration_s: float | None = Field(None, description="Simulated seconds; null: until ended.")
    at_s: float | None = Field(None, description="The sim time it was asked to start at (null: the next tick).")
    note: str | None = None
    source: str = Field("api", description="`api`, `schedule` (run --events) or `recording` (a replay).")
    posted_wall_time: float | None = None
    status: Literal["pending", "active", "ended", "refused"] = Field(
        description="pending: not applied yet; active: in force; ended; refused by the bridge (see `reason`)."
    )
    start_tick: int | None = Field(None, description="The first tick it governed.")
    start_s: float | None = None
    end_tick: int | None = Field(None, description="The first tick without it.")
    end_s: float | None = Field(None, description="When it stops (or stopped) being in force, sim seconds.")
    reason: str | None = Field(None, description="Why it ended or was refused.")
    end_requested: bool = Field(False, description="DELETE asked for it to end early.")
    end_requested_wall_time: float | None = None


class EventList(BaseModel):
    events: list[EventOut] = Field(description="Every event of the run, in the order posted.")
    active: int = Field(description="Events in force now.")
    pending: int = Field(description="Events posted or scheduled, not in force yet.")


class ScoredServer(BaseModel):
    server_id: str
    score: float = Field(description="The policy's probability for it.")


class LoggedDecision(BaseModel):
    tick: int = Field(description="The tick decided on; the decision governs the next tick.")
    sim_time_s: float
    source: str = Field(
        description="Who decided: `api:policy@version+policy@version` (the decision service), "
        "`fallback:...` (the bridge, locally) or `policy@version+...` (in-process)."
    )
    fallback: bool
    host_server_id: str | None = Field(description="The twin's host when decided (null: none yet).")
    target_server_id: str | None
    migrates: bool = Field(description="Whether the target differs from the host.")
    rho: float = Field(description="Offloaded fraction of the vehicle's task.")
    mask_size: int = Field(description="Servers its Eq. 23 mask allowed.")
    top: list[ScoredServer] = Field(description="The policy's three best-scored servers, best first.")
    predicted_load_mb: float = Field(description="The target's predicted load the policy saw, MB.")


class TickDecisions(BaseModel):
    tick: int
    sim_time_s: float
    source: str
    fallback: bool
    vehicles: int
    migrations: int = Field(description="Vehicles whose target differs from their host.")
    offloading: int = Field(description="Vehicles with rho > 0.")
    mean_rho: float | None


class LogSpan(BaseModel):
    oldest_tick: int | None = Field(description="The oldest tick the log still holds (null: empty).")
    newest_tick: int | None
    ticks: int = Field(description="Entries it holds (bounded by TWIN_DECISION_LOG_TICKS).")


class DecisionLogOut(BaseModel):
    """Per vehicle (``vehicle``) its recent decisions, or per tick a summary of all of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "vehicle_id": "veh4711",
                    "decisions": [
                        {
                            "tick": 1820,
                            "sim_time_s": 1820.0,
                            "source": "api:dm-mappo-city@1+af-marl-city@1",
                            "fallback": False,
                            "host_server_id": "rsu_012",
                            "target_server_id": "rsu_013",
                            "migrates": True,
                            "rho": 0.62,
                            "mask_size": 6,
                            "top": [
                                {"server_id": "rsu_013", "score": 0.91},
                                {"server_id": "uav_02", "score": 0.06},
                                {"server_id": "sat", "score": 0.02},
                            ],
                            "predicted_load_mb": 182.4,
                        }
                    ],
                    "ticks": None,
                    "log": {"oldest_tick": 1221, "newest_tick": 1820, "ticks": 600},
                }
            ]
        }
    )

    vehicle_id: str | None
    decisions: list[LoggedDecision] | None = Field(description="With `vehicle`: oldest first.")
    ticks: list[TickDecisions] | None = Field(description="Without `vehicle`: one summary per tick, oldest first.")
    log: LogSpan

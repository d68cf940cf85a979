"""One co-simulation tick: step SUMO, read every vehicle, move the UAVs, compute the edge servers' state.

Everything per vehicle is vectorised over the running vehicles; the physics comes from
:mod:`twin_service.physics`. The order within a tick is the digital-twin loop:

1. SUMO steps; vehicles that arrived release their state (their trip's packet loss, Eq. 15, is recorded).
2. Vehicles are read; positions go to lon/lat; UAVs move along their patrols; distances (Eq. 1-2).
3. Each vehicle's host for this tick is the target decided at the previous tick; a vehicle that just
   departed is placed on the nearest feasible server (Eq. 23 mask) with room left for it, as the default
   migration policy places movers (no herding of simultaneous departures onto one server).
4. Host changes are migrations (Eq. 10-12); server loads (Eq. 8) with backlog; latencies (Eq. 6-9, 13);
   failures (Eq. 14); backlogs drain C_m / e_v bits per second.
5. Paper B: every vehicle processes the task that arrived at the previous tick with the offloading
   fraction decided for it, offloaded to the twin's host: delay, energy, cost and deadline success
   (Eq. 5-22); energy E_n falls. Then the next task (D, C, T) arrives: the twin's ``data_bits``,
   ``cycles`` and ``deadline_s`` are that pending task, the one the next decision is about, while
   ``rho`` and the ``offload_*`` columns describe the task processed in this tick.
6. The tick becomes a :class:`~twin_service.twins.frames.TickFrame`, then decisions for the next tick are
   asked of the decision source.

The engine never talks to SUMO or Redis: a tick source (:class:`~twin_service.engine.types.TickSource`: the
bridge's live SUMO, or a recording replayed by :class:`~twin_service.engine.replay.ReplayBackend`) steps,
and whoever drives the engine stores the frame. What only serving needs (vehicles' lon/lat and the
:class:`TickFrame` for the twin store) and paper B's offloading physics can be switched off
(:class:`EngineOutputs`), so that training on a recording pays only for the physics it learns from; the
physics itself is the same code either way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from twin_service.config import BITS_PER_MB, ScenarioParams
from twin_service.engine.context import (
    Decisions,
    DecisionSource,
    EngineOutputs,
    MigrationResult,
    RunTotals,
    TickContext,
)
from twin_service.engine.offload import OffloadTick, offload_tick
from twin_service.engine.schedule import Conditions
from twin_service.engine.types import SumoTick, TickSource
from twin_service.engine.vehicles import VehicleTable, entity_uniforms, uniform_between
from twin_service.observe import (
    OffloadWindow,
    ServerTable,
    VehicleMotion,
    migration_observation,
)
from twin_service.physics import (
    access_latency_s,
    compute_latency_s,
    drain_backlog_bits,
    free_space_rate_bps,
    ground_distance_m,
    load_variance,
    migration_mask,
    migration_rate_bps,
    projected_distance_matrix_m,
    satellite_leg_delay_s,
    satellite_propagation_delay_s,
    satellite_queue_bits,
    server_load_bits,
    service_failure,
    slant_distance_m,
)
from twin_service.policies.migration import capacity_aware_nearest
from twin_service.predict import LoadForecaster, ServerLoadHistory
from twin_service.scenario.edge_servers import EdgeLayout
from twin_service.scenario.geo import NetProjection
from twin_service.scenario.uav import patrol_table_from_layout, uav_positions
from twin_service.twins.frames import TickFrame

TIER_CODES = {"rsu": 0, "uav": 1, "satellite": 2}


class Engine:
    """The per-tick state machine of the digital twin (no I/O besides stepping its tick source)."""

    def __init__(
        self,
        params: ScenarioParams,
        layout: EdgeLayout,
        projection: NetProjection,
        backend: TickSource,
        decisions: DecisionSource,
        seed: int | None = None,
        *,
        outputs: EngineOutputs = EngineOutputs(),
        forecaster: LoadForecaster | None = None,
        dynamic_mask: bool = True,
    ) -> None:
        self.params = params
        self.layout = layout
        self.projection = projection
        self.backend = backend
        self.outputs = outputs
        self.forecaster = forecaster
        self.dynamic_mask = dynamic_mask
        """False: decisions see every server as allowed (paper A's ablation without the mask, Fig. 9)."""
        """Predicts each server's load for the observation and mask (paper A Eq. 19, 23); None: the current load."""
        self.seed = params.scenario.seed if seed is None else seed
        self.tick_number = 0
        self.totals = RunTotals()
        self.vehicles = VehicleTable(params.offload, self.seed)
        self._task_rng = np.random.default_rng([self.seed, 0x7A5C])
        # The UAVs' patrol clock counts from the run's start, so a recording replayed from its middle flies
        # them where the live run had them.
        self._start_s = float(getattr(backend, "epoch_s", backend.time_s))
        self.last_sim_time_s = self._start_s
        self.expected_remaining = backend.expected_remaining()
        self._governing_fallback = False
        """Whether the decisions that govern the next tick came from the local fallback."""
        self._slots = np.zeros(0, dtype=np.int64)
        self.sumo_wall_s = 0.0
        """Wall seconds SUMO spent stepping plus reading the vehicles, over the ticks so far."""

        # Servers: static arrays, plus the UAV rows that move every tick.
        m = len(layout)
        self.server_ids = list(layout.ids)
        self.tiers = [str(t) for t in layout.tiers]
        self.tier_code = np.array([TIER_CODES[t] for t in self.tiers], dtype=np.int64)
        self._is_rsu = self.tier_code == TIER_CODES["rsu"]
        self.is_sat = self.tier_code == TIER_CODES["satellite"]
        self.sat_index = layout.satellite_index
        self.uav_idx = layout.uav_indices
        self.srv_x = layout.xy_m[:, 0].copy()
        self.srv_y = layout.xy_m[:, 1].copy()
        self.srv_lon = layout.lonlat[:, 0].copy()
        self.srv_lat = layout.lonlat[:, 1].copy()
        self.srv_alt = layout.altitude_m.copy()
        self.srv_heading = np.zeros(m)
        # The satellite's finite queue (inf elsewhere): never masked, but what overflows it is dropped and fails.
        self.queue_bits = satellite_queue_bits(self.is_sat, params.satellite.queue_mb * BITS_PER_MB)
        self.cache_bits = np.minimum(layout.cache_mb * BITS_PER_MB, self.queue_bits)
        self.cpu_hz = layout.cpu_hz.copy()
        self.patrols = patrol_table_from_layout(layout) if len(self.uav_idx) else None
        self.backlog_bits = np.zeros(m)
        self.load_bits = np.zeros(m)
        self.servers = ServerTable(
            ids=tuple(self.server_ids),
            tiers=tuple(self.tiers),
            range_m=layout.range_m,
            load_max_bits=self.cache_bits,
            cpu_hz=self.cpu_hz,
            altitude_m=self.srv_alt,
        )
        self._in_service = self.servers
        """The table with every server in service (:meth:`set_server_active` derives the current one)."""
        self.link_factor: NDArray[np.float64] | None = None
        """``(M,)`` multiplier of each server's link rates (a ``channel`` event); None: the scenario's rates."""
        self.conditions = Conditions()
        """What the schedule of events set for the current tick (:meth:`set_conditions`)."""
        self.last_sumo: SumoTick | None = None
        """What SUMO gave for the latest tick computed (``run --record`` writes it)."""
        history = params.simulation.history_window
        self.load_history = ServerLoadHistory(max(history, forecaster.window if forecaster else 1))
        self.offload_window = OffloadWindow(history) if outputs.offload else None
        # D_max and L_max as the table holds them: the satellite's unlimited (Eq. 14, 23).
        self.range_m = self.servers.range_m
        self.load_max_bits = self.servers.load_max_bits
        # Paper B's RSU twin {f_m, r_m, E_m} (Eq. 4), drawn per server from Table IV's ranges.
        o = params.offload
        draws = np.array([entity_uniforms(self.seed, s, "edge", 3) for s in self.server_ids]).reshape(m, 3)
        self.edge_f_hz = uniform_between(draws[:, 0], o.rsu_cpu_hz)
        self.edge_r_bps = uniform_between(draws[:, 1], o.rsu_rate_bps)
        self.edge_energy_j = uniform_between(draws[:, 2], o.rsu_energy_wh) * 3600.0
        self.data_bits = params.task.data_size_mb * BITS_PER_MB
        self.decisions: DecisionSource = decisions

    # ------------------------------------------------------------------------------------------
    def set_server_active(self, active: NDArray[np.bool_] | None) -> None:
        """Take servers out of service or back (None: all in service), from the next tick on.

        A server out of service is masked (Eq. 23) and a twin still on it fails (Eq. 14) until it moves:
        UAVs that have not arrived yet or have left, an RSU outage. The satellite stays the action that is
        always there; out of service, it serves nobody (every twin on it fails).
        """
        if active is None or bool(np.all(active)):
            self.servers = self._in_service
        elif not np.array_equal(active, self.servers.active):
            self.servers = self._in_service.with_active(np.asarray(active, dtype=bool))

    def set_conditions(self, conditions: Conditions) -> None:
        """What-if conditions from the next tick on (see :mod:`twin_service.engine.schedule`): servers out of
        service (:meth:`set_server_active`), link rates scaled, and the events in force marked in the KPIs."""
        self.set_server_active(conditions.active)
        factor = conditions.link_factor
        self.link_factor = None if factor is None or bool(np.all(factor == 1.0)) else np.asarray(factor, np.float64)
        self.conditions = conditions

    def layout_records(self) -> list[dict[str, object]]:
        """Static description of the servers, stored once per run for readers (API, policies)."""
        return [
            {
                "id": s.id,
                "tier": s.tier,
                "x_m": s.x_m,
                "y_m": s.y_m,
                "lon": s.lon,
                "lat": s.lat,
                "altitude_m": s.altitude_m,
                "range_m": s.range_m if np.isfinite(s.range_m) else 1e12,
                "cache_mb": s.cache_mb,
                "cpu_hz": s.cpu_hz,
                "patrol_xy": [list(p) for p in s.patrol_xy],
            }
            for s in self.layout.servers
        ]

    def _move_uavs(self, now_s: float) -> None:
        if self.patrols is None:
            return
        xy, heading = uav_positions(self.patrols, now_s - self._start_s)
        idx = self.uav_idx
        self.srv_x[idx], self.srv_y[idx] = xy[:, 0], xy[:, 1]
        self.srv_heading[idx] = heading
        lon, lat = self.projection.to_lonlat(xy[:, 0], xy[:, 1])
        self.srv_lon[idx], self.srv_lat[idx] = lon, lat

    def _migration_latency_s(self, prev: NDArray[np.int64], new: NDArray[np.int64]) -> NDArray[np.float64]:
        """Eq. 11-12 for the vehicles whose host changed: S_mig over the server-to-server link."""
        c = self.params.channel
        ground = ground_distance_m(self.srv_lat[prev], self.srv_lon[prev], self.srv_lat[new], self.srv_lon[new])
        dist = slant_distance_m(ground, self.srv_alt[prev] - self.srv_alt[new])
        src_sat, dst_sat = self.is_sat[prev], self.is_sat[new]
        rate = migration_rate_bps(
            dist,
            c.bandwidth_mig_hz,
            c.server_tx_power_w,
            c.noise_w,
            c.carrier_hz,
            src_sat,
            dst_sat,
            c.satellite_rate_bps,
            c.gain_coefficient,
        )
        legs = satellite_leg_delay_s(src_sat, dst_sat, satellite_propagation_delay_s(self.params.satellite.altitude_m))
        if self.link_factor is not None:  # a server-to-server link is as good as its worse end
            rate = rate * np.minimum(self.link_factor[prev], self.link_factor[new])
        return self.params.task.migration_size_mb * BITS_PER_MB / rate + legs

    # ------------------------------------------------------------------------------------------
    def tick(self) -> tuple[TickFrame | None, TickContext]:
        """Advance the tick source one step and compute everything of the new tick."""
        self.backend.step()
        return self.compute(self.observe())

    def observe(self) -> SumoTick:
        """Read what the tick source holds after a step (the only part of a tick that talks to SUMO)."""
        return self.backend.observe_tick()

    def compute(self, sumo: SumoTick) -> tuple[TickFrame | None, TickContext]:
        """Everything of a tick from what SUMO gave; touches no SUMO API, so SUMO may step meanwhile."""
        p = self.params
        self.tick_number += 1
        now = sumo.time_s
        self.last_sim_time_s = now
        self.last_sumo = sumo
        self.expected_remaining = sumo.expected_remaining
        self.sumo_wall_s += sumo.step_s + sumo.read_s
        self.totals.trips.extend(self.vehicles.release(sumo.arrived))

        batch = sumo.vehicles
        n = len(batch)
        self._move_uavs(now)
        dist = projected_distance_matrix_m(batch.x_m, batch.y_m, self.srv_x, self.srv_y, self.srv_alt)
        rows = np.arange(n)
        servers = self.servers
        active = servers.active

        vt = self.vehicles
        slots = vt.slots_for(batch.ids, now, batch.numbers)
        prev_host = vt.i["host"][slots]
        host = vt.i["next_host"][slots].copy()
        unplaced = host < 0
        if unplaced.any():
            # A new twin goes to the nearest server that can take it now (Eq. 23 on the current backlog),
            # placed as the default policy places movers: vehicles departing together near one server do
            # not all land on it beyond the room it has left after the twins it already hosts this tick.
            d_new = dist[unplaced]
            mask = migration_mask(
                d_new,
                self.range_m,
                self.backlog_bits,
                self.data_bits,
                self.load_max_bits,
                self.is_sat,
                active=None if servers.all_active else active,
            )
            staying = np.bincount(host[~unplaced], minlength=len(self.server_ids))
            free = self.load_max_bits - self.backlog_bits - self.data_bits * staying
            host[unplaced] = capacity_aware_nearest(d_new, mask, free, self.data_bits, self.sat_index)

        # Paper A: migrations, loads, latencies, failures.
        migrated = (prev_host >= 0) & (host != prev_host)
        migration_s = np.zeros(n)
        if migrated.any():
            migration_s[migrated] = self._migration_latency_s(prev_host[migrated], host[migrated])
        load = server_load_bits(host, self.data_bits, self.backlog_bits)
        d_host = dist[rows, host].astype(np.float64)
        host_sat = self.is_sat[host]
        c = p.channel
        sat_prop = satellite_propagation_delay_s(p.satellite.altitude_m)
        rate_up = free_space_rate_bps(
            d_host, c.bandwidth_up_hz, c.vehicle_tx_power_w, c.noise_w, c.carrier_hz, c.gain_coefficient
        )
        rate_down = free_space_rate_bps(
            d_host, c.bandwidth_down_hz, c.server_tx_power_w, c.noise_w, c.carrier_hz, c.gain_coefficient
        )
        sat_rate: float | NDArray[np.float64] = c.satellite_rate_bps
        link_host = None if self.link_factor is None else self.link_factor[host]
        if link_host is not None:  # a channel event: every link of the host scaled
            rate_up, rate_down, sat_rate = rate_up * link_host, rate_down * link_host, sat_rate * link_host
        uplink_s = access_latency_s(self.data_bits, rate_up, host_sat, sat_rate, sat_prop)  # type: ignore[arg-type]
        downlink_s = access_latency_s(self.data_bits, rate_down, host_sat, sat_rate, sat_prop)  # type: ignore[arg-type]
        host_load, queue = load[host], self.queue_bits[host]
        compute_s = compute_latency_s(
            host_load, p.task.cycles_per_bit, self.cpu_hz[host], self.load_max_bits[host], p.satellite.cpu_hz, queue
        )
        latency_s = uplink_s + downlink_s + compute_s + migration_s
        failed = service_failure(d_host, self.range_m[host], host_load, self.load_max_bits[host], queue)
        if not servers.all_active:
            failed |= ~active[host]  # a twin left on a server out of service is not served
        self.load_bits = load
        # What a server cannot hold beyond its cache (the satellite: its queue) is dropped (Eq. 14), not queued.
        self.backlog_bits = drain_backlog_bits(
            load, self.cpu_hz, p.task.cycles_per_bit, p.simulation.tick_s, self.cache_bits
        )
        hosted = np.bincount(host, minlength=len(self.server_ids))
        overloaded = load > self.load_max_bits

        # Per-vehicle counters.
        vt.i["host"][slots] = host
        vt.i["ticks"][slots] += 1
        vt.i["failures"][slots] += failed
        vt.i["migrations"][slots] += migrated

        # Run totals and this tick's KPIs.
        var_mb2 = float(load_variance(load / BITS_PER_MB))
        t = self.totals
        t.ticks += 1
        t.vehicle_ticks += n
        t.failures += int(failed.sum())
        t.migrations += int(migrated.sum())
        t.latency_s += float(latency_s.sum())
        t.load_variance_sum += var_mb2
        rsu = self._is_rsu
        by_tier = np.bincount(self.tier_code[host], minlength=3) if n else np.zeros(3, dtype=np.int64)
        safe_n = max(n, 1)
        kpis = {
            "vehicles": float(n),
            "latency_total_s": float(latency_s.sum()),
            "latency_mean_s": float(latency_s.sum() / safe_n),
            "packet_loss": float(failed.sum() / safe_n),
            "load_variance_mb2": var_mb2,
            "migrations": float(migrated.sum()),
            "overloaded_rsu_share": float(overloaded[rsu].mean()) if rsu.any() else 0.0,
            "hosts_rsu": float(by_tier[0]),
            "hosts_uav": float(by_tier[1]),
            "hosts_satellite": float(by_tier[2]),
            # What-if marks: servers out of service, events in force (outages, recalls, demand, channel).
            "servers_out": float(len(active) - int(active.sum())),
            "events_active": float(self.conditions.events_active),
            "demand_scale": float(self.conditions.demand_scale),
            "link_factor_min": float(self.link_factor.min()) if self.link_factor is not None else 1.0,
        }

        # Paper B: each vehicle processes the task that arrived last tick, with the fraction decided for it
        # then, offloaded to the twin's host; a vehicle in its first tick has no decision yet and runs its
        # first task locally (rho = 0). Then the next task arrives, and that is what is decided on.
        offload: OffloadTick | None = None
        if self.outputs.offload:
            offload = offload_tick(
                self.params,
                self.vehicles,
                self._task_rng,
                self.edge_f_hz,
                slots,
                host,
                host_sat,
                d_host,
                batch.speed_mps,
                link_host,
            )
            t.offload_cost += float(offload.outcome.cost.sum())
            t.offload_delay_s += float(offload.outcome.delay_s.sum())
            t.offload_energy_j += float(offload.outcome.energy_j.sum())
            t.tasks_succeeded += int(offload.outcome.success.sum())
            t.offload_vehicle_ticks += n
            out = offload.outcome
            kpis |= {
                "offload_cost_total": float(out.cost.sum()),
                "offload_cost_mean": float(out.cost.sum() / safe_n),
                "task_success_rate": float(out.success.sum() / safe_n) if n else 1.0,
                "offload_delay_mean_s": float(out.delay_s.sum() / safe_n),
                "offload_energy_mean_j": float(out.energy_j.sum() / safe_n),
            }
        kpis["fallback"] = 1.0 if self._governing_fallback else 0.0
        t.fallback_ticks += int(self._governing_fallback)

        # The workload forecast the observation and mask are built on (paper A Eq. 19, 23).
        self.load_history.push(load, hosted)
        predicted = load
        if self.forecaster is not None:
            predicted = self.forecaster.forecast(self.load_history.window(self.forecaster.window))

        frame = None
        if self.outputs.frame:
            frame = self._frame(sumo, host, d_host, uplink_s, downlink_s, compute_s, migration_s, latency_s)
            frame.vehicle_columns |= {"failed": failed.astype(np.float64), "migrated": migrated.astype(np.float64)}
            frame.server_columns |= {
                "load_bits": load,
                "backlog_bits": self.backlog_bits,
                "predicted_load_bits": np.asarray(predicted, dtype=np.float64),
                "hosted": hosted.astype(np.float64),
                "overloaded": overloaded.astype(np.float64),
            }
            if offload is not None:
                frame.vehicle_columns |= offload.columns()
                frame.server_columns["offloaders"] = offload.offloaders
            frame.kpis = kpis
        keys = vt.i["serial"][slots]
        window = None
        if offload is not None and self.offload_window is not None:
            self.offload_window.push(keys, offload.now)
            window = self.offload_window.snapshot()
        ctx = TickContext(
            tick=self.tick_number,
            sim_time_s=now,
            vehicle_ids=batch.ids,
            host=host,
            observation=migration_observation(
                dist,
                predicted,
                self.data_bits,
                servers,
                host,
                dynamic_mask=self.dynamic_mask,
                motion=VehicleMotion.from_twins(
                    batch.x_m, batch.y_m, batch.speed_mps, batch.heading_deg, self.srv_x.copy(), self.srv_y.copy()
                ),
            ),
            offload_now=offload.now if offload is not None else {},
            servers=servers,
            frame=frame,
            migration=MigrationResult(latency_s, failed, migrated, host_load),
            offload=offload.outcome if offload is not None else None,
            rho=offload.rho if offload is not None else None,
            kpis=kpis,
            load_bits=load,
            vehicle_keys=keys,
            window=window,
        )
        self._slots = slots
        return frame, ctx

    def _frame(
        self,
        sumo: SumoTick,
        host: NDArray[np.int64],
        d_host: NDArray[np.float64],
        uplink_s: NDArray[np.float64],
        downlink_s: NDArray[np.float64],
        compute_s: NDArray[np.float64],
        migration_s: NDArray[np.float64],
        latency_s: NDArray[np.float64],
    ) -> TickFrame:
        """The tick as the twin store keeps it (numeric and text columns per vehicle and server)."""
        batch = sumo.vehicles
        lon, lat = self.projection.to_lonlat(batch.x_m, batch.y_m)
        return TickFrame(
            tick=self.tick_number,
            sim_time_s=sumo.time_s,
            wall_time=sumo.wall_time,
            vehicle_ids=batch.ids,
            vehicle_columns={
                "x_m": batch.x_m,
                "y_m": batch.y_m,
                "lon": lon,
                "lat": lat,
                "speed_mps": batch.speed_mps,
                "heading_deg": batch.heading_deg,
                "host_index": host.astype(np.float64),
                "host_distance_m": d_host,
                "uplink_s": uplink_s,
                "downlink_s": downlink_s,
                "compute_s": compute_s,
                "migration_s": migration_s,
                "latency_s": latency_s,
            },
            vehicle_text={"road_id": batch.road_ids},
            server_ids=self.server_ids,
            server_columns={
                "x_m": self.srv_x.copy(),
                "y_m": self.srv_y.copy(),
                "lon": self.srv_lon.copy(),
                "lat": self.srv_lat.copy(),
                "altitude_m": self.srv_alt,
                "heading_deg": self.srv_heading.copy(),
                "in_service": self.servers.active.astype(np.float64),
                "f_hz": self.edge_f_hz,
                "r_bps": self.edge_r_bps,
                "energy_j": self.edge_energy_j,
            },
            server_text={"tier": self.tiers},
        )

    def apply(self, decisions: Decisions) -> None:
        """Store the decisions made after the last tick; they take effect at the next tick."""
        slots = self._slots
        if len(decisions.target) != len(slots) or len(decisions.rho) != len(slots):
            raise ValueError("decisions are not aligned with the last tick's vehicles")
        target = np.asarray(decisions.target, dtype=np.int64)
        if len(target) and (target.min() < 0 or target.max() >= len(self.server_ids)):
            raise ValueError("a decision names a server index outside the layout")
        self.vehicles.i["next_host"][slots] = target
        self.vehicles.f["rho"][slots] = np.clip(np.asarray(decisions.rho, dtype=np.float64), 0.0, 1.0)
        self._governing_fallback = decisions.fallback

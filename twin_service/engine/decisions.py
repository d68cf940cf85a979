"""Decisions in-process: the named policies (heuristics or registered models) decide every tick.

Whoever builds an engine without a decision service gives it this source; the bridge wraps it for the decision service
over HTTP (``twin_service.bridge.decisions.HttpDecisions``), whose local fallback it also is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from twin_service.config import ScenarioParams
from twin_service.engine.context import Decisions, TickContext
from twin_service.policies import (
    DEFAULT_MIGRATION_POLICY,
    DEFAULT_OFFLOAD_POLICY,
    MigrationPolicy,
    ModelRegistry,
    OffloadPolicy,
    decide_all,
    migration_policy,
    offload_policy,
)
from twin_service.policies.decide import decide_migration, explain_rows


class PolicyDecisions:
    """Decide in-process with named policies (heuristics or registered models), or with policy objects."""

    reads_twins = False

    def __init__(
        self,
        params: ScenarioParams,
        n_servers: int,
        migration: str | MigrationPolicy = DEFAULT_MIGRATION_POLICY,
        offload: str | OffloadPolicy = DEFAULT_OFFLOAD_POLICY,
        *,
        seed: int = 0,
        models_dir: str | Path | None = None,
        check_param_hash: bool = True,
        explain: bool = False,
    ) -> None:
        self.explain = explain
        """Pack every decision for the decision log too (``Decisions.log``): the bridge with its log on."""
        registry = ModelRegistry(models_dir) if models_dir is not None else None
        param_hash = params.param_hash if check_param_hash else None
        checked = params if check_param_hash else None
        self.migration = (
            migration_policy(
                migration,
                task=params.task,
                seed=seed,
                registry=registry,
                n_servers=n_servers,
                param_hash=param_hash,
                channel=params.channel,
                satellite=params.satellite,
                params=checked,
            )
            if isinstance(migration, str)
            else migration
        )
        self.offload = (
            offload_policy(offload, offload=params.offload, registry=registry, param_hash=param_hash, params=checked)
            if isinstance(offload, str)
            else offload
        )

    def decide(self, ctx: TickContext) -> Decisions:
        if not ctx.offload_now:  # an engine without paper B (migration training): hosts only, tasks run locally
            hosts = decide_migration(self.migration, ctx.observation, ctx.servers, ctx.host)
            return Decisions(hosts.target, np.zeros(len(hosts.target)), source=self.migration.name)
        window = ctx.offload_window_mean() if self.offload.needs_window_mean else None
        batch = decide_all(ctx, self.migration, self.offload, offload_window_mean=window)
        log = None
        if self.explain:
            log = explain_rows(ctx.vehicle_ids, ctx.host, batch.migration, batch.rho, ctx.observation)
        return Decisions(batch.target, batch.rho, source=batch.source, log=log)

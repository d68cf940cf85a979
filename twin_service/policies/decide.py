"""Both decisions for one tick, in process: what the bridge calls after every tick (and the API serves).

``decide_all(ctx, migration_policy, offload_policy)`` takes anything with the attributes of the bridge's
``TickContext`` (``observation``, ``servers``, ``host``, ``offload_now``), so the bridge passes its context
as it is and wraps the result in its own ``Decisions``:

    batch = decide_all(ctx, migration, offload)
    Decisions(batch.target, batch.rho, source=batch.source)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from twin_service.observe import MigrationObservation, ServerTable
from twin_service.policies.base import (
    MigrationDecision,
    MigrationPolicy,
    OffloadDecision,
    OffloadInputs,
    OffloadPolicy,
)
from twin_service.policies.errors import PolicyError
from twin_service.policies.finite import check_finite_outputs
from twin_service.twins.declog import pack_rows, top_scores


class DecisionInputs(Protocol):
    """What a tick offers to decide from; the bridge's ``TickContext`` has these attributes."""

    @property
    def observation(self) -> MigrationObservation: ...

    @property
    def servers(self) -> ServerTable: ...

    @property
    def host(self) -> NDArray[np.int64]: ...

    @property
    def offload_now(self) -> dict[str, NDArray[np.float64]]: ...


@dataclass(frozen=True)
class DecisionBatch:
    """Next tick's host and offloaded fraction per vehicle (aligned with the inputs' rows), with details."""

    target: NDArray[np.int64]
    """``(V,)`` server index (``ServerTable`` order) of each twin's next host; always feasible."""
    rho: NDArray[np.float64]
    """``(V,)`` offloaded fraction of each vehicle's task, in [0, 1]."""
    migration: MigrationDecision
    offload: OffloadDecision
    migration_policy: str
    migration_version: str
    offload_policy: str
    offload_version: str

    @property
    def source(self) -> str:
        """``migration@version+offload@version``, for logs and the bridge's ``Decisions.source``."""
        return f"{self.migration_policy}@{self.migration_version}+{self.offload_policy}@{self.offload_version}"


def check_feasible(decision: MigrationDecision, mask: NDArray[np.bool_], policy: str) -> None:
    """Raise :class:`PolicyError` if a target is out of range or masked (a policy bug, never served)."""
    target = decision.target
    n, m = mask.shape
    if target.shape != (n,):
        raise PolicyError(f"policy {policy!r} returned {target.shape} targets for {n} vehicles")
    if n and (target.min() < 0 or target.max() >= m or not mask[np.arange(n), target].all()):
        raise PolicyError(f"policy {policy!r} chose an infeasible server")


def decide_migration(
    policy: MigrationPolicy,
    observation: MigrationObservation,
    servers: ServerTable,
    host: NDArray[np.int64] | None,
) -> MigrationDecision:
    """``policy.decide`` with its probabilities checked as finite and its targets as feasible."""
    decision = policy.decide(observation, servers, host)
    check_finite_outputs(f"policy {policy.name!r}", decision.probabilities, "probabilities")
    check_feasible(decision, observation.mask, policy.name)
    return decision


def decide_offload(policy: OffloadPolicy, inputs: OffloadInputs) -> OffloadDecision:
    """``policy.decide`` with rho checked as finite and in [0, 1]."""
    decision = policy.decide(inputs)
    rho = decision.rho
    check_finite_outputs(f"policy {policy.name!r}", rho, "offloaded fractions (rho)")
    if rho.shape != (inputs.size,) or not np.all((rho >= 0.0) & (rho <= 1.0)):
        raise PolicyError(f"policy {policy.name!r} returned rho outside [0, 1] or misaligned")
    return decision


def decide_all(
    ctx: DecisionInputs,
    migration_policy: MigrationPolicy,
    offload_policy: OffloadPolicy,
    *,
    offload_window_mean: dict[str, NDArray[np.float64]] | None = None,
) -> DecisionBatch:
    """Both decisions for every vehicle of a tick.

    The offloaded part of a task goes to the twin's current host (``ctx.host``), whose rate and CPU are in
    ``ctx.offload_now``; vehicles offloading to one host share its CPU (paper B, C.6).
    ``offload_window_mean`` (the 10 s window means of the offload features, Eq. 37) is passed to learned
    offloading policies; without it they use the current values.
    """
    host = np.asarray(ctx.host, dtype=np.int64)
    migration = decide_migration(migration_policy, ctx.observation, ctx.servers, host)
    offload = decide_offload(offload_policy, OffloadInputs(ctx.offload_now, offload_window_mean, host))
    return DecisionBatch(
        target=migration.target,
        rho=offload.rho,
        migration=migration,
        offload=offload,
        migration_policy=migration_policy.name,
        migration_version=migration_policy.version,
        offload_policy=offload_policy.name,
        offload_version=offload_policy.version,
    )


def explain_rows(
    vehicle_ids: list[str],
    host: NDArray[np.int64],
    migration: MigrationDecision,
    rho: NDArray[np.float64],
    observation: MigrationObservation,
) -> bytes:
    """Every vehicle's decision as the decision log keeps it (:func:`twin_service.twins.declog.pack_rows`): host,
    target, rho, the size of its Eq. 23 mask, the policy's three best-scored servers (its probabilities), and the
    predicted load of the target the policy saw. About 1 ms for 1,500 vehicles (made only for the log)."""
    top_index, top_score = top_scores(migration.probabilities)
    predicted = np.asarray(observation.predicted_load_bits, dtype=np.float64)
    return pack_rows(
        vehicle_ids,
        np.asarray(host),
        migration.target,
        rho,
        observation.mask.sum(axis=1),
        top_index,
        top_score,
        predicted[migration.target] if len(migration.target) else np.zeros(0),
    )

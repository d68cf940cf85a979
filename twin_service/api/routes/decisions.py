"""``/v1/decisions/...``: twin migration and task offloading decisions, per vehicle or as one batch.

Each decision is computed for every vehicle of the tick at once (hosting is capacity-aware and
offloaders share their host's CPU, so one vehicle's decision depends on the others), cached for the
latest tick, and sliced to the vehicles asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError

from twin_service.api.deps import JSONBody, StateDep, require_api_key
from twin_service.api.errors import DECISION_ERROR_RESPONSES, policy_not_found
from twin_service.api.schemas import (
    BatchRequest,
    BatchResponse,
    MigrationRequest,
    MigrationResponse,
    OffloadRequest,
    OffloadResponse,
)
from twin_service.api.service import (
    batch_body,
    migration_body,
    migration_for,
    offload_body,
    offload_for,
    snapshot_from_observation,
    snapshot_from_store,
)
from twin_service.api.state import ApiState
from twin_service.policies import UnknownPolicyError

router = APIRouter(
    prefix="/v1/decisions",
    tags=["decisions"],
    dependencies=[Depends(require_api_key)],
    responses=DECISION_ERROR_RESPONSES,
)


def _check_size(state: ApiState, vehicles: Sequence[object] | None, loc: tuple[str, ...]) -> None:
    """422 naming the field when a request names or carries more vehicles than the service allows."""
    limit = state.settings.max_vehicles_per_request
    if vehicles is not None and len(vehicles) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": loc,
                    "msg": f"at most {limit} vehicles per request (TWIN_MAX_VEHICLES_PER_REQUEST), got "
                    f"{len(vehicles)}; split the request, or use /v1/decisions/batch for a whole tick",
                    "input": None,
                }
            ]
        )


def _check_policy(state: ApiState, kind: str, name: str | None, field: str) -> None:
    if name is None:
        return
    try:
        state.check_policy_name(kind, name)
    except UnknownPolicyError as exc:
        raise policy_not_found(field, exc, name) from None


@router.post("/migration", response_model=MigrationResponse, summary="Next host of vehicle twins")
def decide_migration(request: MigrationRequest, state: StateDep) -> JSONBody:
    """Per vehicle: the chosen server, the feasible set (paper A Eq. 23 mask) and the policy's
    probability for each feasible server, with the predicted loads used. From the stored tick (default
    the latest) or, in stateless mode, from the twins in ``observation``."""
    _check_size(state, request.vehicle_ids, ("body", "vehicle_ids"))
    _check_policy(state, "migration", request.policy, "policy")
    if request.observation is not None:
        _check_size(state, request.observation.vehicles, ("body", "observation", "vehicles"))
        snap = snapshot_from_observation(state, request.observation)
    else:
        snap = snapshot_from_store(state, request.tick)
    rows = snap.rows(request.vehicle_ids)
    decision, policy = migration_for(state, snap, request.policy)
    state.metrics.decisions.labels("migration", policy.name).inc(len(rows))
    return JSONBody(migration_body(snap, decision, policy, rows))


@router.post("/offload", response_model=OffloadResponse, summary="Offloaded fraction of vehicles' tasks")
def decide_offload(request: OffloadRequest, state: StateDep) -> JSONBody:
    """Per vehicle: rho in [0, 1] and the expected delay, energy, cost and deadline success (paper B
    Eq. 14, 15, 22, C.1) of offloading that fraction to the twin's host."""
    _check_size(state, request.vehicle_ids, ("body", "vehicle_ids"))
    _check_policy(state, "offload", request.policy, "policy")
    if request.observation is not None:
        _check_size(state, request.observation.vehicles, ("body", "observation", "vehicles"))
        snap = snapshot_from_observation(state, request.observation)
    else:
        snap = snapshot_from_store(state, request.tick)
    rows = snap.rows(request.vehicle_ids)
    decision, policy = offload_for(state, snap, request.policy)
    state.metrics.decisions.labels("offload", policy.name).inc(len(rows))
    return JSONBody(offload_body(snap, decision, policy, rows))


@router.post("/batch", response_model=BatchResponse, summary="Both decisions for a whole tick, as arrays")
def decide_batch(request: BatchRequest, state: StateDep) -> JSONBody:
    """Every vehicle of the stored tick (default the latest): next host index and rho, aligned with
    ``vehicle_ids``; what the bridge calls after each tick when it runs against this service."""
    _check_policy(state, "migration", request.migration_policy, "migration_policy")
    _check_policy(state, "offload", request.offload_policy, "offload_policy")
    snap = snapshot_from_store(state, request.tick)
    migration, m_policy = migration_for(state, snap, request.migration_policy)
    offload, o_policy = offload_for(state, snap, request.offload_policy)
    n = len(snap.vehicle_ids)
    state.metrics.decisions.labels("migration", m_policy.name).inc(n)
    state.metrics.decisions.labels("offload", o_policy.name).inc(n)
    return JSONBody(batch_body(snap, migration, m_policy, offload, o_policy, request.include_expected, request.log))

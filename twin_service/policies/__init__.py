"""Decision policies behind one interface, chosen by name; trained models with their manifests.

* :mod:`.base` - the interface: ``MigrationPolicy.decide(observation, servers, host) -> MigrationDecision``
  and ``OffloadPolicy.decide(OffloadInputs) -> OffloadDecision``.
* :mod:`.migration` - ``least-loaded`` (default), ``sticky-nearest``, ``greedy`` and ``random`` (paper A
  baselines) and
  :func:`~.migration.capacity_aware_nearest`.
* :mod:`.offload` - ``nearest-least-loaded`` (default, paper B's non-DRL baseline) and ``local-only``.
* :mod:`.registry` - policies by name; stored models (``models/<name>/``: manifest + safetensors).
* :mod:`.torch_policy` - the MLP actor wrappers (imports torch; loaded only with a model).
* :mod:`.decide` - :func:`~.decide.decide_all`, both decisions for a tick, for the bridge and the API.
* :mod:`.inputs` - twin columns (from Redis or a request) to the same inputs the bridge builds.
"""

from twin_service.policies.base import (
    MigrationDecision,
    MigrationPolicy,
    OffloadDecision,
    OffloadInputs,
    OffloadPolicy,
)
from twin_service.policies.decide import DecisionBatch, decide_all
from twin_service.policies.errors import ModelError, ModelSpecMismatch, PolicyError, UnknownPolicyError
from twin_service.policies.migration import capacity_aware_nearest
from twin_service.policies.offload import expected_outcome
from twin_service.policies.registry import (
    DEFAULT_MIGRATION_POLICY,
    DEFAULT_OFFLOAD_POLICY,
    MIGRATION_HEURISTICS,
    OFFLOAD_HEURISTICS,
    ModelRegistry,
    migration_policy,
    offload_policy,
    save_model,
)

__all__ = [
    "DEFAULT_MIGRATION_POLICY",
    "DEFAULT_OFFLOAD_POLICY",
    "MIGRATION_HEURISTICS",
    "OFFLOAD_HEURISTICS",
    "DecisionBatch",
    "MigrationDecision",
    "MigrationPolicy",
    "ModelError",
    "ModelRegistry",
    "ModelSpecMismatch",
    "OffloadDecision",
    "OffloadInputs",
    "OffloadPolicy",
    "PolicyError",
    "UnknownPolicyError",
    "capacity_aware_nearest",
    "decide_all",
    "expected_outcome",
    "migration_policy",
    "offload_policy",
    "save_model",
]

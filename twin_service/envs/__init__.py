"""Training and evaluation environments: recorded SUMO days replayed through the bridge's own engine.

* :mod:`.sim` - episodes (windows of recordings, after a warm-up) and the options of the papers' sweeps
  and ablations (no UAVs, no satellite, UAV churn, RSU outage, parameter overrides, a workload predictor).
* :mod:`.migration` - paper A: :class:`MigrationCore` (batched, for trainers) and :class:`MigrationEnv`
  (PettingZoo ``ParallelEnv``).
* :mod:`.offload` - paper B: :class:`OffloadCore` and :class:`OffloadEnv`.
* :mod:`.batched` and :mod:`.parallel` - what both share: the batched core's skeleton (reset, a step's
  bookkeeping, the batch and step fields) and the PettingZoo ``ParallelEnv`` over a core.
* :mod:`.evaluate` - any policies over held-out recordings: KPI tables with confidence intervals, plots.

    from twin_service.envs import MigrationEnv, OffloadEnv
    env = MigrationEnv.from_recording("data/recordings/city-s2.npz", episode_s=300)
"""

from twin_service.envs.migration import MigrationBatch, MigrationCore, MigrationEnv, MigrationStep, RewardStats
from twin_service.envs.offload import OffloadBatch, OffloadCore, OffloadEnv, OffloadStep
from twin_service.envs.sim import EnvOptions, Episode, ReplaySim, RsuOutage, UavChurn

__all__ = [
    "EnvOptions",
    "Episode",
    "MigrationBatch",
    "MigrationCore",
    "MigrationEnv",
    "MigrationStep",
    "OffloadBatch",
    "OffloadCore",
    "OffloadEnv",
    "OffloadStep",
    "ReplaySim",
    "RewardStats",
    "RsuOutage",
    "UavChurn",
]

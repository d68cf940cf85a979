"""One tick of the digital twin over a batch of vehicles, SUMO-free.

* :mod:`.types` - what a tick source hands the engine (:class:`~.types.SumoTick`, :class:`~.types.VehicleBatch`)
  and the :class:`~.types.TickSource` interface.
* :mod:`.core` - :class:`~.core.Engine`: placement, migrations, loads, latencies, failures (paper A),
  offloading (paper B), KPIs and the twin frame.
* :mod:`.context` - what a tick hands its decision source (:class:`~.context.TickContext`), the
  :class:`~.context.Decisions` it takes back, and the run's totals.
* :mod:`.vehicles` - per-vehicle state that outlives a tick.
* :mod:`.decisions` - in-process decisions by named policies.
* :mod:`.recording` - recorded SUMO runs: the file format; :mod:`.replay` - a recording as a tick source.

A live SUMO (``twin_service.bridge``), a recording or a test feeds the same engine, so training and serving
share one physics.
"""

from twin_service.engine.context import (
    Decisions,
    DecisionSource,
    EngineOutputs,
    MigrationResult,
    RunTotals,
    TickContext,
)
from twin_service.engine.core import TIER_CODES, Engine
from twin_service.engine.decisions import PolicyDecisions
from twin_service.engine.types import SumoTick, TickSource, VehicleBatch

__all__ = [
    "TIER_CODES",
    "DecisionSource",
    "Decisions",
    "Engine",
    "EngineOutputs",
    "MigrationResult",
    "PolicyDecisions",
    "RunTotals",
    "SumoTick",
    "TickContext",
    "TickSource",
    "VehicleBatch",
]

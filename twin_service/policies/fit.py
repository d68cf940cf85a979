"""Does a trained model fit a scenario? The scenario parameters its inputs and physics depend on, compared.

A model is served wherever its inputs mean what they meant in training, not only on the scenario it was trained
on: an imported city keeps the built city's server physics, so a policy trained on the city serves it. Which
parameters count depends on the model (:func:`input_keys`):

* an **offloading** actor (AF-MARL and the other paper B policies) reads the vehicle's CPU, its rate to its host,
  its energy, its task and its host's CPU and offloaders, now and as a window mean (paper B Eq. 3-4, 37): every
  ``[offload]`` constant (task ranges, CPUs, the channel of Eq. 8, energies, prices), the satellite link's rate
  (``channel.satellite_rate_bps``, a host on the satellite's ``r_bps``), the tick and the history window;
* a **per-server** migration actor (DM-MAPPO's default, MASAC's) scores each server from latencies and load
  ratios computed with the serving scenario's own physics (:data:`twin_service.observe.PER_SERVER_FEATURES`), so
  any layout and any server physics: it needs the tick and the decision interval it was trained to act at;
* a **layout-bound** migration actor (paper A's MLP over o_v, one logit per server) reads each server by its
  place in the layout: the whole scenario must be the one it was trained on (its parameter hash);
* a **workload predictor** reads each server's load and hosted twins per tick: the tick and the load dynamics
  (S_v, e_v, the servers' CPUs, caches and the satellite's queue); one scaled per series, also the server count.

What a model was trained with comes from its manifest (``scenario_inputs``, written by the trainers), or, for a
manifest that predates it, from the built-in scenario it names when that scenario still has the recorded
parameter hash. When neither is known, only the hash is compared; so too when the serving scenario's parameters
are not known (an API that cannot read the run's scenario folder), except for a per-server actor, which is
served there as it always was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from twin_service.config import SCENARIOS_DIR, ScenarioError, ScenarioParams, load_params

WHOLE_SCENARIO = "*"
"""The key standing for every scenario parameter (a layout-bound model)."""

OFFLOAD_INPUTS = ("simulation.tick_s", "simulation.history_window", "channel.satellite_rate_bps", "offload.*")
PER_SERVER_INPUTS = ("simulation.tick_s", "simulation.decision_interval_s")
PREDICTOR_INPUTS = (
    "simulation.tick_s",
    "task.data_size_mb",
    "task.cycles_per_bit",
    "rsu.cpu_hz",
    "rsu.cache_mb",
    "uav.cpu_hz",
    "uav.cache_mb",
    "satellite.cpu_hz",
    "satellite.queue_mb",
)


def expand(keys: Iterable[str], params: ScenarioParams) -> list[str]:
    """``section.*`` expanded to every key of that section, in order."""
    out: list[str] = []
    for key in keys:
        section, name = key.split(".", 1)
        if name == "*":
            out += [f"{section}.{k}" for k in type(getattr(params, section)).model_fields]
        else:
            out.append(key)
    return out


def scenario_values(params: ScenarioParams, keys: Iterable[str]) -> dict[str, Any]:
    """The values of ``keys`` (``section.key``, or ``section.*``) in ``params``, JSON-ready."""
    raw = params.model_dump(mode="json")
    return {key: raw[key.split(".")[0]][key.split(".", 1)[1]] for key in expand(keys, params)}


def builtin_params(name: str, param_hash: str) -> ScenarioParams | None:
    """The committed scenario ``name`` if it still has parameters ``param_hash`` (what an old model trained on)."""
    if not name or not name.isidentifier():
        return None
    try:
        params = load_params(SCENARIOS_DIR / name)
    except ScenarioError:
        return None
    return params if params.param_hash == param_hash else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def fit_problems(
    keys: tuple[str, ...],
    *,
    trained_name: str,
    trained_hash: str,
    trained_inputs: Mapping[str, Any],
    params: ScenarioParams | None,
    param_hash: str | None,
) -> list[str]:
    """Why a model that depends on ``keys`` does not fit the serving scenario (empty when it fits).

    ``params`` is the serving scenario's parameters (None when not known: then only ``param_hash`` is compared);
    ``trained_inputs`` the values the model recorded (empty for an old manifest: the built-in scenario
    ``trained_name`` with ``trained_hash`` stands in when there is one).
    """
    where = trained_name or "unnamed"
    run_hash = param_hash if param_hash is not None else (params.param_hash if params is not None else None)
    if run_hash is None or run_hash == trained_hash:
        return []
    hash_problem = [f"trained on scenario parameters {trained_hash} ({where}), the run uses {run_hash}"]
    if WHOLE_SCENARIO in keys:
        return [
            "it reads each server by its place in the layout, so only the scenario it was trained on fits: "
            + hash_problem[0]
        ]
    if params is None:
        # A per-server actor computes its features with whatever physics the server serves with: as before its
        # check, it is served where the scenario is not known here. The others need their inputs compared.
        return [] if set(keys) <= set(PER_SERVER_INPUTS) else hash_problem
    trained = dict(trained_inputs)
    if not trained:
        base = builtin_params(trained_name, trained_hash)
        if base is None:
            return [hash_problem[0] + " (which values of its parameters it was trained with is not recorded)"]
        trained = scenario_values(base, keys)
    here = scenario_values(params, keys)
    differ = [
        f"{key} = {_show(trained.get(key, 'not recorded'))} in training, {_show(here[key])} here"
        for key in here
        if key not in trained or not _same(trained[key], here[key])
    ]
    if not differ:
        return []
    return [f"parameters its inputs depend on differ from {where}'s: " + "; ".join(differ)]

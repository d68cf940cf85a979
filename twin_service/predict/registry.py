"""Workload predictors by name, for the bridge, the API and the environments.

``persistence`` (the current load) and ``window-mean`` need no model; a trained predictor is the folder
``models/<name>/`` written by ``twin-service predictor train`` (:mod:`twin_service.predict.neural`). It is
served on city data wherever the scenario parameters its inputs depend on are those it was trained with: the
tick and the servers' load dynamics (``twin_service.policies.fit.PREDICTOR_INPUTS``), and for one scaled per
series the number of servers (one series each).
"""

from __future__ import annotations

from pathlib import Path

from twin_service.config import MODELS_DIR, ScenarioParams
from twin_service.policies.errors import UnknownPolicyError
from twin_service.policies.fit import PREDICTOR_INPUTS, fit_problems
from twin_service.predict.base import LoadForecaster, PersistenceForecaster
from twin_service.predict.features import CITY_FEATURES
from twin_service.predict.manifest import MANIFEST_FILE, MODEL_NAME_PATTERN
from twin_service.predict.naive import NAIVE_FORECASTS, WindowMeanForecaster


def predictor_names(models_dir: str | Path | None = None) -> list[str]:
    """The naive forecasts and every stored predictor under ``models_dir``."""
    import json
    import re

    folder = Path(models_dir or MODELS_DIR)
    names = list(NAIVE_FORECASTS)
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            manifest = path / MANIFEST_FILE
            if re.match(MODEL_NAME_PATTERN, path.name) and manifest.is_file():
                try:
                    if json.loads(manifest.read_text()).get("kind") == "predictor":
                        names.append(path.name)
                except (OSError, ValueError, AttributeError):
                    continue
    return names


def load_forecaster(
    name: str,
    params: ScenarioParams | None,
    models_dir: str | Path | None = None,
    *,
    param_hash: str | None = None,
    tick_s: float | None = None,
    n_servers: int | None = None,
) -> LoadForecaster:
    """The predictor called ``name``; :class:`UnknownPolicyError` if there is none, ``PredictorError`` if a
    stored one does not fit the scenario (other values of the parameters its inputs depend on, another tick or,
    scaled per series, another number of servers; or trained on a series file).

    The scenario's parameter hash and tick come from ``params`` unless given (a reader of the twin store knows
    them from the run's metadata; an environment with parameter overrides may pass its base scenario's hash to
    serve a predictor trained there); what is not known is not checked. ``n_servers``: the run's servers.
    """
    if params is not None:
        param_hash = param_hash or params.param_hash
        tick_s = params.simulation.tick_s if tick_s is None else tick_s
    if name == "persistence":
        return PersistenceForecaster()
    if name == "window-mean":
        return WindowMeanForecaster()
    import re

    if not re.match(MODEL_NAME_PATTERN, name):  # a name, never a path: only models_dir is served from
        raise UnknownPolicyError(
            f"unknown workload predictor {name!r}: give the name of a predictor in models/, one of "
            f"{', '.join(predictor_names(models_dir))}"
        )
    folder = Path(models_dir or MODELS_DIR) / name
    if not (folder / MANIFEST_FILE).is_file():
        raise UnknownPolicyError(
            f"unknown workload predictor {name!r}: choose one of {', '.join(predictor_names(models_dir))}"
        )
    from twin_service.predict.neural import NeuralForecaster, PredictorError  # deferred: torch is heavy

    forecaster = NeuralForecaster.load(folder)
    m = forecaster.manifest
    problems = []
    if m.data.source != "city" or not set(m.features) <= set(CITY_FEATURES):
        problems.append(f"it was trained on {m.data.source} data with features {m.features}, not on server loads")
    if m.data.source == "city" and not m.data.scenario_param_hash:
        problems.append("its manifest records no scenario parameter hash (data.scenario_param_hash)")
    elif m.data.scenario_param_hash:
        problems += fit_problems(
            PREDICTOR_INPUTS,
            trained_name=m.data.scenario,
            trained_hash=m.data.scenario_param_hash,
            trained_inputs=m.data.scenario_inputs,
            params=params,
            param_hash=param_hash or None,
        )
    if m.scaling == "per-series" and n_servers is not None and n_servers != m.data.n_series:
        problems.append(f"scaled per series for {m.data.n_series} servers, the scenario has {n_servers}")
    if tick_s is not None and abs(m.data.step_s - tick_s) > 1e-9 and not any("tick_s" in p for p in problems):
        problems.append(f"trained on {m.data.step_s:g} s steps, the scenario ticks every {tick_s:g} s")
    if problems:
        raise PredictorError(f"predictor {name!r} does not fit this scenario: " + "; ".join(problems))
    return forecaster

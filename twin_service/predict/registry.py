"""Workload predictors by name, for the bridge, the API and the environments.

``persistence`` (the current load) needs no model; trained predictors are stored under ``models/<name>/``.
"""

from __future__ import annotations

from pathlib import Path

from twin_service.config import ScenarioParams
from twin_service.policies.errors import UnknownPolicyError
from twin_service.predict.base import LoadForecaster, PersistenceForecaster


def load_forecaster(name: str, params: ScenarioParams, models_dir: str | Path | None = None) -> LoadForecaster:
    """The predictor called ``name``; :class:`UnknownPolicyError` if there is none."""
    if name == "persistence":
        return PersistenceForecaster()
    raise UnknownPolicyError(f"unknown workload predictor {name!r}: choose persistence")

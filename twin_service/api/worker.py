"""The decision API as a uvicorn worker process builds it: every option from the environment.

``twin-service api --workers N`` and ``twin-service run --api`` serve the API from processes of its own
(uvicorn's ``--factory`` over :func:`app_from_env`), so that the API has a Python interpreter, and so a GIL,
that neither the bridge nor another worker shares. What the factory cannot get from :class:`Settings`
(``TWIN_*``) travels in the variables named here; :func:`worker_env` writes them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from twin_service.api.app import create_app
from twin_service.config import Settings, load_params
from twin_service.policies import DEFAULT_MIGRATION_POLICY, DEFAULT_OFFLOAD_POLICY

FACTORY = "twin_service.api.worker:app_from_env"
MIGRATION_POLICY_VAR = "TWIN_API_MIGRATION_POLICY"
OFFLOAD_POLICY_VAR = "TWIN_API_OFFLOAD_POLICY"
SCENARIO_DIR_VAR = "TWIN_API_SCENARIO_DIR"
"""The scenario to serve with (``run --api``: the run's own); unset: the one the run in Redis names."""
SEED_VAR = "TWIN_API_SEED"
PREDICTOR_VAR = "TWIN_API_PREDICTOR"
"""The workload predictor (``--predictor``); unset: persistence."""


def worker_env(
    settings: Settings,
    *,
    migration_policy: str,
    offload_policy: str,
    scenario_dir: Path | None = None,
    seed: int = 0,
    predictor: str = "persistence",
) -> dict[str, str]:
    """The environment variables that make :func:`app_from_env` build this app (every setting included)."""
    env = {f"TWIN_{name.upper()}": str(value) for name, value in settings.model_dump().items() if value is not None}
    env |= {MIGRATION_POLICY_VAR: migration_policy, OFFLOAD_POLICY_VAR: offload_policy, SEED_VAR: str(seed)}
    env[PREDICTOR_VAR] = predictor
    if scenario_dir is not None:
        env[SCENARIO_DIR_VAR] = str(scenario_dir)
    return env


def app_from_env() -> FastAPI:
    """The app of one worker process, from ``TWIN_*`` variables."""
    scenario_dir = os.environ.get(SCENARIO_DIR_VAR)
    return create_app(
        Settings(),
        migration_policy=os.environ.get(MIGRATION_POLICY_VAR, DEFAULT_MIGRATION_POLICY),
        offload_policy=os.environ.get(OFFLOAD_POLICY_VAR, DEFAULT_OFFLOAD_POLICY),
        scenario_params=load_params(scenario_dir) if scenario_dir else None,
        seed=int(os.environ.get(SEED_VAR, "0")),
        predictor=os.environ.get(PREDICTOR_VAR, "persistence"),
    )

"""The manifest of a stored model (``models/<name>/manifest.json``): what it is, expects and came from.

A model is served only where its observation and action spec fit and the scenario parameters its inputs and
physics depend on are those it was trained with (:func:`check_spec`, :mod:`twin_service.policies.fit`); the
manifest also records the exact training command, seed and evaluation figures
(STYLE.md), so that any number quoted for a model can be reproduced.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin_service.config import ScenarioParams
from twin_service.observe import (
    OBS_SPEC_VERSION,
    OFFLOAD_FEATURES,
    PER_SERVER_FEATURES,
    migration_feature_dim,
    offload_feature_dim,
)
from twin_service.policies.errors import ModelSpecMismatch
from twin_service.policies.fit import OFFLOAD_INPUTS, PER_SERVER_INPUTS, WHOLE_SCENARIO, fit_problems, scenario_values

PER_SERVER = "per-server"
"""Architecture kind of the migration actor that scores every server with one shared network."""
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_LAYER_WIDTH = 4096
"""The widest layer a manifest may declare (ours are 32-128 wide)."""
MAX_OPTION_INT = 65_536
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.safetensors"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservationSpec(_Strict):
    obs_spec_version: str = OBS_SPEC_VERSION
    """``twin_service.observe.OBS_SPEC_VERSION`` at training time."""
    feature_dim: int = Field(ge=1)
    n_servers: int | None = Field(default=None, ge=2)
    """Migration models: M, the number of candidate hosts (the action space)."""
    offload_features: tuple[str, ...] | None = None
    """Offload models: ``OFFLOAD_FEATURES`` at training time, in order."""
    per_server_features: tuple[str, ...] | None = None
    """Per-server migration models: ``PER_SERVER_FEATURES`` at training time, in order."""
    history_window: int | None = None


class ActionSpec(_Strict):
    type: Literal["discrete", "continuous"]
    n: int = Field(ge=1)
    """Discrete: number of actions (M servers). Continuous: action dimension (1: rho)."""


class Architecture(_Strict):
    """Which network a stored model is, so that the registry can rebuild it before loading its weights."""

    kind: str = "mlp"
    """The builder (``twin_service.policies.learned.BUILDERS``): ``mlp`` is the plain actor of
    :mod:`twin_service.policies.torch_policy`; trainers register theirs."""
    hidden: tuple[Annotated[int, Field(ge=1, le=MAX_LAYER_WIDTH)], ...] = (64, 64)
    activation: Literal["tanh", "relu"] = "tanh"
    options: dict[str, Any] = Field(default_factory=dict)
    """Whatever else the builder needs (layer sizes, heads, latent size...)."""

    @field_validator("options")
    @classmethod
    def _sizes(cls, value: dict[str, Any]) -> dict[str, Any]:
        # A network is built from these sizes before its weights are read: a crafted size must not allocate first.
        for key, v in value.items():
            if isinstance(v, bool):
                continue
            if isinstance(v, int) and not 0 <= v <= MAX_OPTION_INT:
                raise ValueError(f"option {key}={v} is outside [0, {MAX_OPTION_INT}]")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"option {key}={v} is not finite")
        return value


class ModelManifest(_Strict):
    """Everything needed to serve, check and reproduce a stored actor."""

    name: str
    kind: Literal["migration", "offload"]
    algorithm: str
    """E.g. ``DM-MAPPO``, ``MAPPO``, ``AF-MARL``."""
    version: str
    observation: ObservationSpec
    action: ActionSpec
    architecture: Architecture = Architecture()
    scenario: str = ""
    scenario_param_hash: str
    """``ScenarioParams.param_hash`` of the scenario it was trained on."""
    scenario_inputs: dict[str, Any] = Field(default_factory=dict)
    """The values, in training, of the scenario parameters its inputs and physics depend on (``section.key``:
    :func:`input_keys`); a model is served wherever they are the same. Empty in manifests written before it."""
    command: str
    """The exact command that made it (paths relative to the repository): run it again to remake the model."""
    seed: int
    evaluation: dict[str, float] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    """How it was trained: hyperparameters, the recordings (by scenario and seed), reward moments, timing."""
    notes: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError(f"model name {value!r} must match {MODEL_NAME.pattern}")
        return value


def migration_spec(n_servers: int, history_window: int | None = None) -> tuple[ObservationSpec, ActionSpec]:
    """The observation and action spec of a migration actor for ``n_servers`` hosts (paper A, Eq. 19)."""
    return (
        ObservationSpec(
            feature_dim=migration_feature_dim(n_servers), n_servers=n_servers, history_window=history_window
        ),
        ActionSpec(type="discrete", n=n_servers),
    )


def offload_spec(history_window: int | None = None) -> tuple[ObservationSpec, ActionSpec]:
    """The observation and action spec of an offloading actor (paper B, Eq. 3-4 and 37)."""
    return (
        ObservationSpec(
            feature_dim=offload_feature_dim(),
            offload_features=OFFLOAD_FEATURES,
            history_window=history_window,
        ),
        ActionSpec(type="continuous", n=1),
    )


def input_keys(kind: str, architecture: str) -> tuple[str, ...]:
    """The scenario parameters a model's inputs and physics depend on (:mod:`twin_service.policies.fit`)."""
    if kind == "offload":
        return OFFLOAD_INPUTS
    if architecture == PER_SERVER:
        return PER_SERVER_INPUTS
    return (WHOLE_SCENARIO,)


def model_inputs(params: ScenarioParams, kind: str, architecture: str) -> dict[str, Any]:
    """What a trainer records as ``scenario_inputs``: the values of :func:`input_keys` in its scenario."""
    keys = input_keys(kind, architecture)
    return {} if WHOLE_SCENARIO in keys else scenario_values(params, keys)


def spec_problems(
    manifest: ModelManifest,
    *,
    n_servers: int | None = None,
    param_hash: str | None = None,
    params: ScenarioParams | None = None,
) -> list[str]:
    """Every way ``manifest`` does not fit the scenario it would serve (empty when it fits).

    ``n_servers`` is checked when given (the number of hosts); ``params`` (the serving scenario's parameters)
    or, when they are not known, ``param_hash`` decide whether the parameters the model depends on are those it
    was trained with (:func:`input_keys`); the observation version and dimensions are always checked.
    """
    obs = manifest.observation
    problems = []
    if obs.obs_spec_version != OBS_SPEC_VERSION:
        problems.append(f"observation spec version {obs.obs_spec_version!r}, serving {OBS_SPEC_VERSION!r}")
    if manifest.kind == "migration" and manifest.architecture.kind == PER_SERVER:
        # One shared network scores each (vehicle, server) pair from physical features computed with the
        # serving scenario's own parameters: any number of servers, any city.
        if obs.per_server_features is None or tuple(obs.per_server_features) != PER_SERVER_FEATURES:
            problems.append(
                f"per-server features {list(obs.per_server_features or [])}, serving {list(PER_SERVER_FEATURES)}"
            )
        if obs.feature_dim != len(PER_SERVER_FEATURES):
            problems.append(f"feature_dim {obs.feature_dim}, serving {len(PER_SERVER_FEATURES)} per-server features")
        if manifest.action.type != "discrete":
            problems.append(f"action must be discrete (a server), got {manifest.action}")
    elif manifest.kind == "migration":
        if obs.n_servers is None:
            problems.append("a migration model must record observation.n_servers")
        else:
            if n_servers is not None and obs.n_servers != n_servers:
                problems.append(f"trained for {obs.n_servers} servers, the scenario has {n_servers}")
            if obs.feature_dim != migration_feature_dim(obs.n_servers):
                problems.append(
                    f"feature_dim {obs.feature_dim}, expected {migration_feature_dim(obs.n_servers)} "
                    f"for {obs.n_servers} servers"
                )
            if manifest.action.type != "discrete" or manifest.action.n != obs.n_servers:
                problems.append(f"action must be discrete over {obs.n_servers} servers, got {manifest.action}")
    else:
        if obs.feature_dim != offload_feature_dim():
            problems.append(f"feature_dim {obs.feature_dim}, serving {offload_feature_dim()} offload features")
        if obs.offload_features is not None and tuple(obs.offload_features) != OFFLOAD_FEATURES:
            problems.append(f"offload features {list(obs.offload_features)}, serving {list(OFFLOAD_FEATURES)}")
        if manifest.action.type != "continuous" or manifest.action.n != 1:
            problems.append(f"action must be one continuous rho, got {manifest.action}")
    problems += fit_problems(
        input_keys(manifest.kind, manifest.architecture.kind),
        trained_name=manifest.scenario,
        trained_hash=manifest.scenario_param_hash,
        trained_inputs=manifest.scenario_inputs,
        params=params,
        param_hash=param_hash,
    )
    return problems


def check_spec(
    manifest: ModelManifest,
    *,
    n_servers: int | None = None,
    param_hash: str | None = None,
    params: ScenarioParams | None = None,
) -> None:
    """Raise :class:`ModelSpecMismatch` naming every difference, if the model does not fit."""
    problems = spec_problems(manifest, n_servers=n_servers, param_hash=param_hash, params=params)
    if problems:
        raise ModelSpecMismatch(f"model {manifest.name!r} does not fit this scenario: " + "; ".join(problems))


def per_server_spec(train_servers: int, history_window: int | None = None) -> tuple[ObservationSpec, ActionSpec]:
    """The spec of a per-server migration actor (any number of servers; ``train_servers`` is for the record)."""
    return (
        ObservationSpec(
            feature_dim=len(PER_SERVER_FEATURES),
            n_servers=train_servers,
            per_server_features=PER_SERVER_FEATURES,
            history_window=history_window,
        ),
        ActionSpec(type="discrete", n=train_servers),
    )

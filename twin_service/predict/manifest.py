"""The manifest of a stored workload predictor (``models/<name>/manifest.json``, ``kind: predictor``).

Beside the weights (``weights.safetensors``, read without pickle) it records what the network is, what
it reads (features, window, horizon, the scaling fitted on the training part), the data it was trained
on (the recorded days and their split, or the series file and its hash), the seed, the exact command and
the figures it reached, so that every number quoted for it can be reproduced.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin_service.predict.models import ARCHITECTURES

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.safetensors"
PREDICTOR_KIND = "predictor"
MAX_LAYER_SIZE = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    """Which data trained, selected and tested the predictor."""

    method: Literal["days", "chronological"]
    """``days``: whole recorded days (the project's convention: days 1-6 train, 7 validates, 8-9 test);
    ``chronological``: consecutive parts of one series file."""
    train: list[str]
    val: list[str]
    test: list[str]
    """Days by name (``city-s8``), or a part of a series as ``rows A-B`` (end excluded)."""
    fractions: tuple[float, float, float] | None = None
    """Chronological split: the train / validation / test shares (default 0.7 / 0.1 / 0.2)."""


class DataSpec(_Strict):
    """Where the series came from."""

    source: Literal["city", "series"]
    step_s: float = Field(gt=0)
    """Seconds between two steps of the series (a tick of the scenario, or the file's step)."""
    n_series: int = Field(ge=1)
    series_names: list[str] = Field(default_factory=list)
    scenario: str = ""
    scenario_param_hash: str = ""
    """``ScenarioParams.param_hash`` of the scenario whose servers the series are (city data)."""
    scenario_inputs: dict[str, Any] = Field(default_factory=dict)
    """The values of the scenario parameters its inputs depend on (``twin_service.policies.fit.PREDICTOR_INPUTS``)
    in training; empty in manifests written before it (the named built-in scenario stands in)."""
    migration_policy: str = ""
    """The hosting policy the recorded days were replayed under (city data)."""
    recordings: list[dict[str, Any]] = Field(default_factory=list)
    """Per recorded day: path, seed (the day), the recording's scenario parameter hash, ticks."""
    series_file: str = ""
    series_sha256: str = ""
    split: SplitSpec


class NetworkSpec(_Strict):
    kind: str
    """One of :data:`twin_service.predict.models.ARCHITECTURES`."""
    options: dict[str, Annotated[int, Field(ge=1, le=MAX_LAYER_SIZE)]] = Field(default_factory=dict)
    """Layer sizes (``hidden``, ``d_model``, ``heads``, ``d_k``, ``conv_channels``): the network is built from them
    before its weights are read, so each is bounded."""

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown network {value!r}: one of {', '.join(ARCHITECTURES)}")
        return value


class PredictorManifest(_Strict):
    """Everything needed to serve, check and reproduce a stored predictor."""

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    kind: Literal["predictor"] = PREDICTOR_KIND
    algorithm: str
    """``LSTM-based Transformer``, ``LSTM``, ``GRU``, ``CNN-LSTM`` or ``CNN-GRU``."""
    version: str
    network: NetworkSpec
    features: list[str]
    """Per step and series, in order; the first is the forecast target."""
    window: int = Field(ge=1)
    """Steps of history read (paper A: T = 6)."""
    horizon: int = Field(ge=1)
    """Steps ahead forecast (1: the next step)."""
    target: Literal["delta", "level"]
    scaling: Literal["global", "per-series"]
    scaler: dict[str, list[list[float]]]
    """``mean`` and ``std`` per feature (one row, or one per series), fitted on the training part."""
    data: DataSpec
    seed: int
    command: str
    """The exact command that made it (paths relative to the repository): run it again to remake the model."""
    training: dict[str, Any] = Field(default_factory=dict)
    """Epochs, the best one, wall seconds, windows, batch size, learning rate, threads, per-epoch curve."""
    evaluation: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Figures by data part (``validation``; ``test`` once evaluated): rmse, mae, wape, mape, r2."""
    notes: str = ""

    @property
    def horizon_s(self) -> float:
        return self.horizon * self.data.step_s

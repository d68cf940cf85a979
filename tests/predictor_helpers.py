"""Stored predictors for serving tests: a real network and manifest, with weights set rather than trained.

``bias_std`` sets the output layer to a constant: every forecast is then the last load plus that many
standard deviations of the training load (``target="delta"``), e.g. far above L_max to make every ground
server look overloaded, or 0 for a persistence-like forecast with the network's full code path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from twin_service.predict.features import CITY_FEATURES
from twin_service.predict.manifest import DataSpec, NetworkSpec, PredictorManifest, SplitSpec
from twin_service.predict.models import ALGORITHM_NAMES, build_network, default_options
from twin_service.predict.neural import save_predictor


def make_predictor(
    models_dir: Path,
    name: str,
    *,
    param_hash: str,
    n_series: int,
    tick_s: float = 1.0,
    network: str = "lstm-transformer",
    bias_std: float | None = None,
    source: str = "city",
    horizon: int = 1,
    seed: int = 0,
    scaling: str = "global",
) -> Path:
    torch.manual_seed(seed)
    features = list(CITY_FEATURES) if source == "city" else ["value"]
    net = build_network(network, len(features))
    if bias_std is not None:
        with torch.no_grad():
            net.out.weight.zero_()
            net.out.bias.fill_(bias_std)
    manifest = PredictorManifest(
        name=name,
        algorithm=ALGORITHM_NAMES[network],
        version="test",
        network=NetworkSpec(kind=network, options=default_options(network)),
        features=features,
        window=6,
        horizon=horizon,
        target="delta",
        scaling=scaling,  # type: ignore[arg-type]
        scaler={
            "mean": [[1e8] * len(features)] * (n_series if scaling == "per-series" else 1),
            "std": [[5e7] * len(features)] * (n_series if scaling == "per-series" else 1),
        },  # fmt: skip
        data=DataSpec(
            source=source,  # type: ignore[arg-type]
            step_s=tick_s,
            n_series=n_series,
            scenario="test",
            scenario_param_hash=param_hash if source == "city" else "",
            split=SplitSpec(method="days", train=["d1"], val=["d2"], test=["d3"]),
        ),
        seed=seed,
        command="tests/predictor_helpers.py",
    )
    return save_predictor(models_dir / name, manifest, net.state_dict())

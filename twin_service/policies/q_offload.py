"""A Q-network over discretised offloading fractions (the DDQN baseline of paper B), architecture kind ``q-bins``.

The network maps :func:`twin_service.observe.offload_observation` to one Q-value per fraction of
``options["bins"]`` (evenly spaced over [0, 1]); the served rho is the fraction with the largest Q.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from twin_service.config import OffloadParams
from twin_service.observe import offload_observation
from twin_service.policies.base import OffloadDecision, OffloadInputs
from twin_service.policies.errors import ModelSpecMismatch
from twin_service.policies.manifest import ModelManifest
from twin_service.policies.offload import check_offload_inputs, expected_outcome
from twin_service.policies.torch_policy import MlpActor

KIND = "q-bins"


def rho_bins(n: int) -> np.ndarray:
    """The fractions a Q-network chooses among: ``n`` evenly spaced values from 0 to 1."""
    return np.linspace(0.0, 1.0, n)


class QBinsOffloadPolicy:
    """``rho = bins[argmax_a Q(o, a)]``."""

    needs_window_mean = True

    def __init__(self, manifest: ModelManifest, q: MlpActor, params: OffloadParams) -> None:
        self.manifest, self.name, self.version = manifest, manifest.name, manifest.version
        self.q, self.params = q, params
        self.bins = rho_bins(int(manifest.architecture.options["bins"]))

    def decide(self, inputs: OffloadInputs) -> OffloadDecision:
        check_offload_inputs(inputs)
        obs = torch.from_numpy(offload_observation(inputs.now, inputs.window_mean))
        with torch.inference_mode():
            best = self.q(obs).argmax(dim=-1).numpy()
        return expected_outcome(self.bins[best], inputs, self.params)


def build_offload_policy(
    manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor], params: OffloadParams
) -> QBinsOffloadPolicy:
    arch = manifest.architecture
    bins = int(arch.options.get("bins", 0))
    if bins < 2:
        raise ModelSpecMismatch(f"model {manifest.name!r}: a q-bins model needs options.bins >= 2")
    q = MlpActor(manifest.observation.feature_dim, bins, arch.hidden, arch.activation)
    try:
        q.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise ModelSpecMismatch(f"model {manifest.name!r}: weights do not fit its manifest: {exc}") from exc
    q.eval()
    return QBinsOffloadPolicy(manifest, q, params)

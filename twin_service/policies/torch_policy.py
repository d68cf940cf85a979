"""Learned policies: a small MLP actor behind the same interface as the heuristics.

At serving time a migration actor's logits for masked servers are set to -1e9 and the action is the
argmax (paper A, Eq. 20 and 24); an offloading actor's output goes through a sigmoid to rho in [0, 1]
(paper B's TD3-style deterministic actor). Training (DM-MAPPO, AF-MARL) lives elsewhere and saves its
actor with :func:`twin_service.policies.registry.save_model`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from twin_service.config import OffloadParams
from twin_service.observe import MigrationObservation, ServerTable, offload_observation
from twin_service.policies.base import MigrationDecision, OffloadDecision, OffloadInputs
from twin_service.policies.errors import ModelSpecMismatch
from twin_service.policies.manifest import ModelManifest
from twin_service.policies.masking import MASKED_LOGIT
from twin_service.policies.offload import check_offload_inputs, expected_outcome
from twin_service.policies.sequential import decide_in_turns

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MlpActor(nn.Module):
    """``in_dim -> hidden... -> out_dim`` with one activation between layers; outputs raw logits."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), _ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_actor(manifest: ModelManifest) -> MlpActor:
    """The actor a manifest describes, with untrained weights."""
    arch = manifest.architecture
    return MlpActor(manifest.observation.feature_dim, manifest.action.n, arch.hidden, arch.activation)


def load_actor(manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor]) -> MlpActor:
    """Build the actor and load its weights; a shape or key mismatch is a :class:`ModelSpecMismatch`."""
    actor = build_actor(manifest)
    try:
        actor.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise ModelSpecMismatch(f"model {manifest.name!r}: weights do not fit its manifest: {exc}") from exc
    actor.eval()
    return actor


class ExecutionSampler:
    """How a trained migration actor turns probabilities into targets: ``argmax`` (paper A, Eq. 20) or ``sample``.

    Argmax sends every vehicle that sees the same best server there at once; sampling keeps the mixed strategy
    a shared policy learned, which spreads the vehicles (the trainer keeps whichever validated better, in the
    manifest's ``architecture.options["execution"]``). Draws come from a generator seeded by the manifest's
    seed, so a run is reproducible; a lock keeps it consistent when the API calls from several threads.
    """

    def __init__(self, manifest: ModelManifest) -> None:
        self.options = dict(manifest.architecture.options)
        self.mode = str(self.options.get("execution", "argmax"))
        if self.mode not in ("argmax", "sample"):
            raise ModelSpecMismatch(f"model {manifest.name!r}: execution must be argmax or sample, got {self.mode!r}")
        self._rng = np.random.default_rng(manifest.seed)
        self._lock = threading.Lock()

    @property
    def chunk(self) -> int | None:
        """Vehicles deciding in one turn (``policies.sequential``); None: all at once."""
        value = self.options.get("decision_chunk")
        return None if value is None else int(value)

    def order(self, n: int) -> NDArray[np.intp]:
        """The order vehicles decide in this tick (drawn, so no vehicle always goes first)."""
        with self._lock:
            return self._rng.permutation(n)

    def uniforms(self, n: int) -> NDArray[np.float64] | None:
        """The draws :meth:`choose` makes over a tick's turns, all at once (the same numbers, in the same order);
        None when executing by argmax."""
        if self.mode == "argmax" or n == 0:
            return None
        with self._lock:
            return self._rng.random(n)

    def decide(
        self,
        observation: MigrationObservation,
        host: NDArray[np.int64] | None,
        score: Callable[[MigrationObservation, NDArray[np.int64], NDArray[np.intp]], torch.Tensor],
    ) -> MigrationDecision:
        """Targets for every vehicle: all at once, or in turns of ``chunk`` (``policies.sequential``)."""
        n = observation.mask.shape[0]
        chunk = self.chunk or max(n, 1)
        with torch.inference_mode():
            turns = decide_in_turns(
                observation, host, score, lambda logits, probs, rows: self.choose(logits, probs), self.order(n), chunk
            )
        return MigrationDecision(turns.target, turns.probabilities)

    def choose(self, logits: torch.Tensor, probs: torch.Tensor) -> NDArray[np.int64]:
        if self.mode == "argmax" or len(logits) == 0:
            return torch.argmax(logits, dim=-1).numpy().astype(np.int64)
        p = probs.double().numpy()
        cum = np.cumsum(p, axis=1)
        with self._lock:
            u = self._rng.random(len(p))[:, None] * cum[:, -1:]
        target = (cum < u).sum(axis=1)
        # Never beyond the last allowed server (rounding at the top of the cumulative sum).
        last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)
        return np.minimum(target, last).astype(np.int64)


class TorchMigrationPolicy:
    """A trained migration actor: argmax of the masked logits over paper A's observation (Eq. 19)."""

    needs_window_mean = False

    def __init__(self, manifest: ModelManifest, actor: MlpActor) -> None:
        if manifest.kind != "migration":
            raise ModelSpecMismatch(f"model {manifest.name!r} is a {manifest.kind} model, not a migration one")
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.actor = actor
        self.sampler = ExecutionSampler(manifest)

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        spec = self.manifest.observation
        if servers.size != spec.n_servers or observation.feature_dim != spec.feature_dim:
            raise ModelSpecMismatch(
                f"model {self.name!r} was trained for {spec.n_servers} servers and {spec.feature_dim} "
                f"features; this scenario has {servers.size} servers and {observation.feature_dim} features"
            )
        return self.sampler.decide(observation, host, self._logits)

    def _logits(
        self, observation: MigrationObservation, host: NDArray[np.int64], rows: NDArray[np.intp]
    ) -> torch.Tensor:
        mask = torch.from_numpy(np.ascontiguousarray(observation.mask, dtype=bool))
        logits = self.actor(torch.from_numpy(np.ascontiguousarray(observation.features, np.float32)))
        return logits.masked_fill(~mask, MASKED_LOGIT)


class TorchOffloadPolicy:
    """A trained offloading actor: rho = sigmoid(actor(o)) over paper B's observation (Eq. 3-4, 37)."""

    needs_window_mean = True

    def __init__(self, manifest: ModelManifest, actor: MlpActor, params: OffloadParams) -> None:
        if manifest.kind != "offload":
            raise ModelSpecMismatch(f"model {manifest.name!r} is a {manifest.kind} model, not an offload one")
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.actor = actor
        self.params = params

    def decide(self, inputs: OffloadInputs) -> OffloadDecision:
        check_offload_inputs(inputs)
        obs = offload_observation(inputs.now, inputs.window_mean)
        if obs.shape[1] != self.manifest.observation.feature_dim:
            raise ModelSpecMismatch(
                f"model {self.name!r} expects {self.manifest.observation.feature_dim} offload features, "
                f"got {obs.shape[1]}"
            )
        with torch.inference_mode():
            rho = torch.sigmoid(self.actor(torch.from_numpy(obs)))[:, 0]
        return expected_outcome(rho.double().numpy(), inputs, self.params)


def build_migration_policy(
    manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor], **_constants: object
) -> TorchMigrationPolicy:
    """The ``mlp`` architecture's migration policy (``twin_service.policies.learned``): paper A's o_v."""
    return TorchMigrationPolicy(manifest, load_actor(manifest, state_dict))


def build_offload_policy(
    manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor], params: OffloadParams
) -> TorchOffloadPolicy:
    """The ``mlp`` architecture's offloading policy."""
    return TorchOffloadPolicy(manifest, load_actor(manifest, state_dict), params)

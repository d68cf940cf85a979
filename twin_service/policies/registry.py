"""Policies by name: the heuristics, and trained models stored under ``models/<name>/``.

A stored model is a folder holding ``manifest.json`` (:class:`~twin_service.policies.manifest.ModelManifest`)
and ``weights.safetensors`` (the actor's state dict, read with ``safetensors.torch.load_file``: no pickle,
so a model file cannot run code). :func:`save_model` writes one; :class:`ModelRegistry` lists and loads
them and refuses one whose spec does not fit the scenario (:class:`ModelSpecMismatch`): another observation
spec, or other values of the scenario parameters its inputs and physics depend on (:mod:`twin_service.policies.fit`:
an offloading actor the ``[offload]`` constants, tick and window; a per-server actor the tick and decision
interval; a layout-bound actor the whole scenario). An empty or
missing models folder is fine: only the heuristics are offered then.

torch is imported only when a model is saved or loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from twin_service.config import (
    BITS_PER_MB,
    ChannelParams,
    OffloadParams,
    SatelliteParams,
    ScenarioParams,
    TaskParams,
    describe_errors,
)
from twin_service.policies.base import MigrationPolicy, OffloadPolicy, PolicyKind
from twin_service.policies.errors import ModelError, UnknownPolicyError
from twin_service.policies.finite import check_finite_weights
from twin_service.policies.manifest import (
    MANIFEST_FILE,
    MODEL_NAME,
    WEIGHTS_FILE,
    ModelManifest,
    check_spec,
)
from twin_service.policies.migration import GreedyPolicy, LeastLoadedPolicy, RandomPolicy, StickyNearestPolicy
from twin_service.policies.offload import LocalOnlyPolicy, NearestLeastLoadedPolicy

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MIGRATION_HEURISTICS = ("least-loaded", "sticky-nearest", "greedy", "random")
"""Names of the built-in migration policies; ``least-loaded`` is the default (it beats sticky-nearest on
held-out days: ``results/heuristics``)."""
OFFLOAD_HEURISTICS = ("nearest-least-loaded", "local-only")
"""Names of the built-in offloading policies; ``nearest-least-loaded`` is the default."""
DEFAULT_MIGRATION_POLICY = MIGRATION_HEURISTICS[0]
DEFAULT_OFFLOAD_POLICY = OFFLOAD_HEURISTICS[0]


@dataclass(frozen=True)
class LoadedModel:
    manifest: ModelManifest
    state_dict: dict[str, torch.Tensor]


def save_model(directory: str | Path, manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write ``manifest.json`` and ``weights.safetensors`` into ``directory`` (named after the model).

    The folder name must be the model's name (the registry finds models by folder). Returns the folder.
    """
    from safetensors.torch import save_file  # deferred: torch is heavy

    folder = Path(directory)
    if folder.name != manifest.name:
        raise ModelError(f"a model folder must be named after its model: {folder.name!r} != {manifest.name!r}")
    if manifest.name in MIGRATION_HEURISTICS + OFFLOAD_HEURISTICS:
        raise ModelError(f"{manifest.name!r} is the name of a built-in heuristic; choose another")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    # One metadata entry: safetensors writes a map of several in a different order in each process, and the same
    # weights must give the same file (a model is reproduced byte for byte by its manifest's command).
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"name": manifest.name})
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    return folder


class ModelRegistry:
    """The trained models under one folder (``Settings.models_dir``)."""

    def __init__(self, models_dir: str | Path) -> None:
        self.models_dir = Path(models_dir)

    def names(self) -> list[str]:
        """Names of the model folders that hold a manifest, sorted."""
        if not self.models_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.models_dir.iterdir() if MODEL_NAME.match(p.name) and (p / MANIFEST_FILE).is_file()
        )

    def manifest(self, name: str) -> ModelManifest:
        """The manifest of model ``name``; :class:`UnknownPolicyError` if there is none."""
        if not MODEL_NAME.match(name):
            raise UnknownPolicyError(f"no model named {name!r}")
        path = self.models_dir / name / MANIFEST_FILE
        if not path.is_file():
            raise UnknownPolicyError(f"no model named {name!r} in {self.models_dir}")
        try:
            text = path.read_text()
            if _is_predictor(text):
                raise UnknownPolicyError(f"model {name!r} is a workload predictor, not a policy (use --predictor)")
            manifest = ModelManifest.model_validate_json(text)
        except ValidationError as exc:
            raise ModelError(f"{path}: not a valid model manifest: {describe_errors(exc)}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: unreadable manifest: {exc}") from exc
        if manifest.name != name:
            raise ModelError(f"{path}: manifest names the model {manifest.name!r}, its folder is {name!r}")
        return manifest

    def manifests(self) -> list[ModelManifest]:
        """Every readable manifest (unreadable ones are logged and skipped)."""
        found = []
        for name in self.names():
            try:
                found.append(self.manifest(name))
            except UnknownPolicyError:  # a workload predictor (twin_service.predict) shares the folder
                continue
            except ModelError as exc:
                log.warning("skipping model %s: %s", name, exc)
        return found

    def load(
        self,
        name: str,
        *,
        n_servers: int | None = None,
        param_hash: str | None = None,
        params: ScenarioParams | None = None,
    ) -> LoadedModel:
        """Manifest and weights of ``name``, after checking that it fits (see :func:`check_spec`)."""
        from safetensors.torch import load_file  # deferred: torch is heavy

        manifest = self.manifest(name)
        check_spec(manifest, n_servers=n_servers, param_hash=param_hash, params=params)
        weights = self.models_dir / name / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"model {name!r} has no {WEIGHTS_FILE}")
        try:
            state = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own SafetensorError and OSError
            raise ModelError(f"{weights}: unreadable weights: {exc}") from exc
        check_finite_weights(f"model {name!r}", state)
        return LoadedModel(manifest, state)


def _is_predictor(manifest_text: str) -> bool:
    """Whether a manifest is a workload predictor's (``"kind": "predictor"``), stored beside the policies."""
    try:
        raw = json.loads(manifest_text)
    except json.JSONDecodeError:
        return False
    return isinstance(raw, dict) and raw.get("kind") == "predictor"


def _registry_model(
    kind: PolicyKind,
    name: str,
    registry: ModelRegistry | None,
    n_servers: int | None,
    param_hash: str | None,
    params: ScenarioParams | None = None,
) -> LoadedModel:
    if registry is None:
        raise UnknownPolicyError(f"unknown {kind} policy {name!r}")
    try:
        manifest = registry.manifest(name)
    except UnknownPolicyError:
        known = MIGRATION_HEURISTICS if kind == "migration" else OFFLOAD_HEURISTICS
        models = [m.name for m in registry.manifests() if m.kind == kind]
        raise UnknownPolicyError(f"unknown {kind} policy {name!r}: choose one of {list(known) + models}") from None
    if manifest.kind != kind:
        raise UnknownPolicyError(f"model {name!r} is a {manifest.kind} model, not a {kind} policy")
    return registry.load(name, n_servers=n_servers, param_hash=param_hash, params=params)


def migration_policy(
    name: str = DEFAULT_MIGRATION_POLICY,
    *,
    task: TaskParams | None = None,
    seed: int = 0,
    registry: ModelRegistry | None = None,
    n_servers: int | None = None,
    param_hash: str | None = None,
    channel: ChannelParams | None = None,
    satellite: SatelliteParams | None = None,
    params: ScenarioParams | None = None,
) -> MigrationPolicy:
    """The migration policy called ``name``: a heuristic, or a stored model checked against the scenario.

    ``task`` gives S_v (what hosting a twin adds to a server) to the capacity-aware default; ``seed``
    seeds greedy's exploration and random's draws; ``channel`` and ``satellite`` (the scenario's; defaults
    otherwise) give least-loaded its latency model. A model is checked against ``params`` (the serving
    scenario's parameters) or, when they are not known, ``param_hash``.
    """
    if name == "sticky-nearest":
        return StickyNearestPolicy((task or TaskParams()).data_size_mb * BITS_PER_MB)
    if name == "greedy":
        return GreedyPolicy(seed=seed)
    if name == "random":
        return RandomPolicy(seed=seed)
    if name == "least-loaded":
        return LeastLoadedPolicy(task, channel, satellite)
    model = _registry_model("migration", name, registry, n_servers, param_hash, params)
    from twin_service.policies.learned import build_migration_policy

    return build_migration_policy(model.manifest, model.state_dict, task=task, channel=channel, satellite=satellite)


def offload_policy(
    name: str = DEFAULT_OFFLOAD_POLICY,
    *,
    offload: OffloadParams | None = None,
    registry: ModelRegistry | None = None,
    param_hash: str | None = None,
    params: ScenarioParams | None = None,
) -> OffloadPolicy:
    """The offloading policy called ``name``; ``offload`` holds the cost-model constants (paper B); a model is
    checked against ``params`` or, when they are not known, ``param_hash``."""
    constants = offload or OffloadParams()
    if name == "nearest-least-loaded":
        return NearestLeastLoadedPolicy(constants)
    if name == "local-only":
        return LocalOnlyPolicy(constants)
    model = _registry_model("offload", name, registry, None, param_hash, params)
    from twin_service.policies.learned import build_offload_policy

    return build_offload_policy(model.manifest, model.state_dict, constants)


def policy_catalogue(registry: ModelRegistry | None = None) -> list[dict[str, Any]]:
    """Every policy that can be named: ``{kind, name, version, source, algorithm}``."""
    from twin_service.policies.base import HEURISTIC_VERSION

    rows: list[dict[str, Any]] = [
        {"kind": "migration", "name": n, "version": HEURISTIC_VERSION, "source": "heuristic", "algorithm": n}
        for n in MIGRATION_HEURISTICS
    ] + [
        {"kind": "offload", "name": n, "version": HEURISTIC_VERSION, "source": "heuristic", "algorithm": n}
        for n in OFFLOAD_HEURISTICS
    ]
    if registry is not None:
        rows += [
            {
                "kind": m.kind,
                "name": m.name,
                "version": m.version,
                "source": "model",
                "algorithm": m.algorithm,
            }
            for m in registry.manifests()
        ]
    return rows

"""Learned policies by architecture: the registry rebuilds a stored model's network from its manifest.

Each architecture kind names the module that builds it; a module is imported only when a model of its kind
is loaded (torch is heavy). A builder takes the manifest and the weights (a state dict read without
pickle) and returns a policy behind the interface of :mod:`twin_service.policies.base`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twin_service.config import ChannelParams, OffloadParams, SatelliteParams, TaskParams
from twin_service.policies.errors import ModelError, ModelSpecMismatch
from twin_service.policies.manifest import ModelManifest

if TYPE_CHECKING:
    import torch

BUILDERS: dict[str, str] = {
    "mlp": "twin_service.policies.torch_policy",
    "per-server": "twin_service.policies.per_server",
    "af-marl": "twin_service.policies.af_marl",
    "q-bins": "twin_service.policies.q_offload",
}
"""Architecture kind -> module with ``build_migration_policy`` and/or ``build_offload_policy``."""


def _builder(manifest: ModelManifest, function: str) -> Any:
    import torch

    # A decision batch is a few small forward passes: torch's intra-op threads only contend with the service's
    # own and with whatever else runs (measured on 2 cores under load: a day's evaluation of a per-server
    # policy spent a fifth of its time in a spinning tanh; AF-MARL 60 ms per 1,000 vehicles with 2 threads, 15
    # ms with 1). Serving a learned policy therefore uses one thread.
    torch.set_num_threads(1)
    kind = manifest.architecture.kind
    module_name = BUILDERS.get(kind)
    if module_name is None:
        raise ModelSpecMismatch(f"model {manifest.name!r}: unknown architecture {kind!r}; known: {sorted(BUILDERS)}")
    builder = getattr(importlib.import_module(module_name), function, None)
    if builder is None:
        raise ModelSpecMismatch(f"model {manifest.name!r}: architecture {kind!r} has no {function}")
    return builder


def build_migration_policy(
    manifest: ModelManifest,
    state_dict: Mapping[str, torch.Tensor],
    task: TaskParams | None = None,
    channel: ChannelParams | None = None,
    satellite: SatelliteParams | None = None,
) -> Any:
    """The migration policy a stored model describes (:class:`ModelSpecMismatch` if it cannot be built).

    ``task``, ``channel`` and ``satellite`` are the serving scenario's constants, which the per-server features
    are computed with."""
    builder = _builder(manifest, "build_migration_policy")
    return _built(manifest, lambda: builder(manifest, state_dict, task=task, channel=channel, satellite=satellite))


def build_offload_policy(manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor], params: OffloadParams) -> Any:
    """The offloading policy a stored model describes; ``params`` hold paper B's cost-model constants."""
    builder = _builder(manifest, "build_offload_policy")
    return _built(manifest, lambda: builder(manifest, state_dict, params))


def _built(manifest: ModelManifest, build: Callable[[], Any]) -> Any:
    """``build()``, with what torch raises for a network the manifest cannot describe as one clear error."""
    try:
        return build()
    except ModelError:
        raise
    except (RuntimeError, MemoryError, ValueError, TypeError, KeyError, IndexError) as exc:
        first = " ".join(str(exc).split())[:600] or type(exc).__name__  # torch's message, on one line
        raise ModelSpecMismatch(
            f"model {manifest.name!r} cannot be built from its manifest and weights: {first}"
        ) from exc

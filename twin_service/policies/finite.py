"""Finite or refuse: a model's weights at load and its outputs on every call.

A NaN in a weight spreads to every output it touches; a NaN probability or forecast silently turns a decision
into nonsense (a NaN load masks no server, a NaN rho offloads nothing). So the registry and the predictor loader
check every floating-point tensor once at load, and the decision functions check what a model returns on every
call; either failure is a :class:`~twin_service.policies.errors.ModelError` naming the model, which the command
line reports in one line and the API answers with 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from twin_service.policies.errors import ModelError, ModelOutputError


def check_finite_weights(what: str, state_dict: Mapping[str, Any]) -> None:
    """Raise :class:`ModelError` if a floating-point tensor of ``state_dict`` holds NaN or infinity.

    ``what`` names the model in the message (``model 'dm-mappo-city'``)."""
    import torch  # deferred: torch is heavy, and only models need it

    bad = []
    for key, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append(f"{key} ({count} of {tensor.numel()})")
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ModelError(f"{what}: its weights hold NaN or infinite values, in {shown}; refusing to serve it")


def check_finite_outputs(what: str, values: Any, output: str) -> None:
    """Raise :class:`ModelOutputError` if ``values`` (an array a model just returned) are not all finite."""
    array = np.asarray(values)
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        count = int((~np.isfinite(array)).sum())
        raise ModelOutputError(f"{what} produced {count} non-finite {output} (of {array.size}); refusing to use them")

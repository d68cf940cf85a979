"""Action masks on logits: what every masked actor, trainer and decision procedure shares (paper A, Eq. 20, 23-24).

A masked server gets the logit :data:`MASKED_LOGIT`, so its softmax weight is exactly 0 (sb3-contrib MaskablePPO
does the same); :func:`masked_probabilities` is that softmax, with the masked entries zeroed.
"""

from __future__ import annotations

import torch

MASKED_LOGIT = -1e9
"""Logit given to masked actions (sb3-contrib MaskablePPO does the same); its softmax weight is 0."""


def masked_probabilities(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of the logits with masked entries set to :data:`MASKED_LOGIT` (exactly 0 after)."""
    masked = logits.masked_fill(~mask, MASKED_LOGIT)
    return torch.softmax(masked, dim=-1) * mask

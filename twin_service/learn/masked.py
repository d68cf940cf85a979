"""A categorical distribution over the feasible actions only (paper A's dynamic mask, Eq. 23).

Masked logits are set to a large negative number (as sb3-contrib's MaskablePPO does), so their probability
is exactly 0 after the softmax and their gradient vanishes; the entropy sums over the feasible actions only,
so a vehicle with one feasible server has entropy 0 instead of a spurious ``-0 * log 0`` term.
"""

from __future__ import annotations

import torch

from twin_service.policies.masking import MASKED_LOGIT


class MaskedCategorical:
    """``Categorical(softmax(logits))`` restricted to ``mask`` (True = allowed; every row needs one)."""

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
        self.mask = mask.bool()
        self.logits = logits.masked_fill(~self.mask, MASKED_LOGIT)
        self.log_probs = torch.log_softmax(self.logits, dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp() * self.mask

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        p_log_p = torch.where(self.mask, self.log_probs.exp() * self.log_probs, torch.zeros_like(self.log_probs))
        return -p_log_p.sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.multinomial(self.probs, 1, generator=generator).squeeze(-1)

    def mode(self) -> torch.Tensor:
        """The most probable feasible action (paper A, Eq. 20: argmax at execution)."""
        return self.logits.argmax(dim=-1)

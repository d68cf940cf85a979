"""The forecasting networks of paper A's Table II (torch): its LSTM-based Transformer and four baselines.

Every network maps a batch of windows ``(B, T, F)`` (one row per series, see
:func:`twin_service.predict.features.model_input`) to ``(B,)`` outputs (decoded by
:func:`~twin_service.predict.features.decode_forecast`).

* :class:`LstmTransformer` - section V, Fig. 2: an LSTM over the window (Eq. 17), a dense layer to
  ``T x d_model``, multi-head self-attention (Eq. 18), then a dense output. Errata (NOTES.md): Eq. 17e
  wraps the cell state in a sigmoid; the LSTM cell of the paper's own reference [38] (and torch's) is
  ``C_t = f_t * C_{t-1} + i_t * C~_t``, used here. Eq. 18d omits the values: a head is
  ``softmax(Q K^T / sqrt(d_k)) V``. As in a Transformer layer, the attention output is added to its input
  and layer-normalised. Paper A's sizes: T = 6, LSTM hidden 32, 4 heads, d_k = 64 per head.
* :class:`RnnForecaster` - Table II's LSTM and GRU, and CNN-LSTM / CNN-GRU with a 1-D convolution of kernel
  size 1 (a per-step dense layer over the features, with ReLU) before the recurrent layer.

Only the forecast for the window's last step is read, so attention is computed for that query only
(exactly the last row of the full T x T attention; every layer after it works per position).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("lstm-transformer", "lstm", "gru", "cnn-lstm", "cnn-gru")
"""Networks by name (``Architecture.kind`` of a stored predictor)."""
ALGORITHM_NAMES = {
    "lstm-transformer": "LSTM-based Transformer",
    "lstm": "LSTM",
    "gru": "GRU",
    "cnn-lstm": "CNN-LSTM",
    "cnn-gru": "CNN-GRU",
}


class MultiHeadAttention(nn.Module):
    """Paper A Eq. 18 with the values restored: ``Concat(head_1..head_H) W_O``, ``head_h = softmax(Q_h K_h^T /
    sqrt(d_k)) V_h``, ``Q_h = H W_Q^h``, ``K_h = H W_K^h``, ``V_h = H W_V^h`` (each head its own d_k columns)."""

    def __init__(self, d_model: int, heads: int, d_k: int) -> None:
        super().__init__()
        self.heads = heads
        self.d_k = d_k
        self.w_q = nn.Linear(d_model, heads * d_k, bias=False)
        self.w_k = nn.Linear(d_model, heads * d_k, bias=False)
        self.w_v = nn.Linear(d_model, heads * d_k, bias=False)
        self.w_o = nn.Linear(heads * d_k, d_model, bias=False)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``queries`` ``(B, Tq, d_model)`` attend over ``keys`` ``(B, T, d_model)``; returns ``(B, Tq, d_model)``."""
        b, tq, _ = queries.shape
        t = keys.shape[1]
        q = self.w_q(queries).view(b, tq, 1, self.heads, self.d_k)
        k = self.w_k(keys).view(b, 1, t, self.heads, self.d_k)
        v = self.w_v(keys).view(b, 1, t, self.heads, self.d_k)
        # Products and sums over tiny (T = 6) axes: faster on a CPU than thousands of batched 1 x 6 matmuls.
        scores = (q * k).sum(-1) / math.sqrt(self.d_k)  # (B, Tq, T, H)
        weights = torch.softmax(scores, dim=2)
        heads = (weights.unsqueeze(-1) * v).sum(2)  # (B, Tq, H, d_k): Eq. 18d with its V
        return self.w_o(heads.reshape(b, tq, self.heads * self.d_k))

    def folded(self) -> FoldedAttention:
        """The same attention with each head's products of weights multiplied out, for serving."""
        return FoldedAttention(self)


class FoldedAttention(nn.Module):
    """:class:`MultiHeadAttention` for one query, with ``W_Q^h W_K^h^T`` and ``W_V^h W_O^h`` multiplied out.

    ``q_h k_j^T = e_q (W_Q^h W_K^h^T) e_j^T`` and ``sum_j a_hj v_hj W_O^h = (sum_j a_hj e_j) (W_V^h W_O^h)``:
    exactly the attention of Eq. 18, with two ``d_model x d_model`` products per head instead of projecting
    every step to H x d_k keys and values (five times fewer operations at paper A's sizes). Inference only.
    """

    def __init__(self, attention: MultiHeadAttention) -> None:
        super().__init__()
        h, d_k = attention.heads, attention.d_k
        with torch.no_grad():
            d = attention.w_q.weight.shape[1]
            w_q = attention.w_q.weight.T.reshape(d, h, d_k)
            w_k = attention.w_k.weight.T.reshape(d, h, d_k)
            w_v = attention.w_v.weight.T.reshape(d, h, d_k)
            w_o = attention.w_o.weight.T.reshape(h, d_k, d)
            self.qk = torch.einsum("ahk,bhk->ahb", w_q, w_k).reshape(d, h * d) / math.sqrt(d_k)
            self.vo = torch.einsum("ahk,hkb->hab", w_v, w_o).reshape(h * d, d)
        self.heads, self.d_model = h, d

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        b, tq, d = queries.shape
        u = (queries.reshape(b * tq, d) @ self.qk).view(b, tq, 1, self.heads, d)
        scores = (u * keys.view(b, 1, -1, 1, d)).sum(-1)  # (B, Tq, T, H)
        weights = torch.softmax(scores, dim=2)
        mixed = (weights.unsqueeze(-1) * keys.view(b, 1, -1, 1, d)).sum(2)  # (B, Tq, H, d)
        return (mixed.reshape(b * tq, self.heads * d) @ self.vo).view(b, tq, d)


class LstmTransformer(nn.Module):
    """Paper A's LSTM-based Transformer (section V, Eq. 17-18 with the errata)."""

    def __init__(self, n_features: int, hidden: int = 32, d_model: int = 64, heads: int = 4, d_k: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, d_model)
        self.attention = MultiHeadAttention(d_model, heads, d_k)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, 1)
        self._folded: tuple[FoldedAttention, ...] = ()

    def fold_for_serving(self) -> LstmTransformer:
        """Serve with :class:`FoldedAttention` (same outputs, faster); call again after changing the weights.

        The folded copy is kept outside the module's parameters: it is never trained nor saved."""
        object.__setattr__(self, "_folded", (self.attention.folded(),))
        return self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # (B, T, hidden): H_t of Eq. 17
        e = self.dense(h)  # (B, T, d_model)
        last = e[:, -1:, :]
        attention = self._folded[0] if self._folded and not self.training else self.attention
        z = self.norm(last + attention(last, e))
        return self.out(z[:, 0, :]).squeeze(-1)


class RnnForecaster(nn.Module):
    """LSTM or GRU over the window, optionally after a kernel-1 1-D convolution (CNN-LSTM, CNN-GRU)."""

    def __init__(self, n_features: int, cell: str = "lstm", hidden: int = 32, conv_channels: int = 0) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be lstm or gru, got {cell!r}")
        self.conv = nn.Conv1d(n_features, conv_channels, kernel_size=1) if conv_channels else None
        width = conv_channels or n_features
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(width, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        h, _ = self.rnn(x)
        return self.out(h[:, -1, :]).squeeze(-1)


def default_options(kind: str) -> dict[str, int]:
    """Paper A's sizes for each network (section VII-A): LSTM hidden 32; 4 heads of d_k 64; conv width 32."""
    if kind == "lstm-transformer":
        return {"hidden": 32, "d_model": 64, "heads": 4, "d_k": 64}
    if kind in ("lstm", "gru"):
        return {"hidden": 32}
    if kind in ("cnn-lstm", "cnn-gru"):
        return {"hidden": 32, "conv_channels": 32}
    raise ValueError(f"unknown network {kind!r}: choose one of {', '.join(ARCHITECTURES)}")


def build_network(kind: str, n_features: int, options: dict[str, Any] | None = None) -> nn.Module:
    """The network called ``kind`` with untrained weights (``options`` override :func:`default_options`)."""
    opts = default_options(kind) | dict(options or {})
    if kind == "lstm-transformer":
        return LstmTransformer(n_features, opts["hidden"], opts["d_model"], opts["heads"], opts["d_k"])
    cell = kind.removeprefix("cnn-")
    return RnnForecaster(n_features, cell, opts["hidden"], opts.get("conv_channels", 0))

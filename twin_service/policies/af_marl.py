"""AF-MARL's networks (paper B, Sec. V-VI) and the served offloading policy (architecture kind ``af-marl``).

The trainer (:mod:`twin_service.learn.af_marl`) and serving build the same modules from here, and both compute
the actor's input with :func:`actor_inputs`: the twin now x (Eq. 35) and its 10 s window mean c (Eq. 37) as
:func:`twin_service.observe.offload_observation` scales them. In the bridge the window mean is the engine's
``ctx.offload_window_mean()``; in the API it is read back from Redis. The two are identical (a test on main).

* :class:`Cvae` (Eq. 38-40): ``q(z | x, c)`` and ``p(x | z, c)``, three layers each, latent 64. The actor sees the
  observation together with the encoder's mean ``mu(x, c)``, the context-aware latent of Sec. V-B.
* :class:`GlobalModel` (Alg. 1, Eq. 25-30): the transformer layers of the federated global model. Its tokens are
  the twin's features (each token holds one feature now and its window mean) and the CVAE latent; Eq. 25
  embeds them, Eq. 26 adds sinusoidal positions, Eq. 27 attends, Eq. 28 is the feed-forward, Eq. 29 the residual
  and layer norm after each sub-layer, Eq. 30 the linear output.
* :class:`AfMarlActor`: the global model, then Table V's two Tanh layers, then a sigmoid: rho in [0, 1] (Eq. 47).

Two ablations (issue 21), recorded in the manifest's architecture options and served as trained: ``trunk="mlp"``
replaces the transformer by one linear layer over the observation and the latent (:class:`MlpTrunk`), and
``cvae=False`` leaves the CVAE out (the actor sees the observation only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from twin_service.config import OffloadParams
from twin_service.observe import OFFLOAD_FEATURES, offload_observation
from twin_service.policies import onnx_graphs
from twin_service.policies.base import OffloadDecision, OffloadInputs
from twin_service.policies.errors import ModelSpecMismatch
from twin_service.policies.manifest import ModelManifest
from twin_service.policies.offload import check_offload_inputs, expected_outcome
from twin_service.policies.onnx_graphs import AfMarlRuntime

KIND = "af-marl"
TRUNKS = ("transformer", "mlp")
INITIAL_LOGIT = -2.0
"""Initial bias of the actor's output: rho starts at sigmoid(-2) ~ 0.12."""
N_FEATURES = len(OFFLOAD_FEATURES)


def actor_inputs(now: Mapping[str, np.ndarray], window_mean: Mapping[str, np.ndarray] | None) -> torch.Tensor:
    """``(V, 2F)`` float32: x (the twin now) then c (its 10 s window mean), scaled (``offload_observation``)."""
    return torch.from_numpy(offload_observation(dict(now), None if window_mean is None else dict(window_mean)))


def split_xc(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The observation's two halves: x = the twin now, c = its window mean (the CVAE's input and condition)."""
    return obs[..., :N_FEATURES], obs[..., N_FEATURES:]


def _mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class Cvae(nn.Module):
    """Conditional VAE (paper B, Eq. 38-40): three-layer encoder ``q(z | x, c)`` and decoder ``p(x | z, c)``.

    The decoder's output is linear, not Table V's sigmoid: our scaled features are not confined to [0, 1]
    (CPU in GHz is 1.5-3.5). Dropout (Table V: 0.2) is left out: the latent must be deterministic when served.
    """

    def __init__(self, x_dim: int = N_FEATURES, c_dim: int = N_FEATURES, latent: int = 64, hidden: int = 64):
        super().__init__()
        self.latent = latent
        self.encoder = _mlp([x_dim + c_dim, hidden, hidden, 2 * latent])
        self.decoder = _mlp([latent + c_dim, hidden, hidden, x_dim])

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | x, c)`` (Eq. 38)."""
        h = self.encoder(torch.cat([x, c], dim=-1))
        return h[..., : self.latent], h[..., self.latent :].clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Mean of ``p(x | z, c)`` (Eq. 39)."""
        return self.decoder(torch.cat([z, c], dim=-1))

    def forward(self, x: torch.Tensor, c: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decode ``z = mu + exp(logvar / 2) eps`` (reparameterised); returns x_hat, mu, logvar."""
        mu, logvar = self.encode(x, c)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z, c), mu, logvar


def cvae_loss(
    x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The negative of Eq. 40: reconstruction error plus ``kl_weight`` times ``KL(q(z | x, c) || N(0, I))``.

    With a unit-variance Gaussian decoder ``-log p(x | z, c)`` is half the squared error up to a constant; we use
    the mean squared error per feature. ``KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar))`` per sample, averaged.
    Returns (total, reconstruction, KL).
    """
    recon = ((x_hat - x) ** 2).mean()
    kl = (-0.5 * (1.0 + logvar - mu**2 - torch.exp(logvar)).sum(dim=-1)).mean()
    return recon + kl_weight * kl, recon, kl


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """``(n, d)`` positional encodings of Eq. 26 as in Vaswani et al.: ``sin(i / 10000^(2k/d))`` in dimension 2k,
    ``cos`` of the same in dimension 2k + 1 (the paper's ``2j/d`` with j the pair index)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    pair = torch.arange(0, d, 2, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, pair / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d // 2])
    return pe.float()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d_k)) V`` (Eq. 27) over the last two dimensions."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v


class TransformerLayer(nn.Module):
    """Self-attention (Eq. 27), then the feed-forward ``ReLU(x W1 + b1) W2 + b2`` (Eq. 28); each sub-layer is
    followed by its residual connection and a layer norm (Eq. 29, Sec. V-A)."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w_q = nn.Linear(d_model, d_model, bias=False)
        self.w_k = nn.Linear(d_model, d_model, bias=False)
        self.w_v = nn.Linear(d_model, d_model, bias=False)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        h = self.norm1(e + attention(self.w_q(e), self.w_k(e), self.w_v(e)))
        return self.norm2(h + self.ff(h))


class GlobalModel(nn.Module):
    """The federated global model's transformer (paper B, Alg. 1, Eq. 25-30).

    Tokens: one per twin feature, holding (feature now, its window mean), and one for the CVAE latent. Each
    feature token is embedded by ``e = W_e x + b_e`` (Eq. 25; the latent has its own embedding), the sinusoidal
    positions of Eq. 26 mark which feature a token is, ``n_layers`` transformer layers follow (Eq. 27-29), and
    the mean over tokens goes through the linear output ``y = W_o z + b_o`` (Eq. 30).
    """

    def __init__(self, latent: int = 64, d_model: int = 32, d_ff: int = 64, n_layers: int = 1, out_dim: int = 64):
        super().__init__()
        self.embed = nn.Linear(2, d_model)
        self.embed_latent = nn.Linear(latent, d_model) if latent else None  # no CVAE: no latent token
        n_tokens = N_FEATURES + (1 if latent else 0)
        self.register_buffer("positions", sinusoidal_positions(n_tokens, d_model), persistent=False)
        self.layers = nn.ModuleList(TransformerLayer(d_model, d_ff) for _ in range(n_layers))
        self.out = nn.Linear(d_model, out_dim)

    def forward(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        x, c = split_xc(obs)
        tokens = self.embed(torch.stack([x, c], dim=-1))
        if self.embed_latent is not None:
            tokens = torch.cat([tokens, self.embed_latent(latent).unsqueeze(-2)], dim=-2)
        z = tokens + self.positions
        for layer in self.layers:
            z = layer(z)
        return self.out(z.mean(dim=-2))


class MlpTrunk(nn.Module):
    """The ablation without the transformer: one linear layer over the observation and the latent, in place of the
    global model (so that the actor is an MLP of Table V's two Tanh layers over them)."""

    def __init__(self, latent: int = 64, out_dim: int = 64):
        super().__init__()
        self.inp = nn.Linear(2 * N_FEATURES + latent, out_dim)

    def forward(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.inp(torch.cat([obs, latent], dim=-1))


class AfMarlActor(nn.Module):
    """The deterministic actor mu_theta(s) of Eq. 51 over s = (observation, CVAE latent) (Eq. 46): the global model,
    Table V's two Tanh layers, and a sigmoid to rho in [0, 1] (Eq. 47)."""

    def __init__(
        self,
        latent: int = 64,
        d_model: int = 32,
        d_ff: int = 64,
        n_layers: int = 1,
        hidden: int = 64,
        trunk: str = "transformer",
    ):
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
        self.trunk = (
            GlobalModel(latent, d_model, d_ff, n_layers, hidden) if trunk == "transformer" else MlpTrunk(latent, hidden)
        )
        self.head = nn.Sequential(nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        with torch.no_grad():  # start near local computing (rho ~ 0.12): half-offloading everything saturates the RSUs
            self.head[-1].bias.fill_(INITIAL_LOGIT)

    def forward(self, obs: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``(..., 1)`` rho in [0, 1]."""
        return torch.sigmoid(self.head(self.trunk(obs, latent)))


class AfMarlNetwork(nn.Module):
    """What is served: the CVAE (for the latent) and the actor. ``forward(obs) -> rho (V,)``."""

    def __init__(
        self,
        latent: int = 64,
        d_model: int = 16,
        n_layers: int = 1,
        hidden: int = 64,
        cvae_hidden: int = 64,
        trunk: str = "transformer",
        cvae: bool = True,
    ):
        super().__init__()
        self.cvae = Cvae(latent=latent, hidden=cvae_hidden) if cvae else None
        self.latent_dim = latent if cvae else 0
        self.actor = AfMarlActor(self.latent_dim, d_model, 2 * d_model, n_layers, hidden, trunk)

    def latent(self, obs: torch.Tensor) -> torch.Tensor:
        """The context-aware latent: the CVAE encoder's mean ``mu(x, c)`` (deterministic at serving time); without
        the CVAE an empty one."""
        if self.cvae is None:
            return obs.new_zeros((*obs.shape[:-1], 0))
        return self.cvae.encode(*split_xc(obs))[0]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs, self.latent(obs))[..., 0]


def network_options(manifest: ModelManifest) -> dict[str, int | str | bool]:
    o = manifest.architecture.options
    out: dict[str, int | str | bool] = {
        k: int(o[k]) for k in ("latent", "d_model", "n_layers", "hidden", "cvae_hidden") if k in o
    }
    if "trunk" in o:
        if o["trunk"] not in TRUNKS:
            raise ModelSpecMismatch(f"model {manifest.name!r}: unknown AF-MARL trunk {o['trunk']!r} (known: {TRUNKS})")
        out["trunk"] = str(o["trunk"])
    if "cvae" in o:
        out["cvae"] = bool(o["cvae"])
    return out


class AfMarlOffloadPolicy:
    """A trained AF-MARL actor behind :class:`twin_service.policies.base.OffloadPolicy`."""

    needs_window_mean = True

    def __init__(self, manifest: ModelManifest, network: AfMarlNetwork, params: OffloadParams) -> None:
        if manifest.kind != "offload":
            raise ModelSpecMismatch(f"model {manifest.name!r} is a {manifest.kind} model, not an offload one")
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.network = network
        self.params = params
        graph = onnx_graphs.available() and onnx_graphs.af_marl_graph_supported(network)
        self.runtime = AfMarlRuntime(network) if graph else None
        """The network as an ONNX Runtime graph (``policies.onnx_graphs``); None: the torch module (an ablation's
        architecture, or no ONNX Runtime)."""

    def network_rho(self, obs: np.ndarray) -> np.ndarray:
        """rho of each row of the actor's input (``actor_inputs``): where the network's output is made."""
        if self.runtime is not None:
            return self.runtime(obs)
        with torch.inference_mode():
            return self.network(torch.from_numpy(obs)).numpy()

    def rho(self, inputs: OffloadInputs) -> np.ndarray:
        check_offload_inputs(inputs)
        obs = offload_observation(dict(inputs.now), None if inputs.window_mean is None else dict(inputs.window_mean))
        return self.network_rho(obs).astype(np.float64)

    def decide(self, inputs: OffloadInputs) -> OffloadDecision:
        return expected_outcome(self.rho(inputs), inputs, self.params)


def build_offload_policy(
    manifest: ModelManifest, state_dict: Mapping[str, torch.Tensor], params: OffloadParams
) -> AfMarlOffloadPolicy:
    """The ``af-marl`` architecture (``twin_service.policies.learned.BUILDERS``)."""
    # One torch thread: policies.learned sets it for every learned policy it builds.
    network = AfMarlNetwork(**network_options(manifest))
    try:
        network.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise ModelSpecMismatch(f"model {manifest.name!r}: weights do not fit its manifest: {exc}") from exc
    network.eval()
    return AfMarlOffloadPolicy(manifest, network, params)

"""AF-MARL's local update (paper B, Eq. 41-43, 48-54): what a vehicle computes from the global model and its data.

One function, :func:`local_update`, serves the in-process federation and Flower's ClientApp alike. A transition's
observation carries one extra column for the critics only: the summed rho of the other vehicles offloading to the
same host in that tick (their actions, as a centralised-training critic sees them; C.6 couples vehicles only through
it). Without it the critics cannot tell a crowded host's outcome from their own action's, and every vehicle, sharing
one actor, swung between all-local and all-offload (measured). The actor, the CVAE and serving never see it. Given the
global model (CVAE, actor, twin critics), the global target networks and a minibatch per client from its own
dataset D_n, every client does ``local_steps`` SGD steps (Eq. 41) on its local loss

    L_n = L_CVAE (Eq. 40) + L_critic1 + L_critic2 (Eq. 48-49, target-policy smoothing) + L_actor (Eq. 54),

and returns its update ``Delta w_n = w_n - w`` with its contribution score ``sigma_n`` (Eq. 42-43: the weighted
sum of the layers' gradient norms at the global model). Clients are batched with ``torch.func.vmap``: the maths
is that of each client alone. Each loss moves only its own networks: the critics' latent input is detached from
the CVAE, and the actor loss sees the critic's parameters detached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from twin_service.learn.td3 import Critic, actor_loss, critic_loss, smoothed_target_action, td_target
from twin_service.policies.af_marl import AfMarlNetwork, cvae_loss, split_xc


class AfMarlModel(nn.Module):
    """The federated global model: the served network (CVAE + actor) and the twin critics."""

    def __init__(
        self,
        obs_dim: int,
        latent: int = 64,
        d_model: int = 16,
        n_layers: int = 1,
        hidden: int = 64,
        cvae_hidden: int = 64,
        critic_hidden: int = 128,
    ):
        super().__init__()
        self.net = AfMarlNetwork(latent, d_model, n_layers, hidden, cvae_hidden)
        self.q1 = Critic(obs_dim + latent + 1, critic_hidden)  # + the co-hosted vehicles' summed rho
        self.q2 = Critic(obs_dim + latent + 1, critic_hidden)


@dataclass(frozen=True)
class LocalConfig:
    gamma: float = 0.99
    kl_weight: float = 0.1
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    lr_local: float = 0.01
    """eta of Eq. 41 (Table V: eta_AdFL 0.01)."""
    local_steps: int = 1


def _sub(params: dict[str, torch.Tensor], prefix: str, detach: bool = False) -> dict[str, torch.Tensor]:
    n = len(prefix)
    return {k[n:]: (v.detach() if detach else v) for k, v in params.items() if k.startswith(prefix)}


def td_targets(
    targets: AfMarlModel, batch: dict[str, torch.Tensor], noise: torch.Tensor, cfg: LocalConfig
) -> torch.Tensor:
    """``y`` of Eq. 49 with the global target networks (target-policy smoothing on the target action)."""
    with torch.no_grad():
        nxt, others = batch["next_obs"][..., :-1], batch["next_obs"][..., -1:]
        z_next = targets.net.latent(nxt)
        a_next = smoothed_target_action(targets.net.actor(nxt, z_next), noise, cfg.target_noise_clip)
        s_next = torch.cat([nxt, z_next, others], dim=-1)
        q1, q2 = targets.q1(s_next, a_next)[..., 0], targets.q2(s_next, a_next)[..., 0]
        return td_target(batch["rew"], q1, q2, batch["done"], cfg.gamma)


def make_loss(model: AfMarlModel, cfg: LocalConfig):
    """The local loss ``L_n(w; batch)`` as a function of the parameters (for ``torch.func``)."""

    def loss(params: dict[str, torch.Tensor], obs_others, act, y, eps):
        obs, others = obs_others[..., :-1], obs_others[..., -1:]
        x, c = split_xc(obs)
        x_hat, mu, logvar = functional_call(model.net.cvae, _sub(params, "net.cvae."), (x, c, eps))
        l_cvae, recon, kl = cvae_loss(x, x_hat, mu, logvar, cfg.kl_weight)
        z = mu.detach()
        s = torch.cat([obs, z, others], dim=-1)
        q1_p, q2_p = _sub(params, "q1."), _sub(params, "q2.")
        l_q = critic_loss(functional_call(model.q1, q1_p, (s, act))[..., 0], y) + critic_loss(
            functional_call(model.q2, q2_p, (s, act))[..., 0], y
        )
        a_pi = functional_call(model.net.actor, _sub(params, "net.actor."), (obs, z))
        l_pi = actor_loss(functional_call(model.q1, _sub(params, "q1.", detach=True), (s, a_pi)))
        total = l_cvae + l_q + l_pi
        return total, torch.stack([total, l_cvae, recon, kl, l_q, l_pi]).detach()

    return loss


AUX = ("local_loss", "cvae_loss", "cvae_recon", "cvae_kl", "critic_loss", "actor_loss")


@dataclass
class LocalResult:
    delta: dict[str, torch.Tensor]
    """``(S, ...)`` per parameter: each client's ``w_n - w``."""
    scores: torch.Tensor
    """``(S,)`` sigma_n (Eq. 43)."""
    losses: torch.Tensor
    """``(S, len(AUX))`` the local losses at the global model."""


def local_update(
    model: AfMarlModel,
    targets: AfMarlModel,
    batch: dict[str, torch.Tensor],
    cfg: LocalConfig,
    generator: torch.Generator,
) -> LocalResult:
    """Every client's local update from the global ``model`` (module docstring).

    ``batch`` holds ``(S, B, ...)`` tensors: obs, act, rew, next_obs, done, one minibatch of its own data per client;
    obs and next_obs end with the co-hosted vehicles' summed rho (module docstring).
    """
    global_p = {k: v.detach() for k, v in model.named_parameters()}
    s, b = batch["obs"].shape[:2]
    noise = torch.randn((s, b, 1), generator=generator) * cfg.target_noise
    y = td_targets(targets, batch, noise, cfg)
    loss_grad = vmap(grad(make_loss(model, cfg), has_aux=True), in_dims=(0, 0, 0, 0, 0))
    params = {k: v.expand(s, *v.shape) for k, v in global_p.items()}
    scores = torch.zeros(s)
    losses = torch.zeros(s, len(AUX))
    for step in range(cfg.local_steps):
        eps = torch.randn((s, b, model.net.cvae.latent), generator=generator)
        g, aux = loss_grad(params, batch["obs"], batch["act"], y, eps)
        if step == 0:
            norms = torch.stack([v.reshape(s, -1).norm(dim=1) for v in g.values()], dim=1)  # Eq. 42, (S, L)
            scores = norms.mean(dim=1)  # Eq. 43 with omega_l = 1 / L
            losses = aux
        params = {k: params[k] - cfg.lr_local * g[k] for k in params}  # Eq. 41
    delta = {k: params[k] - global_p[k] for k in global_p}
    return LocalResult(delta, scores, losses)

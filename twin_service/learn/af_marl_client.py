"""AF-MARL's local update (paper B, Eq. 41-43, 48-54): what a vehicle computes from the global model and its data.

One function, :func:`local_update`, serves the in-process federation and Flower's ClientApp alike. A transition's
observation carries one extra column for the critics only: the summed rho of the other vehicles offloading to the
same host in that tick (their actions, as a centralised-training critic sees them; C.6 couples vehicles only through
it). Without it the critics cannot tell a crowded host's outcome from their own action's, and every vehicle, sharing
one actor, swung between all-local and all-offload (measured). The actor, the CVAE and serving never see it. The
actor's loss may evaluate the critic at another co-hosted sum, ``others_pi`` in the batch (the trainer's
``actor_others="policy"``: what the others' actor chose before its exploration noise). Given the
global model (CVAE, actor, twin critics), the global target networks and a minibatch per client from its own
dataset D_n, every client does ``local_steps`` SGD steps (Eq. 41) on its local loss

    L_n = L_CVAE (Eq. 40) + L_critic1 + L_critic2 (Eq. 48-49, target-policy smoothing) + L_actor (Eq. 54),

and returns its update ``Delta w_n = w_n - w`` with its contribution score ``sigma_n`` (Eq. 42-43: the weighted
sum of the layers' gradient norms at the global model). Each loss moves only its own networks: the critics' latent
input is detached from the CVAE, and the actor loss sees the critic's parameters detached.

How the clients are computed (``method``), the maths being that of each client alone in every case:

* ``grouped`` (default): one pass for all S clients, its backward written by hand
  (:func:`twin_service.learn.af_marl_grouped.grouped_grads`, the same layers as the modules in
  :mod:`twin_service.policies.af_marl` and :mod:`twin_service.learn.td3`). Every client holds its own copy of the
  parameters, stacked ``(S, ...)``; the first step's copies are the global model expanded, so that a layer's forward
  pass is one matrix product over all S x B rows and only its weight gradient is computed client by client.
* ``vmap``: ``torch.func.vmap`` over ``torch.func.grad`` of one client's loss on the real modules.
* ``per-client``: one client at a time on the real modules (the reference the other two are tested against, and
  the baseline of ``scripts/bench_train.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from twin_service.learn.af_marl_grouped import grouped_grads
from twin_service.learn.td3 import Critic, actor_loss, critic_loss, smoothed_target_action, td_target
from twin_service.policies.af_marl import AfMarlNetwork, cvae_loss, split_xc

Method = Literal["grouped", "vmap", "per-client"]
METHODS: tuple[Method, ...] = ("grouped", "vmap", "per-client")


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
        trunk: str = "transformer",
        cvae: bool = True,
    ):
        super().__init__()
        self.net = AfMarlNetwork(latent, d_model, n_layers, hidden, cvae_hidden, trunk, cvae)
        z = self.net.latent_dim
        self.q1 = Critic(obs_dim + z + 1, critic_hidden)  # + the co-hosted vehicles' summed rho
        self.q2 = Critic(obs_dim + z + 1, critic_hidden)


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
    """``y`` of Eq. 49 with the global target networks (target-policy smoothing on the target action).

    With ``gamma = 0`` the bootstrap term vanishes and ``y`` is the reward: the target networks are not run."""
    if cfg.gamma == 0.0:
        return batch["rew"].clone()
    with torch.no_grad():
        nxt, others = batch["next_obs"][..., :-1], batch["next_obs"][..., -1:]
        z_next = targets.net.latent(nxt)
        a_next = smoothed_target_action(targets.net.actor(nxt, z_next), noise, cfg.target_noise_clip)
        s_next = torch.cat([nxt, z_next, others], dim=-1)
        q1, q2 = targets.q1(s_next, a_next)[..., 0], targets.q2(s_next, a_next)[..., 0]
        return td_target(batch["rew"], q1, q2, batch["done"], cfg.gamma)


def others_of_actor(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The co-hosted vehicles' summed rho in the actor's loss: ``others_pi`` where the trainer gives it (their
    rho without exploration noise, as they will act once trained), else the one the critics learn from (what they
    did, exploring)."""
    return batch["others_pi"] if "others_pi" in batch else batch["obs"][..., -1:]


def make_loss(model: AfMarlModel, cfg: LocalConfig):
    """One client's local loss ``L_n(w; batch)`` as a function of the parameters, on the real modules (for
    ``torch.func`` and the per-client reference)."""

    def loss(params: dict[str, torch.Tensor], obs_others, act, y, eps, others_pi):
        obs, others = obs_others[..., :-1], obs_others[..., -1:]
        x, c = split_xc(obs)
        if model.net.cvae is None:  # the ablation without the CVAE: no latent, no L_CVAE
            z = obs.new_zeros((*obs.shape[:-1], 0))
            l_cvae = recon = kl = obs.new_zeros(())
        else:
            x_hat, mu, logvar = functional_call(model.net.cvae, _sub(params, "net.cvae."), (x, c, eps))
            l_cvae, recon, kl = cvae_loss(x, x_hat, mu, logvar, cfg.kl_weight)
            z = mu.detach()
        s = torch.cat([obs, z, others], dim=-1)
        q1_p, q2_p = _sub(params, "q1."), _sub(params, "q2.")
        l_q = critic_loss(functional_call(model.q1, q1_p, (s, act))[..., 0], y) + critic_loss(
            functional_call(model.q2, q2_p, (s, act))[..., 0], y
        )
        a_pi = functional_call(model.net.actor, _sub(params, "net.actor."), (obs, z))
        s_pi = torch.cat([obs, z, others_pi], dim=-1)  # the co-hosted rho the actor is trained against
        l_pi = actor_loss(functional_call(model.q1, _sub(params, "q1.", detach=True), (s_pi, a_pi)))
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
    flat: torch.Tensor | None = None
    """``(S, P)`` every client's ``delta`` end to end in its order (``delta``'s tensors are views of it), or None."""


def _grads(
    method: Method,
    model: AfMarlModel,
    params: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    y: torch.Tensor,
    eps: torch.Tensor,
    cfg: LocalConfig,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every client's gradient of its own loss at its own parameters ``params`` (stacked ``(S, ...)``)."""
    if method == "grouped":
        return grouped_grads(model.net, params, batch, y, eps, others_of_actor(batch), cfg.kl_weight)
    loss = make_loss(model, cfg)
    if method == "vmap":
        return vmap(grad(loss, has_aux=True))(params, batch["obs"], batch["act"], y, eps, others_of_actor(batch))
    if method != "per-client":
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    grads, aux = [], []
    for n in range(len(y)):
        own = {k: v[n].detach().requires_grad_(True) for k, v in params.items()}
        total, parts = loss(own, batch["obs"][n], batch["act"][n], y[n], eps[n], others_of_actor(batch)[n])
        grads.append(torch.autograd.grad(total, list(own.values())))
        aux.append(parts)
    return {k: torch.stack([g[i] for g in grads]) for i, k in enumerate(params)}, torch.stack(aux)


def local_update(
    model: AfMarlModel,
    targets: AfMarlModel,
    batch: dict[str, torch.Tensor],
    cfg: LocalConfig,
    generator: torch.Generator,
    method: Method = "grouped",
) -> LocalResult:
    """Every client's local update from the global ``model`` (module docstring).

    ``batch`` holds ``(S, B, ...)`` tensors: obs, act, rew, next_obs, done, one minibatch of its own data per client;
    obs and next_obs end with the co-hosted vehicles' summed rho (module docstring). ``method`` only changes how
    the clients are computed, not what (module docstring).
    """
    global_p = {k: v.detach() for k, v in model.named_parameters()}
    s, b = batch["obs"].shape[:2]
    noise = torch.randn((s, b, 1), generator=generator) * cfg.target_noise
    y = td_targets(targets, batch, noise, cfg)
    # Every client's parameters end to end, one row each; per parameter a view. The first step starts from the
    # global model: one vector expanded (stride 0 along the clients), which the grouped path computes with once.
    names = list(global_p)
    sizes = [v.numel() for v in global_p.values()]
    w = torch.cat([v.reshape(-1) for v in global_p.values()])

    def views(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = rows.split(sizes, dim=1)
        return {k: part.view(s, *global_p[k].shape) for k, part in zip(names, parts, strict=True)}

    flat = w.expand(s, -1)
    scores = torch.zeros(s)
    losses = torch.zeros(s, len(AUX))
    for step in range(cfg.local_steps):
        eps = torch.randn((s, b, model.net.latent_dim), generator=generator)
        g, aux = _grads(method, model, views(flat), batch, y, eps, cfg)
        g_rows = torch.cat([g[k].reshape(s, -1) for k in names], dim=1)
        if step == 0:
            norms = torch.stack([part.norm(dim=1) for part in g_rows.split(sizes, dim=1)], dim=1)  # Eq. 42, (S, L)
            scores = norms.mean(dim=1)  # Eq. 43 with omega_l = 1 / L
            losses = aux
        flat = g_rows.mul_(-cfg.lr_local).add_(flat)  # Eq. 41: w_n - eta g_n (in place: a few MB per call)
    delta = flat.sub_(w) if cfg.local_steps else flat - w
    return LocalResult(views(delta), scores, losses, delta)

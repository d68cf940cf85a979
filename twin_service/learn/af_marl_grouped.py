"""AF-MARL's grouped local update: every selected client's gradient of its own loss in one pass, backward by hand.

The maths is :func:`twin_service.learn.af_marl_client.make_loss`'s, client by client (a test holds the two equal):

    L_n = L_CVAE (Eq. 40) + L_critic1 + L_critic2 (Eq. 48-49) + L_actor (Eq. 54),

with each loss moving only its own networks (the critics' and the actor's latent is the CVAE mean, detached; the
actor's loss sees the critic's parameters frozen). Every client n holds its own copy of the parameters, stacked
``(S, ...)``; the networks run as batched matrix products over those copies, and the gradient of each client's
loss with respect to its own copy is written out layer by layer (the chain rule of each layer, below) instead of
being recorded by autograd: the networks are small (16 to 128 wide), so recording and replaying a graph of about
300 operations cost as much as the arithmetic, and a hand-written backward also skips what autograd would compute
and throw away (an input's gradient that nothing needs, the first critic layer's gradient towards the observation).

Two facts make the pass cheap, and neither changes what is computed:

* **The first step starts from the global model.** All S copies are then one tensor expanded (stride 0 along the
  clients), and a layer's forward pass and its gradient towards its input are one matrix product over all S x B
  rows with the shared weight (``torch.addmm``); only the weight's gradient is per client (``torch.bmm`` of each
  client's rows). Later local steps (``local_steps > 1``), where the copies differ, use batched products throughout.
* **The critics share their input.** Both critics' first layers are one product (their weights side by side), and
  the actor's pass through the frozen first critic differs from the critic loss's pass only in two inputs (the
  actor's rho for the taken one, the co-hosted rho without exploration where the trainer gives it): its first layer
  is the critic pass's plus a rank-two correction.
"""

from __future__ import annotations

import math

import torch

from twin_service.policies.af_marl import AfMarlNetwork, MlpTrunk, split_xc

Params = dict[str, torch.Tensor]


def _shared(*ts: torch.Tensor | None) -> bool:
    """Every client's copy is the same memory: the global model expanded (the first local step)."""
    return all(t is None or t.stride(0) == 0 for t in ts)


def _linear(w: torch.Tensor, b: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``x W_n^T + b_n`` per client: x ``(S, R, in)``, W ``(S, out, in)``, b ``(S, out)`` -> ``(S, R, out)``."""
    s, r, k = x.shape
    if _shared(w, b):
        flat = x.reshape(s * r, k)
        y = flat @ w[0].t() if b is None else torch.addmm(b[0], flat, w[0].t())
        return y.view(s, r, -1)
    wt = w.transpose(1, 2)
    return torch.bmm(x, wt) if b is None else torch.baddbmm(b.unsqueeze(1), x, wt)


def _side_by_side(*ws: torch.Tensor) -> torch.Tensor:
    """Layers' weights (or biases) stacked along their outputs, per client: one product computes them all. Copies
    of the global model stay one expanded tensor."""
    if _shared(*ws):
        return torch.cat([w[0] for w in ws]).expand(ws[0].shape[0], -1, *ws[0].shape[2:])
    return torch.cat(ws, dim=1)


def _input_grad(w: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """``dL/dx = dL/dy W_n`` per client."""
    s, r, o = gy.shape
    if _shared(w):
        return (gy.reshape(s * r, o) @ w[0]).view(s, r, -1)
    return torch.bmm(gy, w)


class _Backward:
    """Collects every client's parameter gradients ``(S, ...)`` by name."""

    def __init__(self, p: Params) -> None:
        self.p = p
        self.grads: Params = {}

    def linear(self, name: str, x: torch.Tensor, gy: torch.Tensor, need_input: bool = True) -> torch.Tensor | None:
        """A linear layer's weight and bias gradients per client (``gy^T x`` over the client's own rows) and, if
        needed, the gradient towards its input."""
        self.grads[f"{name}.weight"] = torch.bmm(gy.transpose(1, 2), x)
        if f"{name}.bias" in self.p:
            self.grads[f"{name}.bias"] = gy.sum(dim=1)
        return _input_grad(self.p[f"{name}.weight"], gy) if need_input else None


def _relu_grad(gy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Through ``y = relu(x)``: the gradient where the output is positive (as autograd's ReLU)."""
    return torch.ops.aten.threshold_backward(gy, y, 0.0)


def _tanh_grad(gy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.tanh_backward(gy, y)


# --- CVAE (Eq. 38-40) ------------------------------------------------------------------------------------------


def _cvae(p: Params, back: _Backward, net: AfMarlNetwork, obs: torch.Tensor, eps: torch.Tensor, kl_weight: float):
    """The CVAE's loss per client and its gradients; returns (mu, l_cvae, recon, kl)."""
    cvae = net.cvae
    assert cvae is not None
    x, c = split_xc(obs)
    lat = cvae.latent
    enc_in = torch.cat([x, c], dim=-1)
    e1 = torch.relu(_linear(p["net.cvae.encoder.0.weight"], p["net.cvae.encoder.0.bias"], enc_in))
    e2 = torch.relu(_linear(p["net.cvae.encoder.2.weight"], p["net.cvae.encoder.2.bias"], e1))
    h = _linear(p["net.cvae.encoder.4.weight"], p["net.cvae.encoder.4.bias"], e2)
    mu, logvar_raw = h[..., :lat], h[..., lat:]
    logvar = logvar_raw.clamp(-10.0, 10.0)
    std = torch.exp(0.5 * logvar)
    dec_in = torch.cat([mu + std * eps, c], dim=-1)  # reparameterised (Cvae.forward)
    d1 = torch.relu(_linear(p["net.cvae.decoder.0.weight"], p["net.cvae.decoder.0.bias"], dec_in))
    d2 = torch.relu(_linear(p["net.cvae.decoder.2.weight"], p["net.cvae.decoder.2.bias"], d1))
    x_hat = _linear(p["net.cvae.decoder.4.weight"], p["net.cvae.decoder.4.bias"], d2)
    err = x_hat - x
    b, f = x.shape[1], x.shape[2]
    var = torch.exp(logvar)
    recon = (err**2).mean(dim=(1, 2))  # cvae_loss per client: mean squared error, KL per sample averaged
    kl = (-0.5 * (1.0 + logvar - mu**2 - var).sum(dim=-1)).mean(dim=1)
    # backward: the decoder, the reparameterisation, the KL term, the encoder (nothing flows to the observation)
    g = back.linear("net.cvae.decoder.4", d2, err * (2.0 / (b * f)))
    g = back.linear("net.cvae.decoder.2", d1, _relu_grad(g, d2))
    g = back.linear("net.cvae.decoder.0", dec_in, _relu_grad(g, d1))
    d_z = g[..., :lat]
    d_mu = d_z + mu * (kl_weight / b)
    d_logvar = d_z * eps * 0.5 * std + (var - 1.0) * (0.5 * kl_weight / b)
    d_logvar = d_logvar * ((logvar_raw >= -10.0) & (logvar_raw <= 10.0))  # clamp passes the gradient inside only
    g = back.linear("net.cvae.encoder.4", e2, torch.cat([d_mu, d_logvar], dim=-1))
    g = back.linear("net.cvae.encoder.2", e1, _relu_grad(g, e2))
    back.linear("net.cvae.encoder.0", enc_in, _relu_grad(g, e1), need_input=False)
    return mu.detach(), recon + kl_weight * kl, recon, kl


# --- actor (Eq. 25-30, 47) ---------------------------------------------------------------------------------------


def _feature_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over the last dimension as a product with a column of ``1/d``: over 16 features a reduction kernel
    spends more on each row than on its arithmetic (measured: 3x slower for the layer norm)."""
    d = x.shape[-1]
    return x @ x.new_full((d, 1), 1.0 / d)


def _layer_norm(p: Params, name: str, x: torch.Tensor, eps: float):
    """Per-client affine layer norm over the last dimension (``nn.LayerNorm``: biased variance, ``eps`` inside the
    root); returns the output and what its backward needs."""
    xc = x - _feature_mean(x)
    rstd = torch.rsqrt(_feature_mean(xc * xc) + eps)
    y_hat = xc * rstd
    y = torch.addcmul(p[f"{name}.bias"].unsqueeze(1), y_hat, p[f"{name}.weight"].unsqueeze(1))
    return y, (y_hat, rstd)


def _layer_norm_grad(back: _Backward, name: str, gy: torch.Tensor, saved) -> torch.Tensor:
    """``dx = rstd (g - mean(g) - y_hat mean(g y_hat))`` with ``g = dL/dy_hat``, the means over the features."""
    y_hat, rstd = saved
    back.grads[f"{name}.weight"] = (gy * y_hat).sum(dim=1)
    back.grads[f"{name}.bias"] = gy.sum(dim=1)
    g_hat = gy * back.p[f"{name}.weight"].unsqueeze(1)
    return (g_hat - _feature_mean(g_hat) - y_hat * _feature_mean(g_hat * y_hat)) * rstd


def _actor_forward(p: Params, net: AfMarlNetwork, obs: torch.Tensor, latent: torch.Tensor):
    """rho ``(S, B, 1)`` of every client's actor copy, and what the backward pass needs."""
    s, b = obs.shape[:2]
    trunk = net.actor.trunk
    saved: dict = {}
    if isinstance(trunk, MlpTrunk):
        saved["inp"] = torch.cat([obs, latent], dim=-1)
        out = _linear(p["net.actor.trunk.inp.weight"], p["net.actor.trunk.inp.bias"], saved["inp"])
    else:
        x, c = split_xc(obs)
        f = x.shape[-1]
        saved["tok_in"] = torch.stack([x, c], dim=-1).reshape(s, b * f, 2)
        tokens = _linear(p["net.actor.trunk.embed.weight"], p["net.actor.trunk.embed.bias"], saved["tok_in"])
        tokens = tokens.view(s, b, f, -1)
        if trunk.embed_latent is not None:
            lt = _linear(p["net.actor.trunk.embed_latent.weight"], p["net.actor.trunk.embed_latent.bias"], latent)
            tokens = torch.cat([tokens, lt.unsqueeze(-2)], dim=-2)
        n_tok, d = tokens.shape[2], tokens.shape[3]
        z = (tokens + trunk.positions).reshape(s, b * n_tok, d)
        layers = []
        for i, layer in enumerate(trunk.layers):
            name = f"net.actor.trunk.layers.{i}"
            w_qkv = _side_by_side(*(p[f"{name}.{w}.weight"] for w in ("w_q", "w_k", "w_v")))
            qkv = _linear(w_qkv, None, z).view(s * b, n_tok, 3 * d)
            q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
            att = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d), dim=-1)
            h, ln1 = _layer_norm(p, f"{name}.norm1", z + torch.bmm(att, v).view(s, b * n_tok, d), layer.norm1.eps)
            f1 = torch.relu(_linear(p[f"{name}.ff.0.weight"], p[f"{name}.ff.0.bias"], h))
            f2 = _linear(p[f"{name}.ff.2.weight"], p[f"{name}.ff.2.bias"], f1)
            z_next, ln2 = _layer_norm(p, f"{name}.norm2", h + f2, layer.norm2.eps)
            layers.append((z, w_qkv, q, k, v, att, h, ln1, f1, ln2))
            z = z_next
        saved |= {"layers": layers, "n_tok": n_tok, "f": f}
        saved["mean"] = z.view(s, b, n_tok, d).mean(dim=-2)
        out = _linear(p["net.actor.trunk.out.weight"], p["net.actor.trunk.out.bias"], saved["mean"])
    t1 = torch.tanh(out)
    t2 = torch.tanh(_linear(p["net.actor.head.1.weight"], p["net.actor.head.1.bias"], t1))
    rho = torch.sigmoid(_linear(p["net.actor.head.3.weight"], p["net.actor.head.3.bias"], t2))
    saved |= {"t1": t1, "t2": t2, "rho": rho}
    return rho, saved


def _actor_backward(back: _Backward, net: AfMarlNetwork, d_rho: torch.Tensor, saved: dict) -> None:
    """The actor's parameter gradients from ``dL/drho`` (nothing flows to the observation or the latent)."""
    rho = saved["rho"]
    g = back.linear("net.actor.head.3", saved["t2"], d_rho * rho * (1.0 - rho))
    g = back.linear("net.actor.head.1", saved["t1"], _tanh_grad(g, saved["t2"]))
    g = _tanh_grad(g, saved["t1"])
    trunk = net.actor.trunk
    if isinstance(trunk, MlpTrunk):
        back.linear("net.actor.trunk.inp", saved["inp"], g, need_input=False)
        return
    g = back.linear("net.actor.trunk.out", saved["mean"], g)
    s, b, d = g.shape
    n_tok, f = saved["n_tok"], saved["f"]
    gz = (g / n_tok).unsqueeze(2).expand(s, b, n_tok, d).reshape(s, b * n_tok, d)
    for i in reversed(range(len(saved["layers"]))):
        name = f"net.actor.trunk.layers.{i}"
        z, w_qkv, q, k, v, att, h, ln1, f1, ln2 = saved["layers"][i]
        g_res = _layer_norm_grad(back, f"{name}.norm2", gz, ln2)  # h + ff(h)
        g_f1 = back.linear(f"{name}.ff.2", f1, g_res)
        g_h = g_res + back.linear(f"{name}.ff.0", h, _relu_grad(g_f1, f1))
        g_att = _layer_norm_grad(back, f"{name}.norm1", g_h, ln1)  # z + attention(z)
        g_o = g_att.view(s * b, n_tok, d)
        g_p = torch.bmm(g_o, v.transpose(1, 2))
        g_v = torch.bmm(att.transpose(1, 2), g_o)
        g_scores = torch.ops.aten._softmax_backward_data(g_p, att, -1, att.dtype) / math.sqrt(d)
        g_q = torch.bmm(g_scores, k)
        g_k = torch.bmm(g_scores.transpose(1, 2), q)
        g_qkv = torch.cat([g_q, g_k, g_v], dim=-1).view(s, b * n_tok, 3 * d)
        g_w = torch.bmm(g_qkv.transpose(1, 2), z)
        for j, w in enumerate(("w_q", "w_k", "w_v")):
            back.grads[f"{name}.{w}.weight"] = g_w[:, j * d : (j + 1) * d]
        gz = g_att + _input_grad(w_qkv, g_qkv)
    g_tok = gz.view(s, b, n_tok, d)
    back.linear("net.actor.trunk.embed", saved["tok_in"], g_tok[:, :, :f].reshape(s, b * f, d), need_input=False)
    if trunk.embed_latent is not None:
        back.linear("net.actor.trunk.embed_latent", saved["latent"], g_tok[:, :, f], need_input=False)


# --- the whole local loss ----------------------------------------------------------------------------------------


def grouped_grads(
    net: AfMarlNetwork,
    p: Params,
    batch: dict[str, torch.Tensor],
    y: torch.Tensor,
    eps: torch.Tensor,
    others_pi: torch.Tensor,
    kl_weight: float,
) -> tuple[Params, torch.Tensor]:
    """Every client's gradient of its own loss ``L_n`` at its own parameters ``p`` (stacked ``(S, ...)``, named as
    ``AfMarlModel``'s: ``net.`` the served network, ``q1.``/``q2.`` the critics), and ``(S, 6)`` the loss's parts
    (``af_marl_client.AUX``). ``net`` gives the architecture; ``others_pi`` is the co-hosted rho of the actor's loss
    (``af_marl_client.others_of_actor``)."""
    back = _Backward(p)
    obs, others = batch["obs"][..., :-1], batch["obs"][..., -1:]
    act = batch["act"]
    s, b = obs.shape[:2]
    if net.cvae is None:  # the ablation without the CVAE: no latent, no L_CVAE
        z = obs.new_zeros((s, b, 0))
        recon = kl = l_cvae = obs.new_zeros(s)
    else:
        z, l_cvae, recon, kl = _cvae(p, back, net, obs, eps, kl_weight)

    # Critics (Eq. 48-49): both first layers in one product over (obs, z, others, act)
    crit_in = torch.cat([obs, z, others, act], dim=-1)
    w1 = {q: p[f"{q}.net.0.weight"] for q in ("q1", "q2")}
    hidden = w1["q1"].shape[1]
    pre = _linear(_side_by_side(w1["q1"], w1["q2"]), _side_by_side(p["q1.net.0.bias"], p["q2.net.0.bias"]), crit_in)
    h1 = torch.relu(pre)
    y = y.unsqueeze(-1)
    l_q = obs.new_zeros(s)
    for j, q in enumerate(("q1", "q2")):
        h1_q = h1[..., j * hidden : (j + 1) * hidden]
        h2 = torch.relu(_linear(p[f"{q}.net.2.weight"], p[f"{q}.net.2.bias"], h1_q))
        err = _linear(p[f"{q}.net.4.weight"], p[f"{q}.net.4.bias"], h2) - y
        l_q = l_q + (err**2).mean(dim=(1, 2))
        g = back.linear(f"{q}.net.4", h2, err * (2.0 / b))
        g = back.linear(f"{q}.net.2", h1_q, _relu_grad(g, h2))
        back.linear(f"{q}.net.0", crit_in, _relu_grad(g, h1_q), need_input=False)

    # Actor (Eq. 54): -Q1(obs, z, others_pi, mu(obs, z)) with Q1 frozen; its first layer is the critic pass's but for
    # the last two inputs
    a_pi, saved = _actor_forward(p, net, obs, z)
    saved["latent"] = z
    w_others, w_act = w1["q1"][:, :, -2].unsqueeze(1), w1["q1"][:, :, -1].unsqueeze(1)  # (S, 1, hidden)
    pre_pi = pre[..., :hidden] + (others_pi - others) * w_others + (a_pi - act) * w_act
    hp1 = torch.relu(pre_pi)
    hp2 = torch.relu(_linear(p["q1.net.2.weight"], p["q1.net.2.bias"], hp1))
    q_pi = _linear(p["q1.net.4.weight"], p["q1.net.4.bias"], hp2)
    l_pi = -q_pi.mean(dim=(1, 2))
    g = _relu_grad((p["q1.net.4.weight"] * (-1.0 / b)).expand_as(hp2), hp2)
    g = _relu_grad(_input_grad(p["q1.net.2.weight"], g), hp1)
    d_rho = (g * w_act).sum(dim=-1, keepdim=True)
    _actor_backward(back, net, d_rho, saved)

    total = l_cvae + l_q + l_pi
    return back.grads, torch.stack([total, l_cvae, recon, kl, l_q, l_pi], dim=1)

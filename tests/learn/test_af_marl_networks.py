"""AF-MARL's networks (paper B, Eq. 25-30, 38-40) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from twin_service.policies.af_marl import (
    AfMarlActor,
    AfMarlNetwork,
    Cvae,
    GlobalModel,
    attention,
    cvae_loss,
    sinusoidal_positions,
    split_xc,
)


def test_sinusoidal_positions_eq26() -> None:
    pe = sinusoidal_positions(3, 4)
    # position 1: sin(1), cos(1), sin(1 / 100), cos(1 / 100) (10000^(2/4) = 100)
    torch.testing.assert_close(pe[1], torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]))
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))


def test_attention_eq27_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # scores [1, 0] / sqrt(2); softmax weights w = e^(1/sqrt 2) / (e^(1/sqrt 2) + 1)
    w = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
    torch.testing.assert_close(attention(q, k, v), torch.tensor([[w * 1 + (1 - w) * 3, w * 2 + (1 - w) * 4]]))


def test_cvae_loss_eq40_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0]])
    x_hat = torch.tensor([[0.0, 2.0]])
    mu = torch.tensor([[1.0]])
    logvar = torch.tensor([[0.0]])
    total, recon, kl = cvae_loss(x, x_hat, mu, logvar, kl_weight=0.1)
    assert recon.item() == pytest.approx(0.5)  # mean of (1, 0)
    assert kl.item() == pytest.approx(0.5)  # -1/2 (1 + 0 - 1 - 1)
    assert total.item() == pytest.approx(0.55)


def test_cvae_shapes_and_three_layers() -> None:
    cvae = Cvae(latent=64)
    linear = [m for m in cvae.encoder if isinstance(m, torch.nn.Linear)]
    assert len(linear) == 3 and len([m for m in cvae.decoder if isinstance(m, torch.nn.Linear)]) == 3
    x, c = torch.randn(5, 10), torch.randn(5, 10)
    x_hat, mu, logvar = cvae(x, c, torch.zeros(5, 64))
    assert x_hat.shape == (5, 10) and mu.shape == (5, 64) and logvar.shape == (5, 64)
    torch.testing.assert_close(x_hat, cvae.decode(mu, c))  # eps = 0 decodes the mean


def test_global_model_attends_over_feature_tokens() -> None:
    torch.manual_seed(0)
    g = GlobalModel(latent=8, d_model=16, out_dim=4)
    obs = torch.randn(3, 20)
    y = g(obs, torch.randn(3, 8))
    assert y.shape == (3, 4)
    # batched rows are independent
    torch.testing.assert_close(g(obs[:1], torch.zeros(1, 8)), g(obs, torch.zeros(3, 8))[:1])


def test_actor_output_is_rho_in_unit_interval_and_starts_low() -> None:
    torch.manual_seed(0)
    actor = AfMarlActor(latent=8, d_model=16)
    rho = actor(100 * torch.randn(50, 20), torch.randn(50, 8))
    assert rho.shape == (50, 1) and rho.min() >= 0 and rho.max() <= 1
    net = AfMarlNetwork(latent=8, d_model=16)
    assert net(torch.zeros(4, 20)).mean().item() < 0.3  # initialised near local computing


def test_split_xc() -> None:
    obs = torch.arange(20.0)[None]
    x, c = split_xc(obs)
    assert x[0, 0] == 0 and c[0, 0] == 10 and x.shape == c.shape == (1, 10)

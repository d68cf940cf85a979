"""The networks of Table II: shapes, and paper A's Eq. 17-18 with the errata (NOTES.md) computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twin_service.predict.features import Scaler, decode_forecast, model_input, training_target
from twin_service.predict.models import ARCHITECTURES, LstmTransformer, MultiHeadAttention, build_network


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize("kind", ARCHITECTURES)
@pytest.mark.parametrize("features", [1, 2])
def test_every_network_maps_windows_to_one_forecast_each(kind, features):
    net = build_network(kind, features)
    out = net(torch.randn(7, 6, features))
    assert out.shape == (7,) and torch.isfinite(out).all()
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in net.parameters())


def test_paper_sizes_and_the_kernel_1_convolution():
    lt = build_network("lstm-transformer", 2)
    assert lt.lstm.hidden_size == 32 and lt.attention.heads == 4 and lt.attention.d_k == 64
    assert lt.attention.w_q.weight.shape == (4 * 64, 64)  # four heads of d_k = 64 over the T x d_k dense output
    cnn = build_network("cnn-gru", 2)
    assert cnn.conv.kernel_size == (1,) and isinstance(cnn.rnn, torch.nn.GRU)
    assert build_network("lstm", 2).conv is None


def test_eq_17_lstm_cell_with_the_erratum_by_hand():
    """Eq. 17 with 17e corrected: C_t = f_t * C_{t-1} + i_t * C~_t (the printed sigmoid around it is wrong)."""
    net = LstmTransformer(n_features=1, hidden=1)
    w_x = {"i": 0.5, "f": -0.3, "c": 0.8, "o": 0.2}
    w_h = {"i": 0.1, "f": 0.4, "c": -0.2, "o": 0.3}
    b = {"i": 0.05, "f": 0.1, "c": -0.1, "o": 0.0}
    with torch.no_grad():  # torch's gate order: i, f, g (= C~), o
        net.lstm.weight_ih_l0.copy_(torch.tensor([[w_x[g]] for g in "ifco"]))
        net.lstm.weight_hh_l0.copy_(torch.tensor([[w_h[g]] for g in "ifco"]))
        net.lstm.bias_ih_l0.copy_(torch.tensor([b[g] for g in "ifco"]))
        net.lstm.bias_hh_l0.zero_()
    xs = [1.0, 2.0]
    h = c = c_printed = h_printed = 0.0
    for x in xs:
        i = sigmoid(x * w_x["i"] + h * w_h["i"] + b["i"])  # 17a
        f = sigmoid(x * w_x["f"] + h * w_h["f"] + b["f"])  # 17b
        o = sigmoid(x * w_x["o"] + h * w_h["o"] + b["o"])  # 17c
        c_tilde = math.tanh(x * w_x["c"] + h * w_h["c"] + b["c"])  # 17d
        c = f * c + i * c_tilde  # 17e, corrected
        h = o * math.tanh(c)  # 17f
        # The equation as printed, for contrast (same gates, sigmoid around the cell update).
        c_printed = sigmoid(f * c_printed + i * c_tilde)
        h_printed = o * math.tanh(c_printed)
    with torch.no_grad():
        out, (h_n, c_n) = net.lstm(torch.tensor([[[xs[0]], [xs[1]]]]))
    assert float(h_n) == pytest.approx(h, abs=1e-6) and float(c_n) == pytest.approx(c, abs=1e-6)
    assert float(out[0, -1, 0]) == pytest.approx(h, abs=1e-6)
    assert abs(h - h_printed) > 1e-2  # the erratum matters


def test_eq_18_attention_multiplies_the_weights_by_v_by_hand():
    """head = softmax(Q K^T / sqrt(d_k)) V (18d as printed omits V); output = Concat(heads) W_O."""
    att = MultiHeadAttention(d_model=2, heads=1, d_k=2)
    with torch.no_grad():  # nn.Linear computes x W^T: weights given as W^T
        att.w_q.weight.copy_(torch.eye(2))
        att.w_k.weight.copy_(torch.eye(2))
        att.w_v.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        att.w_o.weight.copy_(torch.eye(2))
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # H_t: two steps
    with torch.no_grad():
        out = att(h[:, -1:, :], h)[0, 0]
    # Query = last step (0, 1); scores (0, 1) / sqrt(2); values (1, 0) and (0, 2).
    w2 = math.exp(1 / math.sqrt(2)) / (1 + math.exp(1 / math.sqrt(2)))
    w1 = 1 - w2
    assert out.tolist() == pytest.approx([w1, 2 * w2], abs=1e-6)
    assert abs(float(out[1]) - w2) > 0.1  # without V the output would be the weights themselves


def test_heads_are_concatenated_then_projected():
    torch.manual_seed(1)
    att = MultiHeadAttention(d_model=3, heads=2, d_k=2)
    h = torch.randn(1, 4, 3)
    q, k, v = att.w_q(h), att.w_k(h), att.w_v(h)
    heads = []
    for j in range(2):
        cols = slice(2 * j, 2 * j + 2)
        weights = torch.softmax(q[0, :, cols] @ k[0, :, cols].T / math.sqrt(2), dim=-1)
        heads.append(weights @ v[0, :, cols])
    expected = att.w_o(torch.cat(heads, dim=-1))
    assert torch.allclose(att(h, h)[0], expected, atol=1e-6)


def test_attending_from_the_last_step_only_is_the_last_row_of_full_attention():
    torch.manual_seed(0)
    att = MultiHeadAttention(d_model=64, heads=4, d_k=64)
    e = torch.randn(5, 6, 64)
    assert torch.allclose(att(e, e)[:, -1], att(e[:, -1:], e)[:, 0], atol=1e-5)


def test_model_input_pads_short_histories_and_scales():
    scaler = Scaler(mean=np.array([[10.0, 1.0]]), std=np.array([[2.0, 1.0]]))
    values = np.zeros((2, 3, 2))  # two ticks of three servers
    values[0, :, 0], values[1, :, 0] = 12.0, 14.0
    x = model_input(values, scaler, window=4)
    assert x.shape == (3, 4, 2) and x.dtype == np.float32
    assert x[0, :, 0].tolist() == [1.0, 1.0, 1.0, 2.0]  # the oldest tick repeated, then scaled
    assert x[0, :, 1].tolist() == [-1.0] * 4
    long = np.repeat(values, 5, axis=0)
    assert model_input(long, scaler, window=4).shape == (3, 4, 2)
    batch = np.stack([values, values + 2])
    assert np.array_equal(model_input(batch, scaler, 2)[1], model_input(values + 2, scaler, 2))


@pytest.mark.parametrize("target", ["delta", "level"])
def test_decode_inverts_the_training_target(target):
    scaler = Scaler(mean=np.array([[5.0]]), std=np.array([[3.0]]))
    future, last = np.array([[1.0, 9.0]]), np.array([[4.0, 4.0]])
    y = training_target(future, last, scaler, target)
    assert np.allclose(decode_forecast(y, last, scaler, target), future)


def test_folded_attention_serves_the_same_forecasts():
    torch.manual_seed(2)
    net = build_network("lstm-transformer", 2).eval()
    x = torch.randn(9, 6, 2)
    with torch.no_grad():
        plain = net(x)
        net.fold_for_serving()
        folded = net(x)
    assert torch.allclose(plain, folded, atol=1e-5)
    assert set(net.state_dict()) == set(build_network("lstm-transformer", 2).state_dict())  # never saved
    net.train()
    assert torch.allclose(net(x), plain, atol=1e-5)  # training uses the equations' own form

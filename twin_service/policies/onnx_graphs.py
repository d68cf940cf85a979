"""The served networks as ONNX graphs run by ONNX Runtime: the same maths as their torch modules, faster.

At serving time the policies' networks are a few small layers over thousands of rows a tick, where torch's
per-operation overhead and its scalar ``tanh`` dominate (profiled: ``results/perf/``). Each graph here is
written out layer by layer from the module's own weights (no tracing), so that what it computes is visible
and matches the module: the tests compare both on recorded ticks (logits to 1e-5, rho to 1e-6).

* :func:`per_server_graph`: :class:`~twin_service.policies.per_server.PerServerActor` over the candidate pairs
  of a tick, the Deep Sets mean taken with ``ScatterND`` (add) instead of ``segment_reduce``.
* :func:`af_marl_graph`: :class:`~twin_service.policies.af_marl.AfMarlNetwork`: the CVAE encoder's mean, the
  transformer over the twin's feature tokens and the latent, the actor's head.

ONNX Runtime runs on one thread (as torch does for serving, ``policies.learned``). Where it is not installed
the policies use their torch modules (:func:`available`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

OPSET = 17


def available() -> bool:
    """Whether ONNX Runtime and the ``onnx`` package (to write the graphs) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Graph:
    """A small graph under construction: nodes, weights and unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.weights: list[Any] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, value: NDArray | torch.Tensor, prefix: str = "w") -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        name = self.name(prefix)
        self.weights.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, layer: nn.Linear) -> str:
        """``x W^T + b`` of a torch ``Linear`` (no bias when it has none)."""
        y = self.op("MatMul", [x, self.const(layer.weight.detach().t().contiguous())])
        return y if layer.bias is None else self.op("Add", [y, self.const(layer.bias)])

    def activation(self, x: str, module: nn.Module) -> str:
        kinds = {nn.Tanh: "Tanh", nn.ReLU: "Relu", nn.Sigmoid: "Sigmoid"}
        if type(module) not in kinds:
            raise ValueError(f"no ONNX op for {type(module).__name__}")
        return self.op(kinds[type(module)], [x])

    def sequential(self, x: str, seq: nn.Sequential) -> str:
        for module in seq:
            x = self.linear(x, module) if isinstance(module, nn.Linear) else self.activation(x, module)
        return x

    def layer_norm(self, x: str, norm: nn.LayerNorm) -> str:
        return self.op(
            "LayerNormalization", [x, self.const(norm.weight), self.const(norm.bias)], axis=-1, epsilon=norm.eps
        )

    def model(self, inputs: list[Any], outputs: list[Any], name: str) -> bytes:
        h = self.helper
        graph = h.make_graph(self.nodes, name, inputs, outputs, self.weights)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="twin-service")
        model.ir_version = 8  # what every ONNX Runtime of the last years reads
        return model.SerializeToString()


def session(model: bytes) -> Any:
    """An ONNX Runtime session on one thread, all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def per_server_graph(actor: Any) -> bytes:
    """The per-server actor over a tick's pairs.

    Inputs: ``features`` (P, F) float32, ``rows`` (P,) int64 (each pair's vehicle, ascending), ``inv_count``
    (N, 1) float32 (1 / pairs of each vehicle), ``zeros`` (N, W) float32. Output: ``logits`` (P,) float32, without
    the stay bias (:class:`PerServerRuntime` adds it).
    """
    from onnx import TensorProto

    g = _Graph()
    h = g.sequential("features", actor.embed)
    rows2 = g.op("Unsqueeze", ["rows", g.const(np.array([1], dtype=np.int64))])
    summed = g.op("ScatterND", ["zeros", rows2, h], reduction="add")
    context = g.op("Mul", [summed, "inv_count"])
    first, act, last = actor.score[0], actor.score[1], actor.score[2]
    width = first.weight.shape[1] // 2
    w = first.weight.detach()
    # The score layer's input is [h, context]: its context half is applied once per vehicle, then gathered.
    per_vehicle = g.op("Add", [g.op("MatMul", [context, g.const(w[:, width:].t().contiguous())]), g.const(first.bias)])
    z = g.op(
        "Add",
        [g.op("MatMul", [h, g.const(w[:, :width].t().contiguous())]), g.op("Gather", [per_vehicle, "rows"], axis=0)],
    )
    z = g.activation(z, act)
    score = g.linear(z, last)
    # The stay bias (``stay_bias * is_current_host``) is added by the caller: as a column gather and a broadcast
    # multiply in the graph it took a tenth of the call (profiled), against a few microseconds in numpy.
    g.op("Reshape", [score, g.const(np.array([-1], dtype=np.int64))])
    g.nodes[-1].output[0] = "logits"
    v = g.helper.make_tensor_value_info
    n_features = actor.embed[0].weight.shape[1]
    inputs = [
        v("features", TensorProto.FLOAT, ["P", n_features]),
        v("rows", TensorProto.INT64, ["P"]),
        v("inv_count", TensorProto.FLOAT, ["N", 1]),
        v("zeros", TensorProto.FLOAT, ["N", width]),
    ]
    return g.model(inputs, [v("logits", TensorProto.FLOAT, ["P"])], "per_server_actor")


class PerServerRuntime:
    """:func:`per_server_graph` in a session: ``(features, rows, n) -> logits``, as the module computes them."""

    def __init__(self, actor: Any) -> None:
        self.session = session(per_server_graph(actor))
        self.width = int(actor.score[0].weight.shape[1] // 2)
        self.host_feature = int(actor.host_feature)
        self.stay_bias = np.float32(actor.stay_bias.detach().item())

    def __call__(self, features: NDArray[np.float32], rows: NDArray[np.intp], n: int) -> NDArray[np.float32]:
        counts = np.bincount(rows, minlength=n).astype(np.float32)
        inv = (1.0 / np.maximum(counts, 1.0)).reshape(n, 1)
        feeds = {
            "features": np.ascontiguousarray(features, dtype=np.float32),
            "rows": np.asarray(rows, dtype=np.int64),
            "inv_count": inv,
            "zeros": np.zeros((n, self.width), dtype=np.float32),
        }
        logits = self.session.run(["logits"], feeds)[0]
        logits += feeds["features"][:, self.host_feature] * self.stay_bias  # the same float32 multiply and add
        return logits


def af_marl_graph_supported(network: Any) -> bool:
    """Whether :func:`af_marl_graph` can write ``network``: the paper's AF-MARL (transformer trunk, CVAE context),
    not an ablation (``trunk=mlp``, ``cvae=false``), which is served by its torch module."""
    return network.cvae is not None and hasattr(network.actor.trunk, "embed")


def af_marl_graph(network: Any) -> bytes:
    """AF-MARL's served network: ``obs`` (V, 2F) float32 -> ``rho`` (V,) float32 (paper B Eq. 25-30, 38, 47).

    The module's maths, arranged for ONNX Runtime's kernels (profiled: ``results/perf/``): every per-token linear
    map runs on the tokens as one ``(V * T, D)`` matrix, where ONNX Runtime fuses a matrix product with its bias
    and activation (a ``(V, T, D)`` product leaves them as separate passes over the tensor), and only the attention
    works on ``(V, T, D)``. Three steps are regrouped by linearity, which changes only float32 rounding (rho
    matches the module to 1e-6, tested):

    * Eq. 25's embedding of the F feature tokens, each ``W_e [x_f, c_f] + b_e``, plus their positions (Eq. 26), is
      one product of the observation with a block matrix ``(2F, F * D)``;
    * the latent token's embedding takes its position into its bias;
    * the mean over tokens followed by the output layer (Eq. 30) is one product of the ``(V, T * D)`` tokens with
      ``W_o`` stacked T times over T.
    """
    from onnx import TensorProto

    g = _Graph()
    cvae, actor = network.cvae, network.actor
    n_features = cvae.encoder[0].weight.shape[1] // 2
    latent = cvae.latent
    # The encoder's mean mu(x, c): its input cat([x, c]) is the observation itself; only the mean half is made.
    h = "obs"
    layers = list(cvae.encoder)
    for module in layers[:-1]:
        h = g.linear(h, module) if isinstance(module, nn.Linear) else g.activation(h, module)
    last = layers[-1]
    mu = g.op(
        "Add",
        [
            g.op("MatMul", [h, g.const(last.weight.detach()[:latent].t().contiguous())]),
            g.const(last.bias.detach()[:latent]),
        ],
    )

    trunk = actor.trunk
    d_model = trunk.embed.weight.shape[0]
    n_tokens = n_features + 1
    w_embed = trunk.embed.weight.detach().numpy()  # (D, 2): weights of (now, window mean)
    positions = trunk.positions.detach().numpy()
    blocks = np.zeros((2 * n_features, n_features * d_model), dtype=np.float32)
    for f in range(n_features):
        blocks[f, f * d_model : (f + 1) * d_model] = w_embed[:, 0]
        blocks[n_features + f, f * d_model : (f + 1) * d_model] = w_embed[:, 1]
    feature_bias = np.tile(trunk.embed.bias.detach().numpy(), n_features) + positions[:n_features].reshape(-1)
    feature_tokens = g.op("Add", [g.op("MatMul", ["obs", g.const(blocks)]), g.const(feature_bias.astype(np.float32))])
    latent_bias = trunk.embed_latent.bias.detach().numpy() + positions[n_features]
    latent_token = g.op(
        "Add",
        [
            g.op("MatMul", [mu, g.const(trunk.embed_latent.weight.detach().t().contiguous())]),
            g.const(latent_bias.astype(np.float32)),
        ],
    )
    tokens = g.op("Concat", [feature_tokens, latent_token], axis=1)  # (V, T * D), token after token
    z = g.op("Reshape", [tokens, g.const(np.array([-1, d_model], dtype=np.int64))])  # (V * T, D)
    as_3d = g.const(np.array([-1, n_tokens, d_model], dtype=np.int64))
    as_2d = g.const(np.array([-1, d_model], dtype=np.int64))
    for layer in trunk.layers:
        d_k = layer.w_q.weight.shape[0]
        q, k, v = (g.op("Reshape", [g.linear(z, w), as_3d]) for w in (layer.w_q, layer.w_k, layer.w_v))
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 2, 1])])
        scores = g.op("Div", [scores, g.const(np.array(math.sqrt(d_k), dtype=np.float32))])
        attended = g.op("Reshape", [g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v]), as_2d])
        h1 = g.layer_norm(g.op("Add", [z, attended]), layer.norm1)
        z = g.layer_norm(g.op("Add", [h1, g.sequential(h1, layer.ff)]), layer.norm2)
    flat = g.op("Reshape", [z, g.const(np.array([-1, n_tokens * d_model], dtype=np.int64))])
    pool_out = np.tile(trunk.out.weight.detach().t().numpy() / n_tokens, (n_tokens, 1)).astype(np.float32)
    y = g.op("Add", [g.op("MatMul", [flat, g.const(pool_out)]), g.const(trunk.out.bias)])
    rho = g.op("Sigmoid", [g.sequential(y, actor.head)])
    g.op("Reshape", [rho, g.const(np.array([-1], dtype=np.int64))])
    g.nodes[-1].output[0] = "rho"
    t = g.helper.make_tensor_value_info
    return g.model(
        [t("obs", TensorProto.FLOAT, ["V", 2 * n_features])], [t("rho", TensorProto.FLOAT, ["V"])], "af_marl"
    )


class AfMarlRuntime:
    """:func:`af_marl_graph` in a session: ``obs -> rho``."""

    def __init__(self, network: Any) -> None:
        self.session = session(af_marl_graph(network))

    def __call__(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.session.run(["rho"], {"obs": np.ascontiguousarray(obs, dtype=np.float32)})[0]

"""AF-MARL on Flower's Deployment Engine (optional extra ``federated``: ``flwr``).

The same client and server code as in-process (:mod:`twin_service.learn.af_marl`):

* the **ServerApp** runs the trainer: it replays the recorded days (the world), selects clients (Eq. 24) and keeps
  every RSU's semi-synchronous trigger (:class:`twin_service.federated.semisync.SemiSyncServer`). Flower's
  ``Strategy.start`` waits for every reply of a round (synchronous FL); instead :class:`FlowerFederation` pushes
  each tick's train messages to the SuperNodes and, at every later tick, pulls only the replies that have
  arrived: an RSU aggregates whatever reached it when its trigger fires, and late replies join a later round;
* the **ClientApp** on each SuperNode computes its vehicles' local updates with
  :func:`twin_service.learn.af_marl_client.local_update` from the global model, the global targets and each
  vehicle's minibatch of its own transitions, and replies with the updates, contribution scores and losses.

Vehicles are mapped to SuperNodes by their id (``agent % nodes``). In this simulation the world (and so each
vehicle's experience) is replayed by the ServerApp, which hands a vehicle's client the minibatch it draws from its
own dataset; on the road the vehicle would keep D_n itself. flwr is imported only here and only when used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twin_service.federated.semisync import ClientUpdate
from twin_service.learn.af_marl import AfMarlArgs, train, updates_of
from twin_service.learn.af_marl_client import AfMarlModel, LocalConfig, LocalResult, local_update
from twin_service.policies.af_marl import GlobalModel

MESSAGE_TYPE = "train"


def _arrays(tensors: dict[str, torch.Tensor]) -> Any:
    from flwr.app import ArrayRecord

    return ArrayRecord({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def _tensors(record: Any) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in record.to_torch_state_dict().items()}


def model_shape(model: AfMarlModel, obs_dim: int) -> dict[str, int | str | bool]:
    net = model.net
    trunk = net.actor.trunk
    transformer = isinstance(trunk, GlobalModel)
    return {
        "obs_dim": obs_dim,
        "latent": net.cvae.latent if net.cvae is not None else 0,
        "d_model": trunk.embed.out_features if transformer else 16,
        "n_layers": len(trunk.layers) if transformer else 1,
        "hidden": (trunk.out if transformer else trunk.inp).out_features,
        "cvae_hidden": net.cvae.encoder[0].out_features if net.cvae is not None else 64,
        "critic_hidden": model.q1.net[0].out_features,
        "trunk": "transformer" if transformer else "mlp",
        "cvae": net.cvae is not None,
    }


class FlowerFederation:
    """Clients on SuperNodes: push each tick's train messages, pull whatever replies have arrived."""

    def __init__(self, grid: Any, model: AfMarlModel, targets: AfMarlModel, cfg: LocalConfig, obs_dim: int, seed: int):
        self.grid, self.model, self.targets, self.cfg = grid, model, targets, cfg
        self.shape = model_shape(model, obs_dim)
        self.names = [k for k, _ in model.named_parameters()]
        self.seed = seed
        self.nodes: list[int] = []
        self.outstanding: dict[str, tuple[list[tuple[int, int, int]], int]] = {}
        self.replies_by_node: dict[int, int] = {}
        self.max_outstanding = 2
        """Per SuperNode: a node still busy with this many messages gets no new clients this tick."""

    def _node_ids(self) -> list[int]:
        if not self.nodes:
            deadline = time.monotonic() + 60.0
            while not self.nodes:
                self.nodes = sorted(self.grid.get_node_ids())
                if not self.nodes:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no SuperNode connected to the SuperLink within 60 s")
                    time.sleep(0.5)
        return self.nodes

    def submit(
        self, tick: int, clients: list[tuple[int, int, int]], data: dict[str, torch.Tensor], version: int
    ) -> None:
        from flwr.app import ConfigRecord, Message, RecordDict

        nodes = self._node_ids()
        busy = {}
        for msg_id, (cl, node) in self.outstanding.items():
            del msg_id, cl
            busy[node] = busy.get(node, 0) + 1
        global_p = {k: v.detach() for k, v in self.model.named_parameters()}
        target_p = {k: v.detach() for k, v in self.targets.named_parameters()}
        messages, groups = [], []
        for node_index, node in enumerate(nodes):
            rows = [i for i, c in enumerate(clients) if c[0] % len(nodes) == node_index]
            if not rows or busy.get(node, 0) >= self.max_outstanding:
                continue
            content = RecordDict(
                {
                    "global": _arrays(global_p),
                    "targets": _arrays(target_p),
                    "data": _arrays({k: v[rows] for k, v in data.items()}),
                    "config": ConfigRecord(
                        {
                            "shape": json.dumps(self.shape),
                            "local": json.dumps(self.cfg.__dict__),
                            "seed": int(self.seed * 1_000_003 + tick),
                        }
                    ),
                }
            )
            messages.append(Message(content=content, dst_node_id=node, message_type=MESSAGE_TYPE))
            groups.append(([clients[i] for i in rows], node, version))
        if not messages:
            return
        for msg_id, (cl, node, v) in zip(self.grid.push_messages(messages), groups, strict=True):
            self.outstanding[msg_id] = ((cl, v), node)

    def collect(self, wait: bool = False, timeout_s: float = 120.0) -> list[tuple[int, ClientUpdate, np.ndarray]]:
        out: list[tuple[int, ClientUpdate, np.ndarray]] = []
        deadline = time.monotonic() + timeout_s
        while self.outstanding:
            for reply in self.grid.pull_messages(list(self.outstanding)):
                key = reply.metadata.reply_to_message_id
                entry = self.outstanding.pop(key, None)
                if entry is None:
                    continue
                (clients, version), node = entry
                self.replies_by_node[node] = self.replies_by_node.get(node, 0) + 1
                if reply.has_error():
                    raise RuntimeError(f"a SuperNode failed its local update: {reply.error.reason}")
                c = reply.content
                result = LocalResult(
                    _tensors(c["delta"]),
                    torch.as_tensor(np.asarray(c["config"]["scores"], dtype=np.float32)),
                    torch.as_tensor(np.asarray(c["config"]["losses"], dtype=np.float32)).reshape(len(clients), -1),
                )
                out += updates_of(result, clients, version, self.names)
            if not wait or not self.outstanding:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(self.outstanding)} local updates did not come back within {timeout_s:g} s")
            time.sleep(0.05)
        return out


def client_update(content: Any) -> dict[str, Any]:
    """The ClientApp's work: rebuild the global model and targets, run the vehicles' local updates."""
    cfg_rec = content["config"]
    shape = json.loads(cfg_rec["shape"])
    cfg = LocalConfig(**json.loads(cfg_rec["local"]))
    obs_dim = shape.pop("obs_dim")
    model, targets = AfMarlModel(obs_dim, **shape), AfMarlModel(obs_dim, **shape)
    model.load_state_dict(_tensors(content["global"]), strict=False)
    targets.load_state_dict(_tensors(content["targets"]), strict=False)
    generator = torch.Generator().manual_seed(int(cfg_rec["seed"]))
    result = local_update(model, targets, _tensors(content["data"]), cfg, generator)
    return {
        "delta": result.delta,
        "scores": [float(s) for s in result.scores],
        "losses": [float(v) for v in result.losses.reshape(-1)],
    }


def make_client_app() -> Any:
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train_fn(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        out = client_update(msg.content)
        reply = RecordDict(
            {"delta": _arrays(out["delta"]), "config": ConfigRecord({"scores": out["scores"], "losses": out["losses"]})}
        )
        return Message(content=reply, reply_to=msg)

    return app


def make_server_app() -> Any:
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        path = str(context.run_config.get("args-file", ""))
        if not path:
            raise ValueError(
                "run config args-file is empty: start runs with twin-service train af-marl --federation flower"
            )
        raw = json.loads(Path(path).read_text())
        args = AfMarlArgs(
            **{
                **raw,
                "recordings": [Path(p) for p in raw["recordings"]],
                "validation": [Path(p) for p in raw["validation"]],
                "out": Path(raw["out"]),
                "progress": False,
            }
        )

        feds: list[FlowerFederation] = []

        def factory(
            model: AfMarlModel, targets: AfMarlModel, cfg: LocalConfig, generator: torch.Generator
        ) -> FlowerFederation:
            obs_dim = model.q1.net[0].in_features - model.net.latent_dim - 2  # critic input: obs, z, others, rho
            feds.append(FlowerFederation(grid, model, targets, cfg, obs_dim, args.seed))
            return feds[-1]

        train(args, federation_factory=factory)
        record = {"run_id": context.run_id, "replies_by_node": {str(k): v for k, v in feds[0].replies_by_node.items()}}
        (Path(args.out) / "flower_run.json").write_text(json.dumps(record) + "\n")

    return app

"""Resumable training: a trainer's whole state at the end of an episode, written atomically, read without pickle.

A full-budget run takes hours on a shared machine and may be killed at any time. After every episode a trainer
saves what the rest of the run depends on: networks, optimisers, target networks, the replay buffer, every random
generator's state, its counters and the curves so far. Run the same command again and it goes on from the last
finished episode, bit for bit as if it had never stopped (a test checks it).

A checkpoint is a folder (default ``<out>.checkpoint`` beside the model folder, removed once the model is written):

* ``tensors.safetensors``: every tensor, by a flat name (``model/...``, ``opt_actor/state/3/exp_avg``, ...);
* ``arrays.npz``: numpy arrays (the replay buffer), loaded with ``allow_pickle=False``;
* ``state.json``: everything else (counters, the trainer's arguments, numpy generators' states, curves).

It is written to a temporary folder beside it, which then replaces the old one (``os.replace``), so a reader never
sees half a checkpoint. A checkpoint made with other arguments (apart from ``episodes``, which may grow, and the
progress bar) is refused rather than continued.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file

STATE_FILE = "state.json"
TENSORS_FILE = "tensors.safetensors"
ARRAYS_FILE = "arrays.npz"
VOLATILE_ARGS = frozenset({"episodes", "progress", "command", "checkpoint", "resume"})
"""Arguments a resumed run may change: more episodes, the progress bar, the command line, where it checkpoints."""


class CheckpointMismatch(ValueError):
    """A checkpoint exists for this model but was made with other arguments."""


@dataclass
class Checkpoint:
    """What a trainer saves: tensors, numpy arrays and JSON-able state."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    arrays: dict[str, NDArray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def put_module(self, prefix: str, module: torch.nn.Module) -> None:
        for k, v in module.state_dict().items():
            self.tensors[f"{prefix}/{k}"] = v.detach().clone()

    def get_module(self, prefix: str, module: torch.nn.Module) -> None:
        n = len(prefix) + 1
        module.load_state_dict({k[n:]: v for k, v in self.tensors.items() if k.startswith(f"{prefix}/")}, strict=True)

    def put_optimizer(self, prefix: str, opt: torch.optim.Optimizer) -> None:
        sd = opt.state_dict()
        for idx, per_param in sd["state"].items():
            for k, v in per_param.items():
                self.tensors[f"{prefix}/state/{idx}/{k}"] = torch.as_tensor(v).detach().clone()
        self.state[f"{prefix}/param_groups"] = sd["param_groups"]

    def get_optimizer(self, prefix: str, opt: torch.optim.Optimizer) -> None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        head = f"{prefix}/state/"
        for name, v in self.tensors.items():
            if name.startswith(head):
                idx, key = name[len(head) :].split("/", 1)
                state.setdefault(int(idx), {})[key] = v
        opt.load_state_dict({"state": state, "param_groups": self.state[f"{prefix}/param_groups"]})

    def put_generator(self, name: str, gen: torch.Generator | np.random.Generator) -> None:
        if isinstance(gen, torch.Generator):
            self.tensors[f"generator/{name}"] = gen.get_state()
        else:
            self.state[f"generator/{name}"] = gen.bit_generator.state

    def get_generator(self, name: str, gen: torch.Generator | np.random.Generator) -> None:
        if isinstance(gen, torch.Generator):
            gen.set_state(self.tensors[f"generator/{name}"])
        else:
            gen.bit_generator.state = self.state[f"generator/{name}"]


def default_path(out: Path) -> Path:
    """``<out>.checkpoint`` beside the model folder."""
    return out.with_name(out.name + ".checkpoint")


def save(path: Path, ckpt: Checkpoint, files: dict[str, str] | None = None) -> None:
    """Write ``ckpt`` to the folder ``path`` atomically (a temporary folder beside it, then ``os.replace``);
    ``files`` are text files to put beside it (the curves so far, to watch a run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    save_file({k: v.contiguous() for k, v in ckpt.tensors.items()}, str(tmp / TENSORS_FILE))
    with (tmp / ARRAYS_FILE).open("wb") as f:
        np.savez(f, **ckpt.arrays)
        f.flush()
        os.fsync(f.fileno())
    with (tmp / STATE_FILE).open("w") as f:
        json.dump(ckpt.state, f)
        f.flush()
        os.fsync(f.fileno())
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)  # folders cannot be replaced over a non-empty one: move the old one aside first
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load(path: Path) -> Checkpoint | None:
    """The checkpoint in folder ``path``, or None where there is none (or only an interrupted write)."""
    if not (path / STATE_FILE).is_file():
        return None
    state = json.loads((path / STATE_FILE).read_text())
    tensors = load_file(str(path / TENSORS_FILE))
    with np.load(path / ARRAYS_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return Checkpoint(tensors, arrays, state)


def check_args(ckpt: Checkpoint, args: dict[str, Any], path: Path) -> None:
    """Refuse to continue a run made with other arguments (apart from :data:`VOLATILE_ARGS`)."""
    saved = ckpt.state.get("args", {})
    keys = (set(saved) | set(args)) - VOLATILE_ARGS
    differ = sorted(k for k in keys if saved.get(k) != args.get(k))
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} there, {args.get(k)!r} now" for k in differ[:4])
        raise CheckpointMismatch(
            f"{path} holds a run made with other arguments ({shown}); remove it to start over, or run the same command"
        )


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Checkpointer:
    """A trainer's checkpoints: the one to resume from (if any) and saving after each episode.

    ``args`` is the trainer's arguments as :func:`twin_service.learn.offload_common.args_dict` gives them; a
    checkpoint made with other ones is refused (:func:`check_args`). ``resume=False`` starts over.
    """

    def __init__(self, out: Path, path: Path | str | None, resume: bool, args: dict[str, Any]) -> None:
        self.path = Path(path) if path else default_path(out)
        self.args = args
        self.found = load(self.path) if resume else None
        if self.found is not None:
            check_args(self.found, args, self.path)

    @property
    def start_episode(self) -> int:
        return int(self.found.state["next_episode"]) if self.found is not None else 0

    def save(self, ckpt: Checkpoint, next_episode: int, files: dict[str, str] | None = None) -> None:
        ckpt.state["args"] = self.args
        ckpt.state["next_episode"] = next_episode
        save(self.path, ckpt, files)

    def finish(self) -> None:
        """The model is written: the checkpoint is no longer needed."""
        remove(self.path)


Generator = torch.Generator | np.random.Generator


def capture(
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, Generator],
    **state: Any,
) -> Checkpoint:
    """A checkpoint of the modules, optimisers, generators (and torch's global one) and JSON-able ``state``."""
    ck = Checkpoint(state=dict(state))
    for name, m in modules.items():
        ck.put_module(name, m)
    for name, opt in optimizers.items():
        ck.put_optimizer(name, opt)
    for name, g in generators.items():
        ck.put_generator(name, g)
    ck.tensors["generator/torch_global"] = torch.get_rng_state()
    return ck


def restore(
    ck: Checkpoint,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, Generator],
) -> None:
    """Load what :func:`capture` saved into the same objects."""
    for name, m in modules.items():
        ck.get_module(name, m)
    for name, opt in optimizers.items():
        ck.get_optimizer(name, opt)
    for name, g in generators.items():
        ck.get_generator(name, g)
    torch.set_rng_state(ck.tensors["generator/torch_global"])

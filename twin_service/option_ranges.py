"""The allowed range of every numeric command-line option and trainer hyperparameter, in one table.

The command line checks every option it parses against :data:`OPTIONS` (per command where
:data:`COMMAND_OPTIONS` says otherwise), and every trainer's arguments (its ``Args`` dataclass, ``--hp NAME=VALUE``
included) against :data:`HYPERPARAMETERS`, before any work starts. Floats must be finite everywhere. A test checks
that every numeric option of every command and every numeric field of every trainer has an entry here, so a new
one cannot slip in unchecked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from typing import Any


@dataclass(frozen=True)
class Bound:
    """A closed (or, with ``low_open``, half-open) interval, of integers or of finite floats."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False
    """``low`` itself is excluded (a quantity that must be above it, such as a learning rate above 0)."""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        low = None if self.low is None else _show(self.low)
        high = None if self.high is None else _show(self.high)
        if low is not None and high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{low}, {high}]"
        if low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if high is not None:
            return f"{kind} <= {high}"
        return kind

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        if self.integer and not float(value).is_integer():
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def problem(self, value: Any) -> str | None:
        """``expected ...`` when ``value`` is outside this range (None when it is inside)."""
        return None if self.contains(value) else f"expected {self.describe()}"


def _show(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}"
    return f"{value:g}"


def _int(low: float | None, high: float | None) -> Bound:
    return Bound(low, high, integer=True)


SEED = _int(0, 2**31 - 1)
"""Seeds go to SUMO, numpy and torch alike: SUMO's is a signed 32-bit integer."""
MAX_THREADS = 256
"""torch threads: beyond a few hundred OpenMP crashes outright (``--threads 100000`` segfaulted)."""
SIM_TIME = Bound(0, 10_000_000)
"""A sim time in seconds (over 100 days)."""
SHARE = Bound(0, 1)
POSITIVE_SHARE = Bound(0, 1, low_open=True)
RATE = Bound(0, 1, low_open=True)
"""A learning rate: above 0, at most 1."""
WIDTH = _int(1, 4096)
"""A layer's width."""

OPTIONS: dict[str, Bound] = {
    "seed": SEED,
    "ticks": _int(1, 1_000_000_000),
    "speed": Bound(0.01, 10_000),
    "begin": SIM_TIME,
    "end": Bound(0, 10_000_000, low_open=True),
    "scale": Bound(0.01, 100),
    "api_port": _int(1, 65_535),
    "port": _int(1, 65_535),
    "api_workers": _int(0, 64),
    "workers": _int(1, 64),
    "rsus": _int(1, 100_000),
    "uavs": _int(1, 100_000),
    "episode_s": Bound(10, 86_400),
    "warmup_s": Bound(0, 86_400),
    "rsu_outage": _int(0, 100_000),
    "step_s": Bound(0, 1e9, low_open=True),
    "horizon": _int(1, 100_000),
    "window": _int(1, 100_000),
    "epochs": _int(1, 100_000),
    "steps_per_epoch": _int(1, 10_000_000),
    "max_train_s": Bound(1, 1e8),
    "threads": _int(1, MAX_THREADS),
    "episodes": _int(1, 10_000_000),
    "supernodes": _int(1, 64),
    "total_ticks": _int(1, 1_000_000_000),
    "rollout_ticks": _int(1, 1_000_000),
    "decision_deadline": Bound(0.01, 60),
    "decision_log_ticks": _int(0, 100_000),
}
"""Numeric command-line options by parameter name (``--episode-s`` is ``episode_s``), for every command."""

COMMAND_OPTIONS: dict[str, dict[str, Bound]] = {
    "evaluate": {"episode_s": Bound(1, 86_400)},
}
"""Where one command's option has another range than :data:`OPTIONS` gives (``evaluate``'s short episodes)."""

EVENT_FIELDS: dict[str, Bound] = {
    "at_s": SIM_TIME,
    "duration_s": Bound(0, 10_000_000, low_open=True),
    "factor": Bound(0, 10, low_open=True),
}
"""The numeric fields of a what-if event (``POST /v1/events``, ``--events FILE``; :mod:`twin_service.events`): sim
seconds for ``at_s`` and ``duration_s``; ``factor`` multiplies SUMO's demand scale or the link rates."""

UAV_CHURN = _int(0, 100_000)
"""Each of ``--uav-churn APPEAR,LEAVE``: how many UAVs join and leave in an episode."""

HYPERPARAMETERS: dict[str, Bound] = {
    "actor_starts": _int(0, 1_000_000_000),
    "alpha": SHARE,
    "batch_size": _int(1, 1_000_000),
    "bins": _int(2, 10_000),
    "buffer_size": _int(1, 100_000_000),
    "candidates": _int(1, 100_000),
    "clients_per_tick": _int(1, 1_000_000),
    "clip": POSITIVE_SHARE,
    "critic_hidden": WIDTH,
    "cvae_hidden": WIDTH,
    "d_model": WIDTH,
    "decision_chunk": _int(1, 1_000_000),
    "e_min_wh": Bound(0, 1e6),
    "entropy": Bound(0, 100),
    "entropy_coef": Bound(0, 100),
    "entropy_share": SHARE,
    "episode_s": Bound(10, 86_400),
    "episodes": _int(1, 10_000_000),
    "epochs": _int(1, 100_000),
    "epsilon": SHARE,
    "epsilon_decay": SHARE,
    "exploration_decay": POSITIVE_SHARE,
    "exploration_rate": SHARE,
    "f_min_hz": Bound(0, 1e12, low_open=True),
    "gae_lambda": SHARE,
    "gamma": SHARE,
    "hidden": WIDTH,
    "horizon": _int(1, 100_000),
    "huber_delta": Bound(0, 1e6, low_open=True),
    "kl_weight": Bound(0, 1e6),
    "latent": WIDTH,
    "learning_starts": _int(0, 1_000_000_000),
    "local_steps": _int(1, 100_000),
    "log_std": Bound(-20, 2),
    "lr": RATE,
    "lr_actor": RATE,
    "lr_alpha": RATE,
    "lr_critic": RATE,
    "lr_cvae": RATE,
    "lr_local": RATE,
    "max_delay_ticks": _int(0, 100_000),
    "max_grad_norm": Bound(0, 1e6, low_open=True),
    "max_train_s": Bound(1, 1e8),
    "min_local_samples": _int(1, 1_000_000),
    "min_tick_s": Bound(0, 3_600),
    "minibatches": _int(1, 100_000),
    "n_agg": _int(1, 1_000_000),
    "n_envs": _int(1, 1_024),
    "n_layers": _int(1, 64),
    "noise_decay": SHARE,
    "noise_std": Bound(0, 100),
    "patience": _int(1, 100_000),
    "policy_delay": _int(1, 100_000),
    "reference_ticks": _int(1, 100_000_000),
    "reward_scale": Bound(0, 1e6, low_open=True),
    "rollout_ticks": _int(1, 1_000_000),
    "seed": SEED,
    "steps_per_epoch": _int(1, 10_000_000),
    "t_min_s": Bound(0, 1e6, low_open=True),
    "target_noise": Bound(0, 100),
    "target_noise_clip": Bound(0, 100),
    "tau": POSITIVE_SHARE,
    "tau_agg_s": Bound(0, 1e6, low_open=True),
    "threads": _int(1, MAX_THREADS),
    "total_ticks": _int(1, 1_000_000_000),
    "train_share": POSITIVE_SHARE,
    "updates_per_tick": _int(1, 100_000),
    "val_every": _int(1, 1_000_000_000),
    "val_start_s": SIM_TIME,
    "val_ticks": _int(1, 100_000_000),
    "val_windows": _int(1, 100_000_000),
    "warmup_s": Bound(0, 86_400),
    "window": _int(1, 100_000),
}
"""Trainer hyperparameters by ``Args`` field name, shared by every trainer that has the field."""


def option_bound(command: str, name: str) -> Bound | None:
    """The range of option ``name`` (its parameter name) of ``command`` (``"train dm-mappo"``), if numeric."""
    for key in (command, command.split(" ")[0]):
        found = COMMAND_OPTIONS.get(key, {}).get(name)
        if found is not None:
            return found
    return OPTIONS.get(name)


def option_problems(command: str, values: dict[str, Any]) -> list[str]:
    """``--flag VALUE: why`` for every option of ``command`` whose value is out of its range."""
    problems = []
    for name, value in values.items():
        bound = option_bound(command, name)
        if bound is None or value is None or isinstance(value, bool):
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            problem = bound.problem(item)
            if problem:
                problems.append(f"--{name.replace('_', '-')} {item}: {problem}")
    return problems


def is_numeric_field(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def hyperparameter_problems(args: Any) -> list[str]:
    """``name=value: why`` for every numeric field of a trainer's argument dataclass outside its range.

    A numeric field with no entry in :data:`HYPERPARAMETERS` is itself a problem (the table must cover it)."""
    if not is_dataclass(args):
        raise TypeError(f"expected a trainer's argument dataclass, got {type(args).__name__}")
    problems = []
    for f in fields(args):
        value = getattr(args, f.name)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        bound = HYPERPARAMETERS.get(f.name)
        if bound is None:
            problems.append(f"{f.name}={value!r}: no allowed range is known for it")
            continue
        problem = bound.problem(value)
        if problem:
            problems.append(f"{f.name}={value!r}: {problem}")
    return problems

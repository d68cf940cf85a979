"""Pieces every paper B trainer shares: the replay buffer with per-vehicle datasets, aligning an environment
step with the batch that acted, the environments over recorded days, the episode log, curves and plots."""

from __future__ import annotations

import csv
import ctypes
import io
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from twin_service.engine import TickContext
from twin_service.envs.offload import OffloadBatch, OffloadCore, OffloadStep
from twin_service.envs.sim import EnvOptions
from twin_service.federated.selection import WH_TO_J, SelectionCriteria, eligible, predicted_stay_s
from twin_service.learn.td3 import explore


class ReplayBuffer:
    """Transitions ``(o, rho, r, o', done)`` in a ring of ``capacity``, each tagged with its vehicle (agent id),
    so that a vehicle's own transitions are its local dataset D_n (paper B, Eq. 41).

    Everything lives in the arrays (no per-vehicle lists that grow with every transition): a vehicle's dataset is
    where the ring holds its id, and its size is counted as transitions come and are overwritten.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int = 1, state_dim: int = 0) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.rew = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.agent = np.full(capacity, -1, np.int64)
        self.state = np.zeros((capacity, state_dim), np.float32)
        self.next_state = np.zeros((capacity, state_dim), np.float32)
        self.ptr = 0
        self.size = 0
        self._count: dict[int, int] = {}

    def add(
        self,
        obs: NDArray,
        act: NDArray,
        rew: NDArray,
        next_obs: NDArray,
        done: NDArray,
        agent: NDArray,
        state: NDArray | None = None,
        next_state: NDArray | None = None,
    ) -> None:
        n = len(obs)
        if n == 0:
            return
        if n > self.capacity:
            raise ValueError(f"{n} transitions do not fit a buffer of {self.capacity}")
        idx = (self.ptr + np.arange(n)) % self.capacity
        old = self.agent[idx]
        gone, gone_n = np.unique(old[old >= 0], return_counts=True)
        for a, k in zip(gone.tolist(), gone_n.tolist(), strict=True):
            left = self._count[a] - k
            if left:
                self._count[a] = left
            else:
                del self._count[a]
        self.obs[idx], self.next_obs[idx] = obs, next_obs
        self.act[idx] = np.asarray(act, np.float32).reshape(n, -1)
        self.rew[idx], self.done[idx], self.agent[idx] = rew, done, agent
        if state is not None and self.state.shape[1]:
            self.state[idx], self.next_state[idx] = state, next_state
        new, new_n = np.unique(np.asarray(agent, np.int64), return_counts=True)
        for a, k in zip(new.tolist(), new_n.tolist(), strict=True):
            self._count[a] = self._count.get(a, 0) + k
        self.ptr = int((self.ptr + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def agent_indices(self, agent: int) -> NDArray[np.int64]:
        """Where the agent's transitions are (its dataset D_n), in slot order."""
        if agent not in self._count:
            return np.zeros(0, np.int64)
        return np.flatnonzero(self.agent[: self.size] == agent)

    def dataset_size(self, agent: int) -> int:
        return self._count.get(int(agent), 0)

    def dataset_sizes(self, agents: NDArray[np.int64]) -> NDArray[np.int64]:
        """|D_n| of every agent given."""
        count = self._count
        return np.fromiter((count.get(a, 0) for a in np.asarray(agents).tolist()), np.int64, len(agents))

    def sample(self, rng: np.random.Generator, batch: int) -> NDArray[np.int64]:
        return rng.integers(0, self.size, size=batch)

    def tensors(self, idx: NDArray[np.int64]) -> dict[str, torch.Tensor]:
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "act": torch.from_numpy(self.act[idx]),
            "rew": torch.from_numpy(self.rew[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "done": torch.from_numpy(self.done[idx]),
            "state": torch.from_numpy(self.state[idx]),
            "next_state": torch.from_numpy(self.next_state[idx]),
        }

    ARRAYS = ("obs", "next_obs", "act", "rew", "done", "agent", "state", "next_state")

    def state_dict(self) -> dict[str, NDArray]:
        """The filled part of the ring and its pointer (for checkpoints); :meth:`load_state_dict` restores it."""
        out = {k: getattr(self, k)[: self.size] for k in self.ARRAYS}
        out["ptr_size"] = np.array([self.ptr, self.size], np.int64)
        return out

    def load_state_dict(self, state: dict[str, NDArray]) -> None:
        self.ptr, self.size = (int(v) for v in state["ptr_size"])
        for k in self.ARRAYS:
            arr = getattr(self, k)
            if state[k].shape[1:] != arr.shape[1:] or len(state[k]) != self.size or self.size > self.capacity:
                raise ValueError(f"checkpoint buffer {k} has shape {state[k].shape}, expected (<= {arr.shape})")
            arr[: self.size] = state[k]
        agents, counts = np.unique(self.agent[: self.size], return_counts=True)
        self._count = dict(zip(agents.tolist(), counts.tolist(), strict=True))


def next_rows(prev: OffloadBatch, nxt: OffloadBatch) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """For each row of ``prev``, its row in ``nxt`` and whether the agent is still there (match by agent id)."""
    if len(nxt) == 0:
        return np.zeros(len(prev), np.int64), np.zeros(len(prev), bool)
    order = np.argsort(nxt.agent_ids, kind="stable")
    pos = np.minimum(np.searchsorted(nxt.agent_ids, prev.agent_ids, sorter=order), len(order) - 1)
    rows = order[pos]
    return rows, nxt.agent_ids[rows] == prev.agent_ids


def transition(prev: OffloadBatch, step: OffloadStep) -> tuple[NDArray, NDArray, NDArray]:
    """``(next_obs, done, reward)`` per row of ``prev``: a vehicle that left is terminal (its last obs is kept)."""
    rows, alive = next_rows(prev, step.next)
    next_obs = np.where(alive[:, None], step.next.obs[rows] if len(step.next) else prev.obs, prev.obs)
    return next_obs.astype(np.float32), (~alive).astype(np.float32), step.rewards.astype(np.float32)


def co_hosted_rho(host: NDArray[np.int64], rho: NDArray[np.float64]) -> NDArray[np.float32]:
    """Per vehicle, the summed rho of the other vehicles on its host (the CPU share's coupling, C.6)."""
    if len(host) == 0:
        return np.zeros(0, np.float32)
    total = np.bincount(host, weights=rho, minlength=int(host.max()) + 1)
    return (total[host] - rho).astype(np.float32)


def _context(core: OffloadCore) -> TickContext:
    # The core keeps the tick context its batch came from; selection needs the hosts' ranges and distances.
    ctx = core._ctx  # noqa: SLF001
    assert ctx is not None, "call reset() first"
    return ctx


def vehicle_energy_wh(core: OffloadCore) -> NDArray[np.float64]:
    """E_n of every vehicle of the current batch (the twin's energy, Eq. 35), Wh."""
    engine = core.sim.engine
    assert engine is not None
    capacity = engine.vehicles.f["energy_capacity_j"][engine._slots]  # noqa: SLF001 - rows of the last tick
    return np.asarray(_context(core).offload_now["energy_frac"]) * capacity / WH_TO_J


def eligible_clients(core: OffloadCore, criteria: SelectionCriteria) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Eq. 24 for every vehicle of the current batch, and the RSU each would upload to (its host; only twins
    hosted on a ground RSU can be clients, as RSUs aggregate)."""
    ctx = _context(core)
    servers = ctx.servers
    host = np.asarray(ctx.host)
    if len(host) == 0:
        return np.zeros(0, bool), host
    d_host = np.asarray(ctx.observation.distances_m)[np.arange(len(host)), host]
    on_rsu = (np.asarray(servers.tiers) == "rsu")[host]
    stay = predicted_stay_s(d_host, servers.range_m[host], ctx.offload_now["speed_mps"])
    ok = eligible(ctx.offload_now["f_hz"], vehicle_energy_wh(core), stay, criteria) & on_rsu
    return ok, host


def select_clients(candidates: NDArray, k: int, rng: np.random.Generator) -> NDArray:
    """Up to ``k`` of the candidates, uniformly without replacement (nothing is drawn where there is none)."""
    if len(candidates) == 0:
        return candidates[:0]
    return rng.choice(candidates, size=min(k, len(candidates)), replace=False)


def own_minibatch(buffer: ReplayBuffer, agent: int, size: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """A client's minibatch: ``size`` of its own transitions D_n, drawn with replacement (Eq. 41)."""
    return rng.choice(buffer.agent_indices(agent), size=size, replace=True)


def behaviour_rho(
    chosen: torch.Tensor, std: float, uniform_rate: float, generator: torch.Generator, rng: np.random.Generator
) -> NDArray[np.float64]:
    """The TD3-style trainers' behaviour policy: the actor's rho with Gaussian noise, clipped to [0, 1] (Eq. 47),
    and for a share ``uniform_rate`` of the vehicles a uniformly random rho instead (Table V's exploration rate)."""
    rho = explore(chosen, std, generator).numpy().astype(np.float64)
    uniform = rng.random(len(rho)) < uniform_rate
    return np.where(uniform, rng.random(len(rho)), rho)


def make_core(
    scenario: str | Path | None, recordings: Sequence[str | Path], options: EnvOptions, seed: int
) -> OffloadCore:
    return OffloadCore(scenario, [Path(r) for r in recordings], options, seed=seed)


@dataclass
class EpisodeLog:
    """Sums over one episode's vehicle-ticks (the cost and success curves)."""

    cost: float = 0.0
    success: int = 0
    delay: float = 0.0
    energy: float = 0.0
    n: int = 0

    def add(self, step: OffloadStep) -> None:
        alive = step.alive
        self.cost += float(np.nansum(step.cost[alive]))
        self.success += int(step.success[alive].sum())
        self.delay += float(np.nansum(step.delay_s[alive]))
        self.energy += float(np.nansum(step.energy_j[alive]))
        self.n += int(alive.sum())

    def row(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {
            "cost": self.cost / n,
            "success": self.success / n,
            "delay_s": self.delay / n,
            "energy_j": self.energy / n,
            "vehicle_ticks": self.n,
        }


class CurveLog:
    """Rows of training curves (one per episode); :meth:`csv` gives ``curves.csv``'s text."""

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = list(rows or [])

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def csv(self) -> str:
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        return buf.getvalue()

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.csv())


def plot_curves(rows: list[dict[str, Any]], columns: Sequence[str], path: Path, title: str) -> None:
    """One panel per column against the episode (curves.png beside curves.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [c for c in columns if any(c in r and r[c] == r[c] for r in rows)]
    if not present:
        return
    fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 2.8), squeeze=False)
    for ax, col in zip(axes[0], present, strict=True):
        xs = [r["episode"] for r in rows if col in r]
        ys = [r[col] for r in rows if col in r]
        ax.plot(xs, ys, lw=1.2)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("episode", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seed_everything(seed: int, threads: int = 1) -> torch.Generator:
    """Seed torch and return a generator; one torch thread keeps runs bit-for-bit repeatable on a machine."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return torch.Generator().manual_seed(seed)


def keep_freed_memory(trim_mb: int = 512, mmap_mb: int = 32) -> bool:
    """Let glibc's malloc keep freed memory for the next allocation instead of handing it back to the system.

    A training tick allocates and frees the same few-MB tensors (activations, per-client gradients) over and over.
    By default glibc returns a freed block above its trim threshold to the kernel, and the next tensor of that size
    takes a page fault per 4 KiB touched: measured on AF-MARL's grouped local update, 4,700 faults and 11 ms of
    system time per call (30 % of it), none with the thresholds raised. Returns False where malloc is not glibc's.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_mmap_threshold, mmap_mb << 20)) and bool(mallopt(m_trim_threshold, trim_mb << 20))


def args_dict(args: Any) -> dict[str, Any]:
    out = {}
    for f in fields(args):
        v = getattr(args, f.name)
        out[f.name] = [str(x) for x in v] if isinstance(v, list | tuple) else (str(v) if isinstance(v, Path) else v)
    return out


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    def resume_from(self, elapsed_s: float) -> None:
        """Count on from ``elapsed_s`` (a run resumed from its checkpoint)."""
        self.start = time.perf_counter() - elapsed_s


class PhaseTimer:
    """Wall time per phase of a training loop (the profile in ``curves.csv``: ``time_<phase>_s`` per episode)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[phase] = self.totals.get(phase, 0.0) + time.perf_counter() - start

    def row(self) -> dict[str, float]:
        """This episode's times, and start counting the next one."""
        out = {f"time_{k}_s": round(v, 3) for k, v in self.totals.items()}
        self.totals = {}
        return out

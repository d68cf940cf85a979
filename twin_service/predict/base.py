"""The forecaster interface: a window of every server's recent load -> its load at the decision horizon.

Paper A (Eq. 19, 23) feeds the migration policy, and its dynamic mask, the *predicted* workload of each
server. A forecaster reads the last ``window`` ticks of each server's load S'_m (Eq. 8) and the number of
twins it hosts (paper A's flow c_m), as the engine keeps them in memory (:class:`ServerLoadHistory`) and as
the API reads them back from the twin store's window, and returns one load per server.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class LoadWindow:
    """The recent history of every server, oldest tick first."""

    load_bits: NDArray[np.float64]
    """``(T, M)`` server loads S'_m at each of the last T ticks (backlog included), bits."""
    hosted: NDArray[np.float64]
    """``(T, M)`` twins hosted by each server at those ticks (paper A's flow c_m)."""

    @property
    def ticks(self) -> int:
        return int(self.load_bits.shape[0])


@runtime_checkable
class LoadForecaster(Protocol):
    """Predicts each server's load ``horizon`` ticks after the last one of its input window."""

    name: str
    version: str
    window: int
    """Ticks of history the forecaster reads (paper A: T = 6)."""
    horizon: int
    """Ticks ahead it forecasts (1: the next tick, where the decision takes effect)."""

    def forecast(self, history: LoadWindow) -> NDArray[np.float64]:
        """``(M,)`` predicted loads, bits. ``history`` may hold fewer than ``window`` ticks at a run's start."""
        ...


class PersistenceForecaster:
    """The naive forecast: each server's load stays what it is now. What the service uses without a model."""

    name = "persistence"
    version = "1"
    window = 1
    horizon = 1

    def forecast(self, history: LoadWindow) -> NDArray[np.float64]:
        return np.asarray(history.load_bits[-1], dtype=np.float64)


class ServerLoadHistory:
    """The last ``size`` ticks of every server's load and hosted count, as the twin store's window holds them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._load: deque[NDArray[np.float64]] = deque(maxlen=size)
        self._hosted: deque[NDArray[np.float64]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._load)

    def clear(self) -> None:
        self._load.clear()
        self._hosted.clear()

    def push(self, load_bits: NDArray[np.floating], hosted: NDArray[np.floating]) -> None:
        self._load.append(np.asarray(load_bits, dtype=np.float64))
        self._hosted.append(np.asarray(hosted, dtype=np.float64))

    def window(self, ticks: int | None = None) -> LoadWindow:
        """The last ``ticks`` ticks (all held if None), oldest first."""
        n = len(self._load) if ticks is None else min(ticks, len(self._load))
        if n == 0:
            raise ValueError("no server load recorded yet")
        load = np.stack(list(self._load)[-n:])
        hosted = np.stack(list(self._hosted)[-n:])
        return LoadWindow(load, hosted)

"""Store ticks: with retries while Redis is away, and optionally on a background thread.

Over TraCI the bridge waits on SUMO's socket for much of a tick, and a writer thread stores tick N
meanwhile (with libsumo, which holds the GIL while stepping, the run loop writes synchronously).
Order and atomicity are kept: one writer thread, at most one tick in flight (``submit`` waits for
the previous write), each tick one transaction, and a failed write (after the retries of
:func:`write_with_retry`) stops the bridge at the next ``submit`` or ``flush`` instead of being lost.
Code that reads the twins it just produced (an HTTP decision source) calls ``flush`` first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from twin_service.twins import TwinStore, TwinStoreUnavailable
from twin_service.twins.frames import TickFrame


class BridgeError(RuntimeError):
    """The bridge had to stop; the message says why and what to do."""


def write_with_retry(
    store: TwinStore,
    frame: TickFrame,
    retry_s: float,
    url: str = "",
    notify: Callable[[str], None] | None = None,
) -> int:
    """Store a tick, retrying with backoff while Redis is away; returns the number of retries.

    The tick is rewritten whole on each try (writes are idempotent per tick), so a reader never sees part
    of it. A server that comes back empty gets the run's records back in the tick's own transaction (the
    store checks its run marker on every write), and ticks that a failed-over server lost after acknowledging
    them are stored again. ``notify`` gets a line when the first write fails (the run holds), one when a retry
    succeeds (the run goes on, saying which lost ticks were stored again), and one when a write had to put the
    run's records or its ticks back into a Redis that lost them without an error being seen (emptied, or
    restarted between two ticks).
    """
    delay = 0.05
    started = time.monotonic()
    deadline = started + retry_s
    retries = 0
    where = f" at {url}" if url else ""
    while True:
        restores, reasserted = store.restores, store.reasserted_ticks
        try:
            store.write_tick(frame)
            restored = store.restores > restores
            put_back = store.reasserted_ticks - reasserted
            lost = (
                f"had lost {put_back} tick{'s' if put_back > 1 else ''} it had acknowledged (a failover to a replica "
                f"that had not received them): stored them again with tick {frame.tick}"
            )
            if notify is not None and retries:
                notify(
                    f"Redis{where} is back after {time.monotonic() - started:.1f} s: "
                    + ("the run's records put back, " if restored else "")
                    + f"tick {frame.tick} stored, going on"
                    + (f"; it {lost}" if put_back else "")
                )
            elif notify is not None and restored:
                notify(
                    f"Redis{where} had lost the run's records (restarted or emptied): "
                    f"put them back with tick {frame.tick}"
                )
            elif notify is not None and put_back:
                notify(f"Redis{where} {lost}")
            return retries
        except TwinStoreUnavailable as exc:
            if not retries and notify is not None:
                notify(f"Redis{where} unreachable ({exc}); holding tick {frame.tick}, retrying for {retry_s:.0f} s")
            if time.monotonic() + delay > deadline:
                raise BridgeError(
                    f"Redis{where} unreachable for {retry_s:.0f} s; stopped before tick {frame.tick} was stored ({exc})"
                ) from exc
            time.sleep(delay)
            retries += 1
            delay = min(delay * 2, 1.0)  # a Redis back is noticed within a second


class TickWriter:
    """Writes ticks one at a time on a daemon thread; errors surface in the caller's thread."""

    def __init__(self, write: Callable[[TickFrame], int], name: str = "twin-writer") -> None:
        self._write = write
        self._pending: TickFrame | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self.retries = 0
        self.written = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:  # closed and drained
                    return
                frame = self._pending
            try:
                self.retries += self._write(frame)
                self.written += 1
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                with self._cond:
                    self._error = exc
            with self._cond:
                self._pending = None
                self._cond.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, frame: TickFrame) -> None:
        """Queue a tick; waits while the previous one is still being written."""
        with self._cond:
            while self._pending is not None:
                self._cond.wait()
            self._raise_error()
            self._pending = frame
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every submitted tick is stored; raise the error of a failed write."""
        with self._cond:
            while self._pending is not None:
                self._cond.wait()
            self._raise_error()

    def close(self) -> None:
        """Flush, then stop the thread."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout=30)

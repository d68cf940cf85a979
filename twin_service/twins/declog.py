"""The decision log's record of one tick: every vehicle's decision, packed (pure; no Redis).

Per vehicle, in the tick's vehicle order: its current host and the target chosen for it (server indices in the
layout order), the offloaded fraction rho, the size of its Eq. 23 mask (servers it was allowed), the policy's
three best-scored servers with their scores (the policy's probabilities; -1 where fewer than three servers
were scored above zero), and the predicted load of the target the policy saw (bits).

Packed as one zlib-compressed blob: a header, the ids joined by newlines, then each column as a little-endian
array. At 1,500 vehicles that is 12-25 KB (51 KB before compression).
The decision service packs it where the policy ran (``POST /v1/decisions/batch`` with ``"log": true``) and the
bridge appends it, with the decisions it applied, to the ``P:decisions`` stream.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAGIC = b"TDL1"
TOP_K = 3
MAX_ROWS = 1_000_000
_HEADER = struct.Struct("<4sII")
"""magic, rows, bytes of the newline-joined ids."""
_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("host", "<i2", 1),
    ("target", "<i2", 1),
    ("rho", "<f2", 1),
    ("mask_size", "<i2", 1),
    ("top_index", "<i2", TOP_K),
    ("top_score", "<f2", TOP_K),
    ("predicted_load_bits", "<f4", 1),
)
"""Server indices as 16-bit integers (layouts of up to 32,767 servers), rho and scores as half floats (three
significant digits, what the log shows), the predicted load as a float."""
MAX_SERVERS = 32_767
MAX_PACKED_BYTES = 64 << 20
"""A packed record inflates to at most this (a crafted one claiming more is refused unread)."""


class DecisionLogError(ValueError):
    """A packed decision record that cannot be read."""


@dataclass(frozen=True)
class DecisionRows:
    """One tick's decisions, a row per vehicle."""

    vehicle_ids: tuple[str, ...]
    host: NDArray[np.int16]
    target: NDArray[np.int16]
    rho: NDArray[np.float16]
    mask_size: NDArray[np.int16]
    top_index: NDArray[np.int16]
    """``(V, 3)`` the policy's best-scored servers, best first (-1: none)."""
    top_score: NDArray[np.float16]
    """``(V, 3)`` their scores (the policy's probabilities)."""
    predicted_load_bits: NDArray[np.float32]
    """The predicted load of each vehicle's target that the policy saw."""

    def row(self, vehicle_id: str) -> int | None:
        try:
            return self.vehicle_ids.index(vehicle_id)
        except ValueError:
            return None


def top_scores(probabilities: NDArray[np.floating], k: int = TOP_K) -> tuple[NDArray[np.int16], NDArray[np.float32]]:
    """The ``k`` best-scored servers per row (best first, ties to the lower index) and their scores; -1 and 0 where
    fewer servers scored above 0. Three passes of argmax: 7x cheaper than a partition over every server."""
    p = np.array(probabilities, dtype=np.float32)
    n = p.shape[0]
    rows = np.arange(n)
    index = np.full((n, k), -1, dtype=np.int16)
    scores = np.zeros((n, k), dtype=np.float32)
    for j in range(min(k, p.shape[1] if p.ndim == 2 else 0)):
        best = p.argmax(axis=1)
        value = p[rows, best]
        good = value > 0
        index[good, j] = best[good]
        scores[good, j] = value[good]
        p[rows, best] = -1.0
    return index, scores


def pack_rows(
    vehicle_ids: list[str] | tuple[str, ...],
    host: NDArray[np.integer],
    target: NDArray[np.integer],
    rho: NDArray[np.floating],
    mask_size: NDArray[np.integer],
    top_index: NDArray[np.integer],
    top_score: NDArray[np.floating],
    predicted_load_bits: NDArray[np.floating],
) -> bytes:
    """One tick's decisions as the log keeps them (see the module)."""
    n = len(vehicle_ids)
    ids = "\n".join(vehicle_ids).encode()
    parts = [_HEADER.pack(MAGIC, n, len(ids)), ids]
    values = {
        "host": host,
        "target": target,
        "rho": rho,
        "mask_size": mask_size,
        "top_index": top_index,
        "top_score": top_score,
        "predicted_load_bits": predicted_load_bits,
    }
    if n and max(int(np.max(host)), int(np.max(target))) > MAX_SERVERS:
        raise ValueError(f"the decision log keeps server indices up to {MAX_SERVERS}")
    for name, dtype, width in _COLUMNS:
        arr = np.ascontiguousarray(values[name], dtype=dtype)
        if arr.size != n * width:
            raise ValueError(f"decision log column {name}: {arr.size} values for {n} vehicles x {width}")
        parts.append(arr.tobytes())
    return zlib.compress(b"".join(parts), 1)


def unpack_rows(blob: bytes) -> DecisionRows:
    """The decisions of a packed record (:class:`DecisionLogError` when it is not one)."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(blob, MAX_PACKED_BYTES)
        if inflater.unconsumed_tail:
            raise DecisionLogError(f"a packed decision record inflates beyond {MAX_PACKED_BYTES} bytes")
    except zlib.error as exc:
        raise DecisionLogError(f"not a packed decision record: {exc}") from None
    if len(raw) < _HEADER.size:
        raise DecisionLogError("a packed decision record too short for its header")
    magic, n, id_bytes = _HEADER.unpack_from(raw)
    if magic != MAGIC or n > MAX_ROWS:
        raise DecisionLogError("not a packed decision record (bad header)")
    expected = _HEADER.size + id_bytes + n * sum(np.dtype(d).itemsize * w for _, d, w in _COLUMNS)
    if len(raw) != expected:
        raise DecisionLogError(f"a packed decision record of {len(raw)} bytes where its header implies {expected}")
    offset = _HEADER.size
    try:
        text = raw[offset : offset + id_bytes].decode()
    except UnicodeDecodeError:
        raise DecisionLogError("a packed decision record's ids are not UTF-8") from None
    ids = tuple(text.split("\n")) if n else ()
    if len(ids) != n:
        raise DecisionLogError(f"a packed decision record holds {len(ids)} ids for {n} rows")
    offset += id_bytes
    columns: dict[str, NDArray] = {}
    for name, dtype, width in _COLUMNS:
        size = n * width * np.dtype(dtype).itemsize
        arr = np.frombuffer(raw, dtype=dtype, count=n * width, offset=offset)
        columns[name] = arr.reshape(n, width) if width > 1 else arr
        offset += size
    return DecisionRows(ids, **columns)


@dataclass(frozen=True)
class DecisionLogEntry:
    """One tick's entry of the decision log, as the bridge appends it."""

    tick: int
    """The tick decided on (the decisions govern the tick after it)."""
    sim_time_s: float
    source: str
    """``policy@version+policy@version``, with ``api:`` when the decision service decided, or ``fallback:`` when the
    bridge decided locally."""
    fallback: bool
    rows: bytes
    """:func:`pack_rows` of every vehicle's decision."""


__all__ = ["DecisionLogEntry", "DecisionLogError", "DecisionRows", "pack_rows", "top_scores", "unpack_rows"]


@dataclass(frozen=True)
class VehicleDecision:
    """One vehicle's decision at one tick, from the decision log (server indices in the layout order)."""

    tick: int
    sim_time_s: float
    source: str
    fallback: bool
    host: int
    target: int
    rho: float
    mask_size: int
    top_index: tuple[int, ...]
    top_score: tuple[float, ...]
    predicted_load_bits: float


@dataclass(frozen=True)
class DecisionLogRecord:
    """One tick of the decision log as read back."""

    tick: int
    sim_time_s: float
    source: str
    fallback: bool
    rows: DecisionRows

    def decision(self, row: int) -> VehicleDecision:
        """The decision of the vehicle in ``row``."""
        r = self.rows
        return VehicleDecision(
            tick=self.tick,
            sim_time_s=self.sim_time_s,
            source=self.source,
            fallback=self.fallback,
            host=int(r.host[row]),
            target=int(r.target[row]),
            rho=float(r.rho[row]),
            mask_size=int(r.mask_size[row]),
            top_index=tuple(int(i) for i in r.top_index[row]),
            top_score=tuple(float(v) for v in r.top_score[row]),
            predicted_load_bits=float(r.predicted_load_bits[row]),
        )

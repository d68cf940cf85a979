"""Packing of one entity block (ids, numeric columns, text columns, index) into bytes, and back.

Pure functions, no Redis: ``keys`` says where the bytes go. Both tables are row-major with a fixed
row size, so one twin's row is a byte range that GETRANGE fetches alone:

* numeric table: one little-endian float64 (rows x columns) array;
* text table: fixed-width records, each value UTF-8 and NUL-padded to its column's widest value.

The index maps an id to its row through :data:`~twin_service.twins.keys.INDEX_BUCKETS` buckets
(FNV-1a of the UTF-8 id); a bucket holds fixed-width ``(id, row)`` records. Per-row work runs in C
(``str.join``, numpy), never in a Python loop over twins: the bridge writes thousands of rows per
tick, hundreds of ticks per second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from twin_service.twins.frames import TickMeta
from twin_service.twins.keys import INDEX_BUCKETS

FLOAT = np.dtype("<f8")
ROW = np.dtype("<u4")
ID_SEP = "\n"
_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


class BlockLayout(NamedTuple):
    """How one entity block of one tick is laid out (stored in the tick's meta)."""

    n: int
    columns: tuple[str, ...]
    text_columns: tuple[str, ...]
    text_widths: tuple[int, ...]
    """Byte width of each text column's values in the text table."""
    id_width: int
    """Byte width of the ids in the index records."""


EMPTY_LAYOUT = BlockLayout(0, (), (), (), 1)


class EncodedBlock(NamedTuple):
    """One entity block ready for Redis."""

    layout: BlockLayout
    ids: bytes
    num: bytes
    text: bytes
    index: dict[str, bytes]
    """Index hash fields: bucket number -> that bucket's (id, row) records."""


class StoredTick(NamedTuple):
    """A tick's meta as stored: the public part and the block layouts."""

    meta: TickMeta
    layouts: dict[str, BlockLayout]
    """``veh`` / ``srv`` -> layout."""


# ---- index hashing ----------------------------------------------------------------------------


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a hash."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def index_bucket(twin_id: str) -> int:
    """Index hash field holding ``twin_id``: FNV-1a of its UTF-8 bytes, modulo the bucket count."""
    return fnv1a_32(twin_id.encode()) % INDEX_BUCKETS


def _fnv1a_32_fixed(ids: np.ndarray) -> np.ndarray:
    """FNV-1a of each value of a NUL-padded bytes array (padding skipped), vectorised over ids."""
    width = ids.dtype.itemsize
    data = ids.view(np.uint8).reshape(len(ids), width).astype(np.uint32)
    h = np.full(len(ids), _FNV_OFFSET, dtype=np.uint32)
    prime = np.uint32(_FNV_PRIME)
    for j in range(width):
        byte = data[:, j]
        h = np.where(byte != 0, (h ^ byte) * prime, h)
    return h


def _index_dtype(id_width: int) -> np.dtype:
    return np.dtype([("id", f"S{id_width}"), ("row", ROW)])


def _encode_index(ids_fixed: np.ndarray) -> dict[str, bytes]:
    n = len(ids_fixed)
    if not n:
        return {}
    bucket = _fnv1a_32_fixed(ids_fixed) % INDEX_BUCKETS
    order = np.argsort(bucket, kind="stable")
    records = np.empty(n, dtype=_index_dtype(ids_fixed.dtype.itemsize))
    records["id"] = ids_fixed[order]
    records["row"] = order
    raw = records.tobytes()
    size = records.dtype.itemsize
    bounds = np.searchsorted(bucket[order], np.arange(INDEX_BUCKETS + 1)).tolist()
    return {
        str(b): raw[bounds[b] * size : bounds[b + 1] * size] for b in range(INDEX_BUCKETS) if bounds[b + 1] > bounds[b]
    }


def find_row(bucket_value: bytes | None, twin_id: str, id_width: int) -> int | None:
    """Row of ``twin_id`` in one index bucket, or None."""
    if not bucket_value:
        return None
    try:
        key = twin_id.encode()
    except UnicodeEncodeError:
        return None
    if len(key) > id_width:
        return None
    records = np.frombuffer(bucket_value, dtype=_index_dtype(id_width))
    hit = np.flatnonzero(records["id"] == key)
    return int(records["row"][hit[0]]) if hit.size else None


# ---- blocks -----------------------------------------------------------------------------------


def _check_names(names: Sequence[str], what: str) -> None:
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: column name {name!r} must be a non-empty string")


def _fixed_width(values: Sequence[str], joined: str) -> np.ndarray:
    """Values as a NUL-padded UTF-8 bytes array (``joined`` is their concatenation)."""
    if joined.isascii():
        width = max(map(len, values), default=0)
        return np.array(values, dtype=f"S{max(width, 1)}")
    encoded = [v.encode() for v in values]
    return np.array(encoded, dtype=f"S{max(max(map(len, encoded), default=0), 1)}")


def encode_block(
    ids: Sequence[str],
    columns: Mapping[str, np.ndarray | Sequence[float]],
    text: Mapping[str, Sequence[str]],
    what: str = "block",
) -> EncodedBlock:
    """Validate and pack one entity block; ``what`` names it in error messages."""
    n = len(ids)
    names = tuple(columns)
    text_names = tuple(text)
    _check_names(names, what)
    _check_names(text_names, what)
    if clash := set(names) & set(text_names):
        raise ValueError(f"{what}: columns {sorted(clash)} are both numeric and text")

    ids_str = ID_SEP.join(ids)  # TypeError on a non-str id, which is what we want
    if n and ids_str.count(ID_SEP) != n - 1 or "\x00" in ids_str:
        raise ValueError(f"{what}: ids must not contain a newline or NUL")
    if len(set(ids)) != n:
        raise ValueError(f"{what}: ids are not unique")
    if n and not all(ids):
        raise ValueError(f"{what}: ids must be non-empty")
    ids_fixed = _fixed_width(ids, ids_str)

    block = np.empty((n, len(names)), dtype=FLOAT)
    for j, name in enumerate(names):
        col = np.asarray(columns[name], dtype=np.float64)
        if col.shape != (n,):
            raise ValueError(f"{what}: column {name!r} has shape {col.shape}, expected ({n},)")
        block[:, j] = col

    text_cols = []
    for name in text_names:
        values = text[name]
        if len(values) != n:
            raise ValueError(f"{what}: text column {name!r} has {len(values)} values, expected {n}")
        joined = "".join(values)  # TypeError on a non-str value
        if "\x00" in joined:
            raise ValueError(f"{what}: text column {name!r} holds a NUL character")
        text_cols.append(_fixed_width(values, joined))
    widths = tuple(c.dtype.itemsize for c in text_cols)
    text_table = b""
    if text_cols:
        table = np.empty(n, dtype=_text_dtype(widths))
        for j, col in enumerate(text_cols):
            table[f"c{j}"] = col
        text_table = table.tobytes()

    return EncodedBlock(
        layout=BlockLayout(n, names, text_names, widths, ids_fixed.dtype.itemsize),
        ids=ids_str.encode(),
        num=block.tobytes(),
        text=text_table,
        index=_encode_index(ids_fixed),
    )


def _text_dtype(widths: Sequence[int]) -> np.dtype:
    return np.dtype([(f"c{j}", f"S{w}") for j, w in enumerate(widths)])


def decode_ids(raw: bytes | None, n: int) -> list[str]:
    if not n:
        return []
    return (raw or b"").decode().split(ID_SEP)


def decode_ids_bytes(raw: bytes | None, n: int) -> np.ndarray:
    """Ids as a numpy bytes array, for vectorised alignment of blocks from different ticks."""
    if not n:
        return np.empty(0, dtype="S1")
    return np.array((raw or b"").split(ID_SEP.encode()))


def decode_num(raw: bytes | None, n: int, n_cols: int) -> np.ndarray:
    """The (n, n_cols) float64 table, a read-only view on ``raw``."""
    return np.frombuffer(raw or b"", dtype=FLOAT).reshape(n, n_cols)


def decode_columns(raw: bytes | None, n: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Numeric table -> name -> contiguous, writable float64 array."""
    by_column = decode_num(raw, n, len(names)).T.copy()
    return {name: by_column[j] for j, name in enumerate(names)}


def decode_text(raw: bytes | None, layout: BlockLayout) -> dict[str, list[str]]:
    """Text table -> name -> values."""
    if not layout.text_columns:
        return {}
    table = np.frombuffer(raw or b"", dtype=_text_dtype(layout.text_widths), count=layout.n)
    out: dict[str, list[str]] = {}
    for j, name in enumerate(layout.text_columns):
        col = table[f"c{j}"]
        try:
            out[name] = col.astype(f"U{layout.text_widths[j]}").tolist()  # ASCII, in C
        except UnicodeDecodeError:
            out[name] = [v.decode() for v in col.tolist()]
    return out


def decode_text_row(raw: bytes, widths: Sequence[int]) -> list[str]:
    """One record of the text table -> its values."""
    values, start = [], 0
    for w in widths:
        values.append(raw[start : start + w].rstrip(b"\x00").decode())
        start += w
    return values


def num_row_range(row: int, n_cols: int) -> tuple[int, int]:
    """Inclusive GETRANGE bounds of one row of the numeric table."""
    size = n_cols * FLOAT.itemsize
    return row * size, (row + 1) * size - 1


def text_row_range(row: int, widths: Sequence[int]) -> tuple[int, int]:
    """Inclusive GETRANGE bounds of one record of the text table."""
    size = sum(widths)
    return row * size, (row + 1) * size - 1


# ---- tick meta --------------------------------------------------------------------------------


def _layout_json(layout: BlockLayout) -> dict:
    return {
        "n": layout.n,
        "columns": layout.columns,
        "text_columns": layout.text_columns,
        "text_widths": layout.text_widths,
        "id_width": layout.id_width,
    }


def _layout_from_json(d: dict) -> BlockLayout:
    return BlockLayout(
        n=int(d["n"]),
        columns=tuple(d["columns"]),
        text_columns=tuple(d["text_columns"]),
        text_widths=tuple(d["text_widths"]),
        id_width=int(d["id_width"]),
    )


def encode_meta(
    tick: int, sim_time_s: float, wall_time: float, write_id: str, veh: BlockLayout, srv: BlockLayout
) -> bytes:
    """The JSON stored in ``P:tick:{n}:meta`` and ``P:latest``."""
    return json.dumps(
        {
            "tick": tick,
            "sim_time_s": sim_time_s,
            "wall_time": wall_time,
            "write_id": write_id,
            "veh": _layout_json(veh),
            "srv": _layout_json(srv),
        },
        separators=(",", ":"),
    ).encode()


def decode_meta(raw: bytes) -> StoredTick:
    d = json.loads(raw)
    veh, srv = _layout_from_json(d["veh"]), _layout_from_json(d["srv"])
    meta = TickMeta(
        tick=int(d["tick"]),
        sim_time_s=float(d["sim_time_s"]),
        wall_time=float(d["wall_time"]),
        n_vehicles=veh.n,
        n_servers=srv.n,
        vehicle_columns=veh.columns,
        vehicle_text_columns=veh.text_columns,
        server_columns=srv.columns,
        server_text_columns=srv.text_columns,
        write_id=str(d["write_id"]),
    )
    return StoredTick(meta, {"veh": veh, "srv": srv})

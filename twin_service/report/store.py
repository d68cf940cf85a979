"""What the report has measured, kept between runs: keyed CSV files, and the fingerprints the keys are made of.

A run (one policy pair over one recorded day under one condition) is stored as its episodes' sufficient
statistics (``envs.evaluate``'s sums, from which every KPI follows for any reference policy), under a key that
hashes everything the result depends on: the recording's bytes, the policies' weights and manifests (less their
recorded evaluation figures), the scenario parameters after overrides, the predictor and the episode options. A
later report with the same key reuses the rows; a retrained model or a re-recorded day changes the key. The files
are written whole (temporary name, then rename), so an interrupted report leaves the last complete one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CACHE_VERSION = 1


def file_sha256(path: str | Path, _memo: dict[tuple[str, int, int], str] = {}) -> str:  # noqa: B006 - a memo
    """sha256 of a file's bytes (remembered for this process by path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _memo:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _memo[memo_key] = h.hexdigest()
    return _memo[memo_key]


def model_fingerprint(folder: str | Path) -> str:
    """What a trained model *is*: its weights and its manifest without the evaluation figures recorded later."""
    f = Path(folder)
    manifest = json.loads((f / "manifest.json").read_text())
    manifest.pop("evaluation", None)
    h = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode())
    for weights in sorted(f.glob("*.safetensors")):
        h.update(weights.name.encode())
        h.update(file_sha256(weights).encode())
    return h.hexdigest()[:16]


def policy_fingerprint(name: str, models_dir: Path) -> str:
    """A model's fingerprint, or ``heuristic:NAME`` for a policy that is code."""
    folder = models_dir / name
    if (folder / "manifest.json").is_file():
        return model_fingerprint(folder)
    return f"heuristic:{name}"


def key_of(payload: dict[str, Any]) -> str:
    blob = json.dumps({"version": CACHE_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class KeyedRows:
    """Rows under keys in one CSV file (a ``key`` column first); each key's rows are stored and read together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, list[dict[str, str]]] = {}
        if path.is_file():
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    self.rows.setdefault(row["key"], []).append(row)

    def get(self, key: str) -> list[dict[str, str]] | None:
        return self.rows.get(key)

    def put(self, key: str, rows: list[dict[str, Any]]) -> None:
        self.rows[key] = [{"key": key, **{k: _text(v) for k, v in r.items()}} for r in rows]
        self.save()

    def keep_only(self, keys: set[str]) -> int:
        """Drops rows under other keys (results of models or days no longer in the plan); returns how many keys."""
        gone = [k for k in self.rows if k not in keys]
        for k in gone:
            del self.rows[k]
        if gone:
            self.save()
        return len(gone)

    def save(self) -> None:
        fields: list[str] = ["key"]
        for rows in self.rows.values():
            for r in rows:
                fields += [k for k in r if k not in fields]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.partial")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, restval="")
            writer.writeheader()
            for rows in self.rows.values():
                writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


@contextlib.contextmanager
def exclusive(lock: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` (shared with other heavy jobs, e.g. /tmp/twin-train.lock)."""
    if lock is None:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    time.sleep(1.0)  # flock is not fair: give the jobs waiting for it a chance before the next step takes it

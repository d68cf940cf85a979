"""What a report run found and did (:class:`Report`): the state the documents are written from.

:mod:`twin_service.report.pipeline` fills it (models made or reused, stored runs and their keys, failures and
timings); :mod:`twin_service.report.results` and :mod:`twin_service.report.render` read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from twin_service.report.plan import Plan
from twin_service.report.store import KeyedRows


@dataclass
class ModelStatus:
    """A model of the plan: whether it was reused, trained, used as committed, failed or is missing."""

    name: str
    folder: str
    status: str
    """reused, trained, as committed (``--as-committed``), failed, or missing (not made: not needed by the parts
    run, or absent under ``--as-committed``)."""
    command: str = ""
    """The command recorded in its manifest (what made the weights in use)."""
    fingerprint: str = ""
    algorithm: str = ""
    note: str = ""


@dataclass
class Report:
    """What a report run found and did; the renderer reads it with the stores."""

    plan: Plan
    out: Path
    parts: list[str]
    runs: KeyedRows
    predictor_rows: KeyedRows
    models: dict[str, ModelStatus] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per part run: wall and CPU seconds."""
    recordings: dict[str, str] = field(default_factory=dict)
    """Recording path -> sha256 (those present)."""
    run_keys: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    """(condition, migration, offload, recording) -> the key its rows are stored under."""
    predictor_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    command: str = ""

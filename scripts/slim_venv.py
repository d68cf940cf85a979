"""Slim the Docker image's virtual environment to what the live stack runs (the Dockerfile's build stage runs it).

python scripts/slim_venv.py SITE_PACKAGES [--bytecode-of MODULE,...] [--keep-bytecode-under PACKAGE,...] [--dry-run]

1. Files that are byte for byte the same (16 KiB or more) are kept once: the others become relative symlinks
   to it. The eclipse-sumo and libsumo wheels each bundle the same 111 libraries (230 MB), and sumo-data
   repeats files of eclipse-sumo's data.
2. torch's shared libraries, which still carry a symbol table (libtorch_cpu.so: 90 MB of it), and the extension
   modules that ship their debug information (uvloop, httptools, hiredis) are stripped of what dynamic linking
   does not need (``strip --strip-unneeded``).
3. What no command of the image uses is removed: torch's C++ headers, tests, test programs and test libraries,
   and its compiler for ``torch.compile`` (``torch._inductor``: the served models run eagerly); SUMO's netedit
   and the programs the project never runs (it runs sumo, sumo-gui, netconvert, netgenerate and,
   through randomTrips, duarouter), its C++ client libraries, contributed tools and games, and the
   translations of its GUI (the image runs it in English); onnx's test data and ONNX Runtime's model tools
   (transformer optimisation, quantisation).
4. With ``--bytecode-of``: compiled bytecode (``__pycache__``) is kept only for the modules that importing
   those modules loads (and everything under ``--keep-bytecode-under``): a module loaded later is compiled
   when it is imported, as Python does without a cache. pip writes bytecode for every module it installs
   (110 MB here), and the stack loads about a quarter of it.

It prints what it saved, and refuses to touch anything outside SITE_PACKAGES.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

MIN_DEDUP_BYTES = 16 << 10
MIN_STRIP_BYTES = 1 << 20
STRIP = ("torch/lib/*.so*", "uvloop/*.so", "httptools/parser/*.so", "hiredis/*.so")
"""torch's own libraries and the extension modules that ship their debug information (uvloop's loop: 13.6 MB, 1.6
MB stripped). Never the libraries that auditwheel bundled into other wheels (``*.libs/``): patchelf rewrote them,
and stripping those breaks them (numpy's OpenBLAS: "ELF load command address/offset not page-aligned")."""
KEEP_FIRST = ("eclipse_sumo.libs/", "sumo/")
"""When copies differ only in where they are, the copy under these stays (what sumo and sumo-gui load)."""
UNUSED = (
    "torch/include",
    "torch/_inductor",
    "torch/test",
    "torch/share/cmake",
    "torch/lib/libtorchbind_test.so",
    "torch/lib/libaoti_custom_ops.so",
    "torch/lib/libbackend_with_compiler.so",
    "torch/bin/protoc",
    "torch/bin/protoc-3.13.0.0",
    "torch/bin/test_*",
    "sumo/bin/netedit",
    "sumo/bin/activitygen",
    "sumo/bin/dfrouter",
    "sumo/bin/emissionsDrivingCycle",
    "sumo/bin/emissionsMap",
    "sumo/bin/jtrrouter",
    "sumo/bin/marouter",
    "sumo/bin/od2trips",
    "sumo/bin/polyconvert",
    "sumo/lib64",
    "sumo/tools/contributed",
    "sumo/tools/neteditTestFunctions",
    "sumo/tools/game",
    "sumo/data/po",
    "sumo_data/data/po",
    "sumo/data/locale",
    "sumo_data/data/locale",
    "sumo/include",
    "onnx/backend/test/data",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/tools",
)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def remove_unused(site: Path, dry_run: bool) -> int:
    freed = 0
    for pattern in UNUSED:
        for path in site.glob(pattern):
            size = path.lstat().st_size if path.is_file() else _size(path)
            freed += size
            print(f"remove {path.relative_to(site)} ({size / 1e6:.1f} MB)")
            if not dry_run:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return freed


def dedupe(site: Path, dry_run: bool) -> int:
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in site.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size >= MIN_DEDUP_BYTES:
            by_size[path.stat().st_size].append(path)
    freed = 0
    for size, paths in by_size.items():
        if len(paths) < 2:
            continue
        by_digest: dict[str, list[Path]] = defaultdict(list)
        for path in paths:
            by_digest[_digest(path)].append(path)
        for same in by_digest.values():
            if len(same) < 2:
                continue
            rel = [str(p.relative_to(site)) for p in same]
            order = sorted(range(len(same)), key=lambda i: (not rel[i].startswith(KEEP_FIRST), rel[i]))
            kept = same[order[0]]
            for i in order[1:]:
                copy = same[i]
                target = os.path.relpath(kept, copy.parent)
                freed += size
                if not dry_run:
                    copy.unlink()
                    copy.symlink_to(target)
    print(f"deduplicated: {freed / 1e6:.1f} MB")
    return freed


def strip_symbols(site: Path, dry_run: bool) -> int:
    strip = shutil.which("strip")
    if strip is None:
        print("strip not found (binutils): symbol tables kept")
        return 0
    freed = 0
    for pattern in STRIP:
        for path in site.glob(pattern):
            if not path.is_file() or path.is_symlink() or path.stat().st_size < MIN_STRIP_BYTES:
                continue
            listing = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True).stdout
            if ".symtab" not in listing or dry_run:
                continue
            before = path.stat().st_size
            subprocess.run([strip, "--strip-unneeded", str(path)], check=True)
            freed += before - path.stat().st_size
    print(f"stripped: {freed / 1e6:.1f} MB")
    return freed


_LOADED = """
import importlib, json, sys
failed = []
for name in sys.argv[1].split(","):
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - reported, and its package's bytecode is kept whole
        failed.append(f"{name}: {exc}")
print(json.dumps({"files": sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}),
                  "failed": failed}))
"""


def prune_bytecode(site: Path, modules: list[str], keep_under: list[str], dry_run: bool) -> int:
    """Remove the ``.pyc`` files of every module that importing ``modules`` does not load."""
    cmd = [sys.executable, "-c", _LOADED, ",".join(modules)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    for failure in report["failed"]:
        print(f"bytecode: could not import {failure}; its package's bytecode is kept")
        keep_under.append(failure.split(":", 1)[0].split(".")[0])
    loaded = {str(Path(f).resolve()) for f in report["files"]}
    kept_roots = [site / name for name in keep_under]
    freed = 0
    for pyc in site.rglob("__pycache__/*.pyc"):
        source = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
        if str(source.resolve()) in loaded or any(root in pyc.parents for root in kept_roots):
            continue
        freed += pyc.stat().st_size
        if not dry_run:
            pyc.unlink()
    print(f"bytecode of modules the stack does not load: {freed / 1e6:.1f} MB")
    return freed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site_packages", type=Path)
    parser.add_argument("--bytecode-of", default="", help="Modules whose imports keep their bytecode (commas).")
    parser.add_argument("--keep-bytecode-under", default="", help="Packages whose bytecode is all kept (commas).")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    site = args.site_packages.resolve()
    if site.name != "site-packages" or not site.is_dir():
        print(f"error: {site} is not a site-packages folder", file=sys.stderr)
        return 2
    total = remove_unused(site, args.dry_run) + dedupe(site, args.dry_run) + strip_symbols(site, args.dry_run)
    if args.bytecode_of:
        keep = [p for p in args.keep_bytecode_under.split(",") if p]
        total += prune_bytecode(site, args.bytecode_of.split(","), keep, args.dry_run)
    print(f"slim_venv: {total / 1e6:.0f} MB saved{' (dry run)' if args.dry_run else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

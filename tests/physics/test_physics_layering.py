"""physics is the bottom layer: it imports numpy, numba (to compile its pair pricing, with numpy as the fallback) and
the standard library, nothing else of ours."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import twin_service.physics as physics

PHYSICS_DIR = Path(physics.__file__).parent
ALLOWED_THIRD_PARTY = {"numpy", "numba"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside physics
                names.add("twin_service.physics")
            elif node.module:
                names.add(node.module)
    return names


def test_physics_imports_only_numpy_stdlib_and_itself() -> None:
    modules = sorted(PHYSICS_DIR.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "twin_service":
                assert name.startswith("twin_service.physics"), f"{path.name} imports {name}"
            else:
                allowed = top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names
                assert allowed, f"{path.name} imports {name}"

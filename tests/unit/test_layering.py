"""The one-way import direction between modules (docs/architecture.md), and __all__."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "s3func"

LAYER = {
    "errors": 0,
    "models": 0,
    "_sigv4": 1,
    "_config": 1,
    "retry": 1,
    "_paths": 1,
    "_localfs": 1,
    "_http": 2,
    "response": 2,
    "progress": 2,
    "session": 3,
    "_transfer": 3,
    "s3": 4,
    "b2": 4,
    "_b2_auth": 4,
    "lock": 5,
    "sync": 5,
    "testing": 6,
    "__init__": 7,
}
FORBIDDEN = {
    ("s3", "b2"),
    ("b2", "s3"),
    ("lock", "s3"),
    ("lock", "b2"),
    ("sync", "s3"),
    ("sync", "b2"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("s3func."):
            found.add(node.module.split(".")[1])
    return found


MODULES = sorted(p.stem for p in SRC.glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_go_down(module: str) -> None:
    assert module in LAYER, f"add {module} to the layer table in docs/architecture.md and here"
    for target in _imports(SRC / f"{module}.py"):
        if target not in LAYER:
            continue
        if (module, target) in FORBIDDEN:
            pytest.fail(f"{module} must not import {target}")
        lazy_ok = module in ("session", "sync", "lock") and target in ("lock", "b2", "s3")
        if lazy_ok and (module, target) not in FORBIDDEN:
            continue
        assert LAYER[target] <= LAYER[module], f"{module} (layer {LAYER[module]}) imports {target}"


def _runtime_imports(path: Path) -> set[str]:
    """Top-level package names imported at run time (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", MODULES)
def test_urllib3_and_certifi_confined(module: str) -> None:
    names = _runtime_imports(SRC / f"{module}.py")
    if module not in ("_http", "response"):
        assert "urllib3" not in names
    if module != "_http":
        assert "certifi" not in names


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__init__"])
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(f"s3func.{module}")
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"s3func.{module}.__all__ lists missing {name}"


def test_package_all_resolves() -> None:
    import s3func

    for name in s3func.__all__:
        try:
            getattr(s3func, name)
        except ImportError:  # a backend module still being written
            pytest.skip(f"{name} not importable yet")

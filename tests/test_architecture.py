"""Who may import whom (docs/ARCHITECTURE.md), checked on the source, and the public API's names.

``latency/`` stands alone: anyone can build a table for any list of layer specs, so it imports
nothing of the model families, the space-to-table adapters, the CLI or the quickstart. The pruning
side asks ``latency/`` for predictions but never reaches into ``tables/`` (which joins the two) or
the CLI; nothing below the CLI imports it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import prune_lut

ROOT = Path(prune_lut.__file__).parent
FORBIDDEN = {  # package -> packages it may not import
    "latency": ("pruning", "tables", "cli", "quickstart", "lut_data"),
    "devices": ("latency", "pruning", "tables", "cli", "quickstart"),
    "pruning": ("tables", "cli", "quickstart"),
    "tables": ("cli", "quickstart"),
    "quickstart": ("cli",),
    "files": ("latency", "pruning", "tables", "cli", "quickstart", "devices", "schemas", "outputs"),
    "schemas": ("latency", "pruning", "tables", "cli", "quickstart", "devices", "outputs"),
    "outputs": ("latency", "pruning", "tables", "cli", "quickstart", "devices", "schemas", "files"),
    "errors": ("latency", "pruning", "tables", "cli", "quickstart", "devices", "files", "schemas", "outputs"),
}


def imported(path: Path) -> set[str]:
    """Top-level prune_lut packages a module imports (absolute or relative, at any depth)."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # resolve the relative import against the module's own package
                base = list(rel[:-1])[: len(rel) - node.level] if node.level <= len(rel) else []
                mod = ".".join(["prune_lut", *base, *(node.module.split(".") if node.module else [])])
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for n in names:
            parts = n.split(".")
            if parts[0] == "prune_lut" and len(parts) > 1:
                out.add(parts[1])
    return out


MODULES = sorted(p for p in ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_import_directions(path):
    top = path.relative_to(ROOT).parts[0].removesuffix(".py")
    bad = set(FORBIDDEN.get(top, ())) & imported(path)
    assert not bad, f"{path.relative_to(ROOT)} ({top}/) imports {sorted(bad)}, which docs/ARCHITECTURE.md forbids"


def test_the_check_sees_imports():
    """The import scan finds both absolute and relative imports (so the test above can fail)."""
    assert {"pruning", "latency", "tables"} <= imported(ROOT / "quickstart.py")
    assert "latency" in imported(ROOT / "tables" / "build.py")


@pytest.mark.parametrize("name", prune_lut.__all__)
def test_public_api_names_resolve(name):
    obj = getattr(prune_lut, name)
    assert obj is not None and (callable(obj) or isinstance(obj, type)), name

"""crypto/ and sync/ are cores without I/O frameworks (STYLE.md): importing them
must not pull in a web framework, a database driver or an HTTP client."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("flask", "sqlalchemy", "requests", "sqlite3", "sqlcipher3", "psycopg")
CORES = ("crypto", "sync")

# Import the package and every module under it, then list what got loaded.
_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def _top_level(name: str) -> str:
    return name.split(".")[0].lstrip("_")  # "_sqlite3" is sqlite3's C half


@pytest.mark.parametrize("package", CORES)
def test_importing_a_core_loads_no_io_framework(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, package], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = {_top_level(name) for name in json.loads(result.stdout)}
    assert package in loaded  # the probe really imported it
    assert sorted(loaded & set(FORBIDDEN)) == []


def test_probe_would_notice_a_forbidden_import() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sqlite3, json, sys; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "sqlite3" in {_top_level(name) for name in json.loads(result.stdout)}


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found under {package}/"
    return files


def _imports(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {_top_level(name) for name in names}


_IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+(?:flask|sqlalchemy|requests|sqlite3)\b", re.MULTILINE)


@pytest.mark.parametrize("package", CORES)
def test_no_core_source_imports_an_io_framework(package: str) -> None:
    offenders = []
    for path in _sources(package):
        source = path.read_text("utf-8")
        found = _imports(source) & set(FORBIDDEN)
        if found or _IMPORT_LINE.search(source):
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(found) or 'import line'}")
    assert offenders == []


def test_static_check_would_notice_a_forbidden_import() -> None:
    assert _imports("import os, sqlite3\nfrom flask import Flask\n") >= {"sqlite3", "flask"}
    assert _IMPORT_LINE.search("x = 1\n    import requests\n")

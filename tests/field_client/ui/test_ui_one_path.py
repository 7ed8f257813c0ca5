"""The ui has no second way to write: every write is a field_client.edits call.

A reading of the ui's own source (it cannot fail by luck): no SQL, no
transaction, no signing, no outbox of its own; and each edits function it
calls is the one the CLI calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

import field_client.ui

UI = Path(field_client.ui.__file__).parent
CLI = Path(field_client.ui.__file__).parents[1] / "cli.py"
FORBIDDEN_CALLS = {"execute", "executemany", "executescript", "transaction", "set_secret", "make_change"}
FORBIDDEN_IMPORTS = {"sqlite3", "sqlcipher3", "crypto", "sync.changes", "sync.merge", "nacl"}
ALLOWED_IMPORTS = {"crypto.clock"}  # the one clock (the time a sync ended): no key, no signing


def calls(path: Path) -> list[tuple[str, str]]:
    """(object, attribute) of every ``x.attr(...)`` call in a module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            out.append((ast.unparse(node.func.value), node.func.attr))
    return out


def test_the_ui_writes_only_through_edits() -> None:
    sources = sorted(UI.glob("*.py"))
    assert len(sources) >= 6
    edits_used: set[str] = set()
    for path in sources:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {node.module or ""}
            else:
                continue
            forbidden = {n for n in names if n.split(".")[0] in FORBIDDEN_IMPORTS or n in FORBIDDEN_IMPORTS}
            assert not forbidden - ALLOWED_IMPORTS, (path, names)
        for obj, attr in calls(path):
            assert attr not in FORBIDDEN_CALLS, (path.name, obj, attr)
            assert not (attr == "set" and "replica" in obj), (path.name, obj, attr)  # Replica.set: a meta write
            if obj == "edits":
                edits_used.add(attr)
        assert "INSERT" not in path.read_text() and "UPDATE " not in path.read_text(), path
    assert edits_used == {"create", "update", "delete"}
    cli_edits = {attr for obj, attr in calls(CLI) if obj == "edits"}
    assert edits_used == cli_edits  # the very functions the CLI calls

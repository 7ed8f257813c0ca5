"""The laptop's settings (field_client/settings.py): each documented, each refused when malformed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from field_client import settings
from field_client.errors import ClientError, ReplicaError
from field_client.settings import SETTINGS, Setting
from sync import DEFAULT_MAX_DRIFT_MS

ROOT = Path(__file__).resolve().parents[2]
OFFICERS = ROOT / "docs" / "officers.md"


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_is_in_docs_officers(setting: Setting) -> None:
    doc = OFFICERS.read_text(encoding="utf-8")
    name = f"FIELDSYNC_{setting.name}"
    assert re.search(rf"\b{name}\b", doc), f"{name} is not documented in docs/officers.md"
    rows = [line for line in doc.splitlines() if f"`{name}`" in line and line.lstrip().startswith("|")]
    assert rows, f"{name} has no row in the settings table of docs/officers.md"
    if setting.default is not None:
        assert any(str(setting.default) in row for row in rows), f"docs/officers.md gives {name} another default"


def test_no_other_module_reads_a_setting_from_the_environment() -> None:
    """One place parses the laptop's settings: elsewhere in field_client/, no ``FIELDSYNC_``
    variable is read from the environment (demo.py only writes them for the processes it starts)."""
    read = re.compile(r"""(?:environ\.get\(|getenv\(|environ\[)\s*f?["']FIELDSYNC_""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "field_client").rglob("*.py"))
        if path.name != "settings.py" and read.search(path.read_text("utf-8"))
    ]
    assert offenders == []
    assert read.search('os.environ.get("FIELDSYNC_HOME")') and read.search("os.getenv('FIELDSYNC_X')")


def test_unset_or_blank_settings_give_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(f"FIELDSYNC_{setting.name}", raising=False)
    assert settings.home() == str(Path.home() / ".fieldsync")
    assert settings.passphrase() is None
    assert settings.max_clock_drift_ms() == DEFAULT_MAX_DRIFT_MS == 86_400_000
    assert settings.timeouts() == (5.0, 30.0)
    assert settings.pull_commit() == 5000
    assert settings.replica_memory_security() == "OFF"
    for name in ("MAX_CLOCK_DRIFT", "CONNECT_TIMEOUT", "READ_TIMEOUT", "PULL_COMMIT", "REPLICA_MEMORY_SECURITY"):
        monkeypatch.setenv(f"FIELDSYNC_{name}", "  ")
    assert (settings.max_clock_drift_ms(), settings.timeouts(), settings.pull_commit()) == (
        DEFAULT_MAX_DRIFT_MS,
        (5.0, 30.0),
        5000,
    )
    assert settings.replica_memory_security() == "OFF"
    monkeypatch.setenv("FIELDSYNC_HOME", "")
    monkeypatch.setenv("FIELDSYNC_PASSPHRASE", "")
    assert settings.home() == str(Path.home() / ".fieldsync")  # an empty folder name is no folder
    assert settings.passphrase() == ""  # ... but an empty passphrase is one (refused later, as too short)


def test_good_values_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FIELDSYNC_HOME", str(tmp_path))
    monkeypatch.setenv("FIELDSYNC_PASSPHRASE", " spaces kept ")
    monkeypatch.setenv("FIELDSYNC_MAX_CLOCK_DRIFT", " 3600 ")
    monkeypatch.setenv("FIELDSYNC_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("FIELDSYNC_READ_TIMEOUT", "3600")
    monkeypatch.setenv("FIELDSYNC_PULL_COMMIT", "1")
    monkeypatch.setenv("FIELDSYNC_REPLICA_MEMORY_SECURITY", " On ")
    assert settings.home() == str(tmp_path)
    assert settings.passphrase() == " spaces kept "
    assert settings.max_clock_drift_ms() == 3_600_000
    assert settings.timeouts() == (0.5, 3600.0)
    assert settings.pull_commit() == 1
    assert settings.replica_memory_security() == "ON"


DRIFT = "FIELDSYNC_MAX_CLOCK_DRIFT must be a whole number of seconds above 0, not "
CONNECT = "FIELDSYNC_CONNECT_TIMEOUT must be a number of seconds above 0 (at most 3600), not "
READ = "FIELDSYNC_READ_TIMEOUT must be a number of seconds above 0 (at most 3600), not "
COMMIT = "FIELDSYNC_PULL_COMMIT must be a whole number of changes from 1 to 1000000, not "
MEMORY = "FIELDSYNC_REPLICA_MEMORY_SECURITY must be on or off, not "

# (setting, value given, its reader, the error, the one line the officer reads: as before settings.py)
REFUSED: list[tuple[str, str, Callable[[], Any], type[Exception], str]] = [
    ("MAX_CLOCK_DRIFT", "0", settings.max_clock_drift_ms, ClientError, DRIFT + "'0'"),
    ("MAX_CLOCK_DRIFT", " 1.5", settings.max_clock_drift_ms, ClientError, DRIFT + "' 1.5'"),  # named as given
    ("MAX_CLOCK_DRIFT", "-5", settings.max_clock_drift_ms, ClientError, DRIFT + "'-5'"),
    ("CONNECT_TIMEOUT", "soon", settings.timeouts, ClientError, CONNECT + "'soon'"),
    ("CONNECT_TIMEOUT", "0", settings.timeouts, ClientError, CONNECT + "'0'"),
    ("READ_TIMEOUT", " 3601 ", settings.timeouts, ClientError, READ + "'3601'"),
    ("READ_TIMEOUT", "nan", settings.timeouts, ClientError, READ + "'nan'"),
    ("PULL_COMMIT", "0", settings.pull_commit, ClientError, COMMIT + "'0'"),
    ("PULL_COMMIT", "many", settings.pull_commit, ClientError, COMMIT + "'many'"),
    ("PULL_COMMIT", "2000000", settings.pull_commit, ClientError, COMMIT + "'2000000'"),
    ("REPLICA_MEMORY_SECURITY", "Yes please", settings.replica_memory_security, ReplicaError, MEMORY + "'yes please'"),
]


@pytest.mark.parametrize(
    ("name", "value", "read", "error", "message"), REFUSED, ids=[f"{r[0]}={r[1]}" for r in REFUSED]
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    read: Callable[[], Any],
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.setenv(f"FIELDSYNC_{name}", value)
    with pytest.raises(error) as refused:
        read()
    assert str(refused.value) == message

"""The replica's kept state (field_client/syncstate.py): typed accessors over ``meta`` whose
stored form is exactly what replicas already hold."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import field_client
from crypto import FAST
from field_client import syncstate
from field_client.replica import Replica
from field_client.syncstate import KEYS, SyncState

from .conftest import MakeLaptop
from .helpers import PASSPHRASE

# The stored key names: they are the replica's format and never change.
STORED = (
    "hub_url",
    "device_id",
    "agency",
    "officer",
    "certificate",
    "registry",
    "pinned",
    "seq",
    "prev",
    "clock",
    "cursor",
    "checkpoint",
    "hub_alarm",
    "hub_resets",
    "last_sync_at",
    "last_try_at",
    "last_sync_error",
    "hub_clock_offset",
    "restored",
    "feed_burned",
)


@pytest.fixture
def rep(tmp_path: Path) -> Iterator[Replica]:
    with Replica.create(tmp_path / "home", PASSPHRASE, cost=FAST) as made:
        yield made


def stored(rep: Replica) -> dict[str, str]:
    return {r["key"]: r["value"] for r in rep.rows("SELECT key, value FROM meta")}


def test_every_key_is_named_once_and_as_stored() -> None:
    assert KEYS == STORED
    for key in KEYS:  # the attribute is the stored key, so the code reads as the replica holds it
        assert getattr(SyncState, key).key == key


def test_a_fresh_replica_reads_the_defaults(rep: Replica) -> None:
    kept = SyncState(rep)
    assert (kept.seq, kept.cursor, kept.hub_clock_offset, kept.hub_resets) == (0, 0, 0.0, [])
    for key in set(KEYS) - {"seq", "cursor", "hub_clock_offset", "hub_resets"}:
        assert getattr(kept, key) is None, key
    assert stored(rep) == {}  # reading writes nothing


def test_values_are_stored_as_the_same_json(rep: Replica) -> None:
    kept = SyncState(rep)
    kept.cursor = 12
    kept.hub_clock_offset = 3.5
    kept.checkpoint = {"size": 4, "head": "H" * 43, "at": "2030-01-01T00:00:00Z"}
    kept.last_sync_error = None
    kept.feed_burned = {"from": 3, "to": 5}
    assert stored(rep) == {
        "cursor": "12",
        "hub_clock_offset": "3.5",
        "checkpoint": '{"size": 4, "head": "' + "H" * 43 + '", "at": "2030-01-01T00:00:00Z"}',
        "last_sync_error": "null",
        "feed_burned": '{"from": 3, "to": 5}',
    }
    assert kept.checkpoint == {"size": 4, "head": "H" * 43, "at": "2030-01-01T00:00:00Z"}
    assert kept.feed_burned == {"from": 3, "to": 5}


def test_what_replicas_already_hold_reads_through_the_accessors(rep: Replica) -> None:
    """Values written by the generic meta setter, as every earlier release did."""
    rep.set("cursor", 7)
    rep.set("seq", 2)
    rep.set("hub_clock_offset", 2)  # an int offset reads as a float
    rep.set("hub_resets", [{"accepted_at": "x"}])
    kept = SyncState(rep)
    assert (kept.cursor, kept.seq, kept.hub_clock_offset, kept.hub_resets) == (7, 2, 2.0, [{"accepted_at": "x"}])
    assert isinstance(kept.hub_clock_offset, float)


def test_the_alarm_is_removed_not_nulled(rep: Replica) -> None:
    kept = SyncState(rep)
    kept.hub_alarm = {"kind": "FORK", "message": "FORK: test", "detected_at": "now"}
    assert "hub_alarm" in stored(rep)
    del kept.hub_alarm
    assert "hub_alarm" not in stored(rep) and kept.hub_alarm is None


def test_the_default_list_is_never_shared(rep: Replica) -> None:
    kept = SyncState(rep)
    kept.hub_resets.append({"oops": True})
    assert kept.hub_resets == [] and stored(rep) == {}


def test_a_misspelled_key_is_an_error_not_a_default(rep: Replica) -> None:
    kept = SyncState(rep)
    with pytest.raises(AttributeError):
        kept.curser  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError):
        kept.curser = 3  # type: ignore[attr-defined]
    assert stored(rep) == {}


def test_writes_join_the_callers_transaction(rep: Replica) -> None:
    kept = SyncState(rep)
    with pytest.raises(RuntimeError), rep.transaction():
        kept.cursor = 5
        kept.clock = "later"
        raise RuntimeError("power lost")
    assert stored(rep) == {}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_enrollment_writes_what_the_device_reads(laptop: MakeLaptop) -> None:
    lee = laptop("SPD", "Sgt. Lee")
    kept = lee.device.sync_state
    enrolled = {"hub_url", "device_id", "agency", "officer", "certificate", "registry", "pinned", "clock"}
    assert set(stored(lee.replica)) == enrolled | {"seq", "prev", "cursor"}
    assert (kept.device_id, kept.agency, kept.officer) == (lee.device.device_id, "SPD", "Sgt. Lee")
    assert (kept.seq, kept.prev, kept.cursor) == (0, None, 0)
    assert kept.pinned == {"size": len(kept.registry or []), "head": lee.device.pinned.head}


def test_no_other_module_spells_a_meta_key() -> None:
    """Outside syncstate.py no field_client module reads or writes ``meta`` by a string key:
    no ``.get("key"``, ``.set("key"`` or ``.unset("key"`` on a replica."""
    root = Path(field_client.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path == Path(syncstate.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "set", "unset")
                and "replica" in ast.unparse(node.func.value)
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                raise AssertionError(f"{path.name}: {ast.unparse(node)}")
        assert "FROM meta" not in path.read_text() or path.name == "replica.py", path.name

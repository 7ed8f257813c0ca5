"""field_client.inputs: typed text to values, shared by `--set` and the ui's forms."""

from __future__ import annotations

import time

import pytest

from field_client.errors import EditRefused
from field_client.inputs import form_values, local_to_utc, parse_texts, utc_to_local_input


def test_text_becomes_the_schema_type() -> None:
    assert parse_texts("resources", {"quantity": "3", "name": "Unit 12", "location": '{"text": "HQ"}'}) == {
        "quantity": 3,
        "name": "Unit 12",
        "location": {"text": "HQ"},
    }
    assert parse_texts("resources", {"location.lat": "39.78"}) == {"location.lat": 39.78}
    assert parse_texts("contacts", {"phone": "555"}) == {"phone": "555"}  # judged later, by the schema


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(EditRefused) as caught:
        parse_texts("resources", {"quantity": "lots", "location.lon": "east", "name": "ok"})
    assert caught.value.messages == {
        "quantity": ["'lots' is not a whole number."],
        "location.lon": ["'east' is not a number."],
    }


def test_a_create_leaves_blanks_out_and_builds_nested_fields() -> None:
    texts = {"name": " Unit 12 ", "kind": "vehicle", "quantity": "", "location.text": "HQ", "location.lat": ""}
    assert form_values("resources", texts, local_times=False) == {
        "name": "Unit 12",
        "kind": "vehicle",
        "location": {"text": "HQ"},
    }
    assert form_values("resources", {"location.text": "", "location.lat": ""}) == {}


def test_an_update_keeps_only_what_changed_and_blanks_clear() -> None:
    current = {"name": "Unit 12", "quantity": 1, "notes": "keys", "location": {"text": "HQ"}}
    texts = {"name": "Unit 12", "quantity": "1", "notes": "", "location.text": "HQ", "location.lat": ""}
    assert form_values("resources", texts, current) == {"notes": None}
    assert form_values("resources", {**texts, "quantity": "2", "notes": "keys"}, current) == {"quantity": 2}
    assert form_values("resources", {"description": ""}, current) == {}  # blank and already empty: no write
    stored = {"location": {"text": "HQ", "lat": None, "lon": None}}
    assert form_values("resources", {"location.text": "HQ", "location.lat": "", "location.lon": ""}, stored) == {}


def test_local_times_become_utc_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    try:
        assert local_to_utc("2026-11-23T14:00") == "2026-11-23T20:00:00Z"
        assert local_to_utc("2026-07-01T14:00:30") == "2026-07-01T19:00:30Z"  # daylight time
        assert utc_to_local_input("2026-11-23T20:00:00Z") == "2026-11-23T14:00"
        assert utc_to_local_input("2026-11-23T20:00:30Z") == "2026-11-23T14:00:30"  # no second lost
        assert local_to_utc(utc_to_local_input("2026-11-23T20:00:30Z")) == "2026-11-23T20:00:30Z"
        assert local_to_utc("tomorrow") is None
        values = form_values("reservations", {"starts_at": "2026-11-23T14:00", "ends_at": "2026-11-23T18:00:00Z"})
        assert values == {"starts_at": "2026-11-23T20:00:00Z", "ends_at": "2026-11-23T18:00:00Z"}
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

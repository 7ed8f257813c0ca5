"""Schemas: unknown fields and wrong types are refused with field-level messages."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sync import COLLECTIONS, SyncError, ValidationError, validate_change, validate_values
from sync.schemas import field_names

from .helpers import Agency, new_id

RESOURCE = {
    "kind": "vehicle",
    "name": "Unit 12",
    "description": "Marked patrol car",
    "quantity": 1,
    "status": "available",
    "location": {"text": "North depot", "lat": 44.98, "lon": -93.27},
    "point_of_contact": "0b0c3e51-3e3a-4d43-9d8c-6d2b8f1a2c11",
    "notes": None,
}
CONTACT = {
    "name": "Sgt. Dana Ruiz",
    "role": "liaison",
    "agency_unit": "Traffic",
    "phone": "+1 (555) 010-2000",
    "email": "dana.ruiz@spd.example.org",
    "radio": "TAC-3 / Bravo 12",
    "jurisdiction": "Springfield",
    "notes": "Nights",
}
RESERVATION = {
    "resource_id": "0b0c3e51-3e3a-4d43-9d8c-6d2b8f1a2c11",
    "starts_at": "2026-11-22T08:00:00Z",
    "ends_at": "2026-11-22T12:00:00Z",
    "purpose": "Parade",
    "state": "requested",
}
FULL = {"resources": RESOURCE, "contacts": CONTACT, "reservations": RESERVATION}
REQUIRED = {
    "resources": {"kind", "name"},
    "contacts": {"name", "role"},
    "reservations": {"resource_id", "starts_at", "ends_at"},
}


def errors(collection: str, values: Any, *, creating: bool = False) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        validate_values(collection, values, creating=creating)
    return info.value.messages


# -- validate_values -----------------------------------------------------
@pytest.mark.parametrize("collection", COLLECTIONS)
def test_a_full_valid_record_passes_unchanged(collection: str) -> None:
    values = copy.deepcopy(FULL[collection])
    assert validate_values(collection, values, creating=True) is values
    assert values == FULL[collection], "nothing is coerced or added"


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_only_the_required_fields_are_enough_to_create(collection: str) -> None:
    minimal = {name: FULL[collection][name] for name in REQUIRED[collection]}
    assert validate_values(collection, minimal, creating=True) == minimal


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_create_names_every_missing_required_field(collection: str) -> None:
    messages = errors(collection, {}, creating=True)
    assert set(messages) == REQUIRED[collection]
    for name in REQUIRED[collection]:
        assert messages[name] == ["Missing data for required field."]


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_an_update_may_set_any_subset(collection: str) -> None:
    for name, value in FULL[collection].items():
        assert validate_values(collection, {name: value}, creating=False) == {name: value}
    assert validate_values(collection, {}, creating=False) == {}


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_an_unknown_field_is_reported_under_its_own_name(collection: str) -> None:
    messages = errors(collection, {**FULL[collection], "colour": "red"}, creating=True)
    assert messages == {"colour": ["Unknown field."]}


@settings(max_examples=100, deadline=None)
@given(
    collection=st.sampled_from(COLLECTIONS),
    name=st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z"),
    value=st.one_of(st.none(), st.integers(), st.text(max_size=5)),
)
def test_any_unknown_field_is_refused_by_name(collection: str, name: str, value: Any) -> None:
    assume(name not in field_names(collection))
    with pytest.raises(ValidationError) as info:
        validate_values(collection, {name: value}, creating=False)
    assert info.value.messages == {name: ["Unknown field."]}


@pytest.mark.parametrize(
    ("collection", "values", "field"),
    [
        ("resources", {"quantity": "3"}, "quantity"),  # no coercion on the wire
        ("resources", {"quantity": True}, "quantity"),
        ("resources", {"quantity": 3.0}, "quantity"),
        ("resources", {"quantity": 2.5}, "quantity"),
        ("resources", {"quantity": -1}, "quantity"),
        ("resources", {"name": 12}, "name"),
        ("resources", {"name": ""}, "name"),
        ("resources", {"name": "x" * 201}, "name"),
        ("resources", {"notes": ["a"]}, "notes"),
        ("resources", {"location": "North depot"}, "location"),
        ("resources", {"point_of_contact": "not-a-uuid"}, "point_of_contact"),
        ("resources", {"point_of_contact": "0B0C3E51-3E3A-4D43-9D8C-6D2B8F1A2C11"}, "point_of_contact"),
        ("resources", {"point_of_contact": "0b0c3e51-3e3a-1d43-9d8c-6d2b8f1a2c11"}, "point_of_contact"),  # uuid1
        ("contacts", {"email": "not an address"}, "email"),
        ("contacts", {"phone": "call me"}, "phone"),
        ("contacts", {"name": None}, "name"),
        ("reservations", {"resource_id": "7"}, "resource_id"),
        ("reservations", {"starts_at": "2026-11-22 08:00"}, "starts_at"),
        ("reservations", {"starts_at": "2026-11-22T08:00:00+00:00"}, "starts_at"),
        ("reservations", {"ends_at": "2026-02-30T08:00:00Z"}, "ends_at"),
        ("reservations", {"ends_at": 1_790_000_000}, "ends_at"),
        ("reservations", {"ends_at": "\u0662\u0660\u0662\u0666-11-22T08:00:00Z"}, "ends_at"),  # not ASCII digits
    ],
)
def test_wrong_types_and_forms_are_field_errors(collection: str, values: dict[str, Any], field: str) -> None:
    messages = errors(collection, values)
    assert list(messages) == [field]
    assert messages[field]


@pytest.mark.parametrize(
    ("collection", "field", "good", "bad"),
    [
        ("resources", "kind", "facility", "spaceship"),
        ("resources", "status", "out_of_service", "lost"),
        ("contacts", "role", "commander", "mayor"),
        ("reservations", "state", "approved", "pending"),
    ],
)
def test_enumerations(collection: str, field: str, good: str, bad: str) -> None:
    assert validate_values(collection, {field: good}, creating=False) == {field: good}
    messages = errors(collection, {field: bad})
    assert list(messages) == [field]
    assert good in messages[field][0], "the message lists the allowed values"
    assert list(errors(collection, {field: good.upper()})) == [field]


def test_status_may_not_be_null_but_optional_text_may() -> None:
    assert validate_values("resources", {"notes": None, "quantity": None}, creating=False)
    assert list(errors("resources", {"status": None})) == ["status"]


@pytest.mark.parametrize(
    ("location", "where"),
    [
        ({"text": "Depot", "lat": "44.9", "lon": -93.2}, "lat"),
        ({"lat": 44.9, "lon": "-93.2"}, "lon"),
        ({"lat": True, "lon": 1.0}, "lat"),
        ({"lat": 91, "lon": 0}, "lat"),
        ({"lat": 0, "lon": 180.5}, "lon"),
        ({"lat": 0, "lon": 0, "alt": 3}, "alt"),
    ],
)
def test_location_errors_are_nested_under_location(location: dict[str, Any], where: str) -> None:
    messages = errors("resources", {"location": location})
    assert list(messages) == ["location"]
    assert list(messages["location"]) == [where]


@pytest.mark.parametrize("location", [{"text": "Depot", "lat": 44.9}, {"lon": -93.2}, {"lat": 44.9, "lon": None}])
def test_lat_without_lon_is_refused(location: dict[str, Any]) -> None:
    messages = errors("resources", {"location": location})
    assert messages["location"] == {"lat": ["Give both lat and lon, or neither."]}


@pytest.mark.parametrize("location", [{"text": "Depot"}, {"lat": 0, "lon": 0}, {"lat": -90, "lon": 180}, None])
def test_location_text_alone_or_both_coordinates(location: dict[str, Any] | None) -> None:
    assert validate_values("resources", {"location": location}, creating=False)


@pytest.mark.parametrize("ends_at", ["2026-11-22T08:00:00Z", "2026-11-22T07:59:59Z", "2025-01-01T00:00:00Z"])
def test_a_reservation_must_end_after_it_starts(ends_at: str) -> None:
    messages = errors("reservations", {**RESERVATION, "ends_at": ends_at}, creating=True)
    assert messages == {"ends_at": ["Must be after starts_at."]}


def test_a_one_second_reservation_is_fine() -> None:
    values = {**RESERVATION, "ends_at": "2026-11-22T08:00:01Z"}
    assert validate_values("reservations", values, creating=True) == values


def test_several_errors_are_reported_together() -> None:
    messages = errors("resources", {"kind": "spaceship", "quantity": "3", "colour": "red"}, creating=True)
    assert set(messages) == {"kind", "quantity", "colour", "name"}


def test_an_unknown_collection_or_a_non_object_is_refused() -> None:
    assert list(errors("planets", {})) == ["collection"]
    assert list(errors("resources", [("kind", "vehicle")])) == ["fields"]


def test_validation_error_is_a_sync_error_with_a_readable_message() -> None:
    with pytest.raises(SyncError) as info:
        validate_values("resources", {"quantity": "3"}, creating=False)
    assert "quantity" in str(info.value) and "Not a valid integer" in str(info.value)


# -- validate_change -----------------------------------------------------
@pytest.fixture(scope="module")
def good() -> dict[str, Any]:
    """A real signed edit (with a prev, so every header field is filled)."""
    device = Agency.create("SPD").device("alice")
    created = device.create("resources", {"kind": "vehicle", "name": "Unit 12"})
    return dict(device.edit(created.record_id, {"status": "deployed", "quantity": 2}).wire)


@pytest.fixture(scope="module")
def tombstone() -> dict[str, Any]:
    device = Agency.create("SPD").device("bob")
    created = device.create("contacts", {"name": "Dana", "role": "liaison"})
    return dict(device.delete(created.record_id).wire)


def test_a_good_signed_change_passes_unchanged(good: dict[str, Any], tombstone: dict[str, Any]) -> None:
    before = copy.deepcopy(good)
    assert validate_change(good) is good
    assert good == before
    assert validate_change(tombstone) is tombstone


def test_a_change_must_be_an_object() -> None:
    for wire in (None, [], "change", 3):
        with pytest.raises(ValidationError) as info:
            validate_change(wire)
        assert info.value.messages == {"_schema": ["A change must be an object."]}


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda w: w.__setitem__(name, value)


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda w: w.pop(name)


def _field(name: str, entry: Any) -> Callable[[dict[str, Any]], None]:
    return lambda w: w.__setitem__("fields", {**w["fields"], name: entry})


SALT = "A" * 22
BROKEN = {
    "no id": (_drop("id"), "id"),
    "id not a uuid": (_set("id", "change-1"), "id"),
    "no collection": (_drop("collection"), "collection"),
    "unknown collection": (_set("collection", "planets"), "collection"),
    "record id not a uuid": (_set("record_id", "42"), "record_id"),
    "agency in lower case": (_set("agency", "spd"), "agency"),
    "agency missing": (_drop("agency"), "agency"),
    "empty device": (_set("device", ""), "device"),
    "seq as text": (_set("seq", "1"), "seq"),
    "seq zero": (_set("seq", 0), "seq"),
    "seq as float": (_set("seq", 2.0), "seq"),
    "seq as bool": (_set("seq", True), "seq"),
    "prev not a hash": (_set("prev", "abc"), "prev"),
    "prev missing": (_drop("prev"), "prev"),
    "hlc malformed": (_set("hlc", "2026-11-22T08:00:00Z"), "hlc"),
    "hlc in other digits": (_set("hlc", "\uff10" * 16 + "-000000-node"), "hlc"),
    "base not an object": (_set("base", ["status"]), "base"),
    "base key not a field": (_set("base", {"Status": None}), "base"),
    "base value not a clock text": (_set("base", {"status": 5}), "base"),
    "fields not an object": (_set("fields", ["status"]), "fields"),
    "field name not a field": (_field("Status", {"salt": SALT, "value": "deployed"}), "fields"),
    "field entry not an object": (_field("status", "deployed"), "fields"),
    "field value wrong type": (_field("quantity", {"salt": SALT, "value": "3"}), "fields"),
    "field unknown to the collection": (_field("colour", {"salt": SALT, "value": "red"}), "fields"),
    "field value not allowed": (_field("status", {"salt": SALT, "value": "lost"}), "fields"),
    "deleted as 1": (_set("deleted", 1), "deleted"),
    "deleted as text": (_set("deleted", "false"), "deleted"),
    "deleted missing": (_drop("deleted"), "deleted"),
    "delete with fields": (_set("deleted", True), "fields"),
    "signature missing": (_drop("signature"), "signature"),
    "signature short": (_set("signature", "abc"), "signature"),
    "extra header": (_set("author", "mallory"), "author"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_envelopes_get_field_level_messages(good: dict[str, Any], case: str) -> None:
    breaker, field = BROKEN[case]
    wire = copy.deepcopy(good)
    breaker(wire)
    with pytest.raises(ValidationError) as info:
        validate_change(wire)
    messages = info.value.messages
    assert list(messages) == [field], messages
    assert messages[field]
    assert field in str(info.value)


def test_a_wrong_value_inside_fields_is_named_by_its_field(good: dict[str, Any]) -> None:
    wire = copy.deepcopy(good)
    wire["fields"]["quantity"] = {"salt": SALT, "value": True}
    wire["fields"]["colour"] = {"salt": SALT, "value": "red"}
    with pytest.raises(ValidationError) as info:
        validate_change(wire)
    assert info.value.messages == {"fields": {"quantity": ["Not a valid integer."], "colour": ["Unknown field."]}}


def test_a_delete_carries_no_fields(tombstone: dict[str, Any]) -> None:
    wire = copy.deepcopy(tombstone)
    wire["fields"] = {"name": {"salt": SALT, "value": "Dana"}}
    with pytest.raises(ValidationError) as info:
        validate_change(wire)
    assert info.value.messages == {"fields": ["A delete carries no fields."]}


def test_withheld_fields_pass_the_envelope_check(good: dict[str, Any]) -> None:
    wire = copy.deepcopy(good)
    wire["fields"]["status"] = {"digest": "x" * 43}
    assert validate_change(wire) is wire


def test_an_update_in_a_change_is_checked_as_partial() -> None:
    # an edit of one field of a reservation is fine without the other required fields
    device = Agency.create("SPD").device()
    rid = new_id()
    created = device.create("reservations", {**RESERVATION, "resource_id": rid})
    wire = dict(device.edit(created.record_id, {"state": "approved"}).wire)
    assert validate_change(wire) is wire


@pytest.mark.parametrize(
    ("field", "text", "kind"),
    [
        ("name", "Unit\x0012", "control character (U+0000"),  # PostgreSQL cannot store NUL
        ("name", "Unit\t12", "control character (U+0009"),  # no tab or line break in a short field
        ("name", "Unit\n12", "control character (U+000A"),
        ("name", "Unit\x1b[2J", "control character (U+001B"),  # a terminal escape
        ("name", "Unit\x85", "control character (U+0085"),  # C1
        ("name", "Unit\ud800", "lone surrogate (U+D800"),  # not UTF-8, cannot be signed
        ("name", "Unit \u202e21", "bidi control (U+202E"),  # reads "Unit 12"
        ("name", "\u2066Unit\u2069", "bidi control (U+2066"),
        ("notes", "ok\nbut\x07bell", "control character (U+0007"),
        ("notes", "\u202bembedded", "bidi control (U+202B"),
    ],
)
def test_text_that_would_not_read_as_it_holds_is_refused(field: str, text: str, kind: str) -> None:
    messages = errors("resources", {field: text}, creating=False)
    assert list(messages) == [field] and kind in messages[field][0], messages


@pytest.mark.parametrize(
    "values",
    [
        {"notes": "line one\nline two\r\n\ttabbed"},  # long free text keeps its lines and tabs
        {"name": "שלום مرحبا"},  # right-to-left scripts
        {"name": "Unit \u200f12\u200e"},  # RLM/LRM marks are text, not overrides
        {"name": "e\u0301 é"},  # NFD and NFC side by side
        {"name": "🚓 👮🏽\u200d♀️"},  # emoji with a zero-width joiner
    ],
)
def test_readable_text_in_any_script_is_accepted_as_given(values: dict[str, Any]) -> None:
    assert validate_values("resources", dict(values), creating=False) == values

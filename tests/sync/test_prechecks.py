"""Prechecks: a compiled check says yes only where the marshmallow schema finds no error.

The schema is the judge in every test here: each value is given to both, and a
check that accepts what its schema refuses fails the test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, validate, validates_schema

from sync import schemas
from sync.prechecks import CompileError, compile_schema

from .helpers import Agency
from .test_schemas import FULL

UUID = "0b0c3e51-3e3a-4d43-9d8c-6d2b8f1a2c11"

# Values that sit on either side of some rule of some field: types, bounds, lengths, patterns.
POOL: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    3,
    1_000_000,
    1_000_001,
    2**53,
    2**53 + 1,
    -(2**60),
    10**400,
    0.5,
    44.98,
    -93.27,
    90,
    90.0,
    90.000001,
    -90,
    -180,
    180.5,
    float("nan"),
    float("inf"),
    -float("inf"),
    "",
    "a",
    "x" * 200,
    "x" * 201,
    "y" * 4000,
    "y" * 4001,
    "line\nbreak",
    "tab\there",
    "nul\x00",
    "del\x7f",
    "c1\x85",
    "bidi\u202e",
    "iso\u2067",
    "lone\ud800",
    "Caf\u00e9 \u05e9\u05dc\u05d5\u05dd \U0001f693",
    "available",
    "deployed",
    "vehicle",
    "liaison",
    "requested",
    "approved",
    "Available",
    UUID,
    UUID.upper(),
    "0b0c3e51-3e3a-1d43-9d8c-6d2b8f1a2c11",
    UUID + "\n",
    "2026-11-22T08:00:00Z",
    "2026-11-22T13:00:00Z",
    "2026-02-30T08:00:00Z",
    "2026-11-22 08:00:00Z",
    "2026-11-22T08:00:00+00:00",
    "+1 (555) 010-2000",
    "12",
    "dana@spd.example.org",
    "not an email",
    "a@b",
    "SPD",
    "spd",
    "S",
    "0000000000001234-000001-node",
    "q" * 43,
    "s" * 86,
    {},
    [],
    ["a"],
    {"text": "North"},
    {"lat": 1, "lon": 2},
    {"lat": 1},
    {"lat": None, "lon": None},
    {"lat": 91, "lon": 0},
    {"text": "x", "extra": 1},
    {"value": 1},
    {"digest": "d" * 43},
    {"status": {"value": "deployed", "salt": "s"}},
    {"Bad": {}},
    {"notes": "not a dict"},
    {"status": "v1"},
    {"_deleted": None},
    {"status": 3},
]


def schema_instances() -> list[tuple[str, Schema]]:
    out: list[tuple[str, Schema]] = []
    for name, (full, partial) in schemas._instances.items():
        out += [(f"{name} (create)", full), (f"{name} (update)", partial)]
    return [*out, ("change envelope", schemas.CHANGE)]


@pytest.fixture(scope="module")
def wire() -> dict[str, Any]:
    """A real signed edit: every envelope field filled."""
    device = Agency.create("SPD").device("alice")
    created = device.create("resources", {"kind": "vehicle", "name": "Unit 12"})
    return dict(device.edit(created.record_id, {"status": "deployed", "quantity": 2}).wire)


def bases(wire: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for label, schema in schema_instances():
        out[label] = wire if schema is schemas.CHANGE else FULL[label.split()[0]]
    return out


def agree(schema: Schema, value: Any) -> tuple[bool, bool]:
    """(what the compiled check says, what the schema says), for one value."""
    return compile_schema(schema)(value), schema.validate(value) == {}


# -- exactly the schema's verdict on one change at a time -------------------------------------
@pytest.mark.parametrize(("label", "schema"), schema_instances(), ids=[lb for lb, _ in schema_instances()])
def test_each_field_set_to_each_edge_value_gets_the_schemas_verdict(
    label: str, schema: Schema, wire: dict[str, Any]
) -> None:
    base = bases(wire)[label]
    check = compile_schema(schema)
    assert check(copy.deepcopy(base)), "the valid example must take the fast path"
    verdicts = {True: 0, False: 0}
    keys = [f.data_key or name for name, f in schema.fields.items()]
    for key in keys:
        for value in POOL:
            candidate = {**copy.deepcopy(base), key: value}
            fast, slow = check(candidate), schema.validate(candidate) == {}
            assert fast == slow, (key, value, schema.validate(candidate))
            verdicts[slow] += 1
        dropped = {k: v for k, v in base.items() if k != key}
        assert check(dropped) == (schema.validate(dropped) == {}), ("dropped", key)
    assert check({**base, "unknown_field": 1}) is False
    assert schema.validate({**base, "unknown_field": 1}) != {}
    assert verdicts[True] > 10 and verdicts[False] > 100  # both sides were exercised


def test_a_non_object_is_never_accepted() -> None:
    for _, schema in schema_instances():
        check = compile_schema(schema)
        for value in (None, [], "x", 1, [("kind", "vehicle")]):
            assert check(value) is False


def test_cross_field_rules_are_kept() -> None:
    part = schemas._instances["reservations"][1]
    assert agree(part, {"starts_at": "2026-11-22T08:00:00Z", "ends_at": "2026-11-22T07:00:00Z"}) == (False, False)
    assert agree(part, {"starts_at": "2026-11-22T08:00:00Z", "ends_at": "2026-11-22T09:00:00Z"}) == (True, True)
    assert agree(part, {"ends_at": "2026-11-22T07:00:00Z"}) == (True, True)  # the other end is stored
    res = schemas._instances["resources"][1]
    assert agree(res, {"location": {"lat": 1.0}}) == (False, False)
    assert agree(res, {"location": {"lat": 1.0, "lon": 2}}) == (True, True)


# -- never looser, on random mixtures -----------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_mixture_the_check_accepts_is_accepted_by_the_schema(data: st.DataObject) -> None:
    label, schema = data.draw(st.sampled_from(schema_instances()))
    device_wire = {
        "id": UUID,
        "collection": "resources",
        "record_id": UUID,
        "agency": "SPD",
        "device": "d1",
        "seq": 2,
        "prev": "q" * 43,
        "hlc": "0000000000001234-000001-node",
        "base": {"status": "v" * 43},
        "fields": {"status": {"value": "deployed", "salt": "s" * 22}},
        "deleted": False,
        "signature": "s" * 86,
    }
    value = copy.deepcopy(device_wire if schema is schemas.CHANGE else FULL[label.split()[0]])
    keys = [f.data_key or name for name, f in schema.fields.items()] + ["unknown_field"]
    for _ in range(data.draw(st.integers(0, 4))):
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()):
            value.pop(key, None)
        else:
            value[key] = data.draw(st.sampled_from(POOL))
    if compile_schema(schema)(value):
        assert schema.validate(value) == {}, value


# -- what the compiler refuses to compile ---------------------------------------------------
class _Base(Schema):
    class Meta:
        unknown = "raise"


def test_an_unknown_field_class_is_refused() -> None:
    class WithUrl(_Base):
        link = fields.Url()

    with pytest.raises(CompileError, match="Url"):
        compile_schema(WithUrl())


def test_a_subclass_without_its_own_check_is_refused() -> None:
    class Looser(schemas.StrictInteger):
        def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> int:
            return int(value)

    class WithLooser(_Base):
        n = Looser()

    with pytest.raises(CompileError, match="Looser"):
        compile_schema(WithLooser())


def test_a_nested_list_is_refused_and_a_dump_only_field_stays_unknown() -> None:
    class Many(_Base):
        places = fields.Nested(schemas.LocationSchema, many=True)

    with pytest.raises(CompileError, match="places"):
        compile_schema(Many())

    class Shown(_Base):
        n = schemas.StrictInteger()
        stamp = fields.String(dump_only=True)

    assert agree(Shown(), {"n": 1}) == (True, True)
    assert agree(Shown(), {"n": 1, "stamp": "x"}) == (False, False)


def test_an_unknown_validator_is_refused() -> None:
    class WithPredicate(_Base):
        n = schemas.StrictInteger(validate=validate.Predicate("is_integer"))

    with pytest.raises(CompileError, match="Predicate"):
        compile_schema(WithPredicate())


def test_hooks_that_see_more_than_the_object_are_refused() -> None:
    class WithOriginal(_Base):
        n = schemas.StrictInteger()

        @validates_schema(pass_original=True)
        def _look(self, data: Any, original: Any, **kw: Any) -> None:
            pass

    with pytest.raises(CompileError, match="pass_original"):
        compile_schema(WithOriginal())


def test_a_schema_that_lets_unknown_fields_through_is_refused() -> None:
    class Lax(Schema):
        class Meta:
            unknown = "exclude"

        n = schemas.StrictInteger()

    with pytest.raises(CompileError):
        compile_schema(Lax())

"""Marshmallow schemas for records and changes, shared by hub and client.

Rules this module owns:

- A record's values are plain JSON (str, int, float, bool, None, small dicts),
  the same on every side, because they are signed through their canonical
  encoding. Times are RFC 3339 UTC text with a ``Z``.
- Unknown fields and wrong types are refused with field-level messages
  (:class:`ValidationError.messages`); nothing is coerced on the wire
  (``quantity: "3"`` is an error there; the CLI converts its text input first).
- ``validate_values(collection, values, creating=...)`` checks the fields a
  change sets: all required fields when a record is created, any subset later.
- A reservation's time order is :mod:`sync.reservations`' rule; the schema
  applies it to the times one change carries.
- ``CHANGE`` validates a change envelope before its signature is checked.
- Each schema is also compiled (:mod:`sync.prechecks`) into a plain check that
  says only "certainly valid"; the schema itself runs when it does not, and
  every error message comes from the schema. A field class here that loads a
  value its own way states its check as ``accepts``, beside ``_deserialize``.
- Text fields hold text a person can read the same way everywhere: no control
  characters (C0 but tab and newlines in the long free-text fields, DEL, C1;
  NUL above all, which PostgreSQL cannot store), no lone surrogates (not
  UTF-8, so not signable) and no bidi embedding, override or isolate controls
  (U+202A-U+202E, U+2066-U+2069), which can make a name read differently from
  what it holds ("Trojan Source"). Right-to-left scripts, combining marks,
  emoji, any normalization form (NFC and NFD are kept as given, byte for byte)
  are all fine.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MarshmallowError

from . import reservations
from .errors import ValidationError
from .prechecks import compile_schema

UUID_RE = r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z"
AGENCY_RE = r"\A[A-Z][A-Z0-9_-]{1,31}\Z"
FIELD_RE = r"\A[a-z][a-z0-9_]{0,63}\Z"
TIME_RE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")

RESOURCE_KINDS = ("vehicle", "equipment", "personnel", "facility", "training", "other")
RESOURCE_STATUSES = ("available", "deployed", "maintenance", "out_of_service")
CONTACT_ROLES = ("liaison", "point_of_contact", "commander", "other")
RESERVATION_STATES = ("requested", "approved", "declined", "cancelled")
COLLECTIONS = ("resources", "contacts", "reservations")

_BIDI = "\u202a-\u202e\u2066-\u2069"
_LINE_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")
_TEXT_CONTROLS = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")


class PlainText(validate.Validator):
    """Refuse control characters, lone surrogates and bidi controls (see the rules above)."""

    def __init__(self, *, multiline: bool) -> None:
        self.pattern = _TEXT_CONTROLS if multiline else _LINE_CONTROLS

    def __call__(self, value: str) -> str:
        found = self.pattern.search(value)
        if found:
            char = ord(found.group())
            kind = (
                "a lone surrogate"
                if 0xD800 <= char <= 0xDFFF
                else "a bidi control"
                if char >= 0x2000
                else "a control character"
            )
            raise MarshmallowError(f"Must not contain {kind} (U+{char:04X} at position {found.start()}).")
        return value

    def accepts(self, value: str) -> bool:
        return self.pattern.search(value) is None


_text = [validate.Length(max=4000), PlainText(multiline=True)]
_short = [validate.Length(min=1, max=200), PlainText(multiline=False)]


def _uuid(**kw: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(UUID_RE, error="Not a valid UUID4 (lower-case)."), **kw)


class UtcTime(fields.String):
    """RFC 3339 UTC time with seconds and Z: ``2026-11-22T08:00:00Z``."""

    default_error_messages = {"time": "Not a UTC time like 2026-11-22T08:00:00Z."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> str:
        text = super()._deserialize(value, attr, data, **kw)
        if not TIME_RE.match(text):
            raise self.make_error("time")
        try:
            datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise self.make_error("time") from None
        return text

    def accepts(self, value: Any) -> bool:
        if type(value) is not str or not TIME_RE.match(value):
            return False
        try:
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return False
        return True


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, no floats, no booleans."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> int:
        if type(value) is not int:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kw)

    def accepts(self, value: Any) -> bool:
        return type(value) is int


class StrictFloat(fields.Float):
    """A JSON number: int or float, never a string or boolean."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> float:
        if type(value) not in (int, float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kw)

    def accepts(self, value: Any) -> bool:
        if type(value) is int:  # converts to a float exactly
            return -(2**53) <= value <= 2**53
        return type(value) is float and (self.allow_nan or math.isfinite(value))


class StrictBoolean(fields.Boolean):
    """JSON true or false only."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value

    def accepts(self, value: Any) -> bool:
        return type(value) is bool


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class LocationSchema(_Strict):
    text = fields.String(validate=_short, allow_none=True)
    lat = StrictFloat(validate=validate.Range(-90, 90), allow_none=True, allow_nan=False)
    lon = StrictFloat(validate=validate.Range(-180, 180), allow_none=True, allow_nan=False)

    @validates_schema
    def _both_or_neither(self, data: dict[str, Any], **kw: Any) -> None:
        if (data.get("lat") is None) != (data.get("lon") is None):
            raise MarshmallowError("Give both lat and lon, or neither.", "lat")


class ResourceSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(RESOURCE_KINDS))
    name = fields.String(required=True, validate=_short)
    description = fields.String(validate=_text, allow_none=True)
    quantity = StrictInteger(validate=validate.Range(0, 1_000_000), allow_none=True)
    status = fields.String(validate=validate.OneOf(RESOURCE_STATUSES))
    location = fields.Nested(LocationSchema, allow_none=True)
    point_of_contact = _uuid(allow_none=True)
    notes = fields.String(validate=_text, allow_none=True)


class ContactSchema(_Strict):
    name = fields.String(required=True, validate=_short)
    role = fields.String(required=True, validate=validate.OneOf(CONTACT_ROLES))
    agency_unit = fields.String(validate=_short, allow_none=True)
    phone = fields.String(
        validate=validate.Regexp(r"\A\+?[0-9 ().-]{3,40}\Z", error="Not a phone number."), allow_none=True
    )
    email = fields.Email(validate=[validate.Length(max=254), PlainText(multiline=False)], allow_none=True)
    radio = fields.String(validate=_short, allow_none=True)
    jurisdiction = fields.String(validate=_short, allow_none=True)
    notes = fields.String(validate=_text, allow_none=True)


class ReservationSchema(_Strict):
    resource_id = _uuid(required=True)
    starts_at = UtcTime(required=True)
    ends_at = UtcTime(required=True)
    purpose = fields.String(validate=_text, allow_none=True)
    state = fields.String(validate=validate.OneOf(RESERVATION_STATES))

    @validates_schema
    def _ends_after_start(self, data: dict[str, Any], **kw: Any) -> None:
        if reservations.ends_before_start(data):  # the rule and its message: sync.reservations
            raise MarshmallowError(reservations.MUST_END_AFTER_START, "ends_at")


RECORD_SCHEMAS: dict[str, type[Schema]] = {
    "resources": ResourceSchema,
    "contacts": ContactSchema,
    "reservations": ReservationSchema,
}
_instances = {name: (cls(), cls(partial=True)) for name, cls in RECORD_SCHEMAS.items()}
_accepts = {name: (compile_schema(full), compile_schema(part)) for name, (full, part) in _instances.items()}


def validate_values(collection: str, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Return ``values`` if they are valid for the collection, else raise ValidationError."""
    if collection not in _instances:
        raise ValidationError({"collection": [f"Must be one of: {', '.join(COLLECTIONS)}."]})
    if not isinstance(values, dict):
        raise ValidationError({"fields": ["Must be an object."]})
    if _accepts[collection][0 if creating else 1](values):  # sync.prechecks: certainly valid
        return values
    full, partial = _instances[collection]
    errors = (full if creating else partial).validate(values)
    if errors:
        raise ValidationError(errors)
    return values


def field_names(collection: str) -> tuple[str, ...]:
    return tuple(RECORD_SCHEMAS[collection]._declared_fields)


class ChangeSchema(_Strict):
    """The signed envelope; values inside ``fields`` are checked by validate_values."""

    id = _uuid(required=True)
    collection = fields.String(required=True, validate=validate.OneOf(COLLECTIONS))
    record_id = _uuid(required=True)
    agency = fields.String(required=True, validate=validate.Regexp(AGENCY_RE, error="Not an agency code."))
    device = fields.String(required=True, validate=validate.Length(min=1, max=64))
    seq = StrictInteger(required=True, validate=validate.Range(min=1, max=2**53 - 1))
    prev = fields.String(required=True, allow_none=True, validate=validate.Length(equal=43))
    hlc = fields.String(required=True, validate=validate.Regexp(r"\A[0-9]{16}-[0-9]{6}-[A-Za-z0-9_.:-]{1,64}\Z"))
    base = fields.Dict(
        required=True,
        keys=fields.String(validate=validate.Regexp(r"\A(_deleted|[a-z][a-z0-9_]{0,63})\Z")),
        values=fields.String(allow_none=True),
    )
    fields_ = fields.Dict(
        required=True,
        data_key="fields",
        attribute="fields",
        keys=fields.String(validate=validate.Regexp(FIELD_RE)),
        values=fields.Dict(),
    )
    deleted = StrictBoolean(required=True)
    signature = fields.String(required=True, validate=validate.Length(equal=86))


CHANGE = ChangeSchema()
_change_accepted = compile_schema(CHANGE)


def validate_change(wire: Any) -> dict[str, Any]:
    """Check a change envelope and its disclosed values; return it unchanged."""
    if not isinstance(wire, dict):
        raise ValidationError({"_schema": ["A change must be an object."]})
    if not _change_accepted(wire):  # sync.prechecks: not certainly valid, so ask the schema
        errors = CHANGE.validate(wire)
        if errors:
            raise ValidationError(errors)
    values = {
        name: entry["value"] for name, entry in wire["fields"].items() if isinstance(entry, dict) and "value" in entry
    }
    if wire["deleted"] and wire["fields"]:
        raise ValidationError({"fields": ["A delete carries no fields."]})
    if values:
        try:
            validate_values(wire["collection"], values, creating=False)
        except ValidationError as exc:
            raise ValidationError({"fields": exc.messages}) from None
    return wire

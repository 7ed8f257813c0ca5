"""Typed text to field values: one parser for the CLI's ``--set`` and the ``fieldsync ui`` forms.

Rules this module owns:

- Officers type text; the sync/ schemas take JSON types and coerce nothing
  (``quantity: "3"`` is an error on the wire). Text becomes a value here,
  by the schema's own field type: whole numbers, numbers, JSON objects for
  nested fields; everything else stays text. Validation itself stays in
  :func:`field_client.edits.create` / :func:`~field_client.edits.update`,
  which call the sync/ schemas: this module only converts, it never accepts
  a value the schemas would refuse.
- Numbers are written in ASCII digits (``12``, ``-3``, ``39.78``, ``1e3``):
  not ``1_000``, ``١٢``, ``nan`` or ``inf``, which Python's own parsers take.
- Text that cannot be converted raises :class:`EditRefused` with a message per
  field (all of them at once, so a form can show each beside its field), and
  nothing is written.
- A form's blank field means "no value": left out when a record is created,
  cleared (``None``) when it held one, and a field whose value did not change
  is not written at all, so an edit's ``base`` names only what the officer
  really changed (an untouched field can never make a conflict).
- ``location.text`` / ``location.lat`` / ``location.lon`` (three inputs of a
  form) become one ``location`` object; all blank means no location.
- A message quoting what was typed quotes at most :data:`SHOWN` characters of
  it, escaped (:func:`shown`): a 3 MB paste is not echoed back whole.
- Browsers' ``datetime-local`` inputs give ``2026-11-23T14:00`` in the
  laptop's own time zone; with ``local_times`` such text becomes the UTC time
  the schemas take (``2026-11-23T13:00:00Z`` in UTC+1). Text already in UTC
  with a ``Z`` passes unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import fields as mfields

from sync.schemas import RECORD_SCHEMAS, UtcTime

from .errors import EditRefused

_INTEGER = re.compile(r"\A[+-]?[0-9]{1,18}\Z")
_NUMBER = re.compile(r"\A[+-]?([0-9]{1,18}(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?\Z")


def _integer(text: str) -> int:
    """ASCII digits only: not Python's int(), which also takes ``1_000``, ``١٢`` and surrounding blanks."""
    if not _INTEGER.match(text):
        raise ValueError(text)
    return int(text)


def _number(text: str) -> float:
    """A plain decimal number: not ``nan``, ``inf``, ``1_0`` or other digits float() would take."""
    if not _NUMBER.match(text):
        raise ValueError(text)
    return float(text)


PARSERS: tuple[tuple[type, Callable[[str], Any], str], ...] = (
    (mfields.Integer, _integer, "a whole number"),
    (mfields.Float, _number, "a number"),
    (mfields.Nested, json.loads, 'a JSON object like {"text": "HQ", "lat": 39.78, "lon": -89.65}'),
)
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
SHOWN = 60
# what must not reach a terminal raw: C0/C1 controls, lone surrogates, bidi embeddings/overrides/isolates
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every control character, lone surrogate and bidi control written as an escape."""
    return _INVISIBLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def shown(text: str, limit: int = SHOWN) -> str:
    """What an error message quotes of typed ``text``: escaped, quoted, at most ``limit`` characters."""
    cut = text if len(text) <= limit else text[:limit]
    quoted = repr(escape_controls(cut)).replace("\\\\", "\\")
    return quoted if len(text) <= limit else f"{quoted}... ({len(text)} characters)"


def _field(collection: str, name: str) -> Any:
    declared = RECORD_SCHEMAS[collection]._declared_fields
    head, _, rest = name.partition(".")
    field = declared.get(head)
    if rest and isinstance(field, mfields.Nested):
        return field.schema.fields.get(rest)
    return field if not rest else None


def local_to_utc(text: str) -> str | None:
    """``2026-11-23T14:00`` in this laptop's time zone -> ``2026-11-23T13:00:00Z``; None if not that form."""
    for fmt in LOCAL_FORMATS:
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return moment.astimezone().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def utc_to_local_input(text: Any) -> str:
    """A stored UTC time as a ``datetime-local`` input's value in this laptop's zone ('' if not a time)."""
    try:
        moment = datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return ""
    # seconds only when there are some: a form sent back unchanged must give back the same time
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S" if moment.second else "%Y-%m-%dT%H:%M")


def parse_text(collection: str, name: str, text: str, *, local_times: bool = False) -> Any:
    """One field's typed text as its value; raises ValueError with what was expected."""
    field = _field(collection, name)
    if local_times and isinstance(field, UtcTime):
        return local_to_utc(text) or text
    for field_type, parse, expected in PARSERS:
        if isinstance(field, field_type):
            try:
                return parse(text)
            except ValueError:
                raise ValueError(f"{shown(text)} is not {expected}.") from None
            except RecursionError:  # JSON nested thousands deep
                raise ValueError(f"{shown(text)} is not {expected}.") from None
    return text


def parse_texts(collection: str, texts: Mapping[str, str], *, local_times: bool = False) -> dict[str, Any]:
    """Every ``name -> text`` converted; EditRefused naming each field that cannot be."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, text in texts.items():
        try:
            values[name] = parse_text(collection, name, text, local_times=local_times)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise EditRefused("invalid values", errors)
    return values


def form_values(
    collection: str,
    texts: Mapping[str, str],
    current: Mapping[str, Any] | None = None,
    *,
    local_times: bool = True,
) -> dict[str, Any]:
    """A submitted form (field -> text) as the values an edit should write.

    With ``current`` (an update), only fields that differ from the record are
    returned, blanks clearing a value that was set; without it (a create),
    blanks are left out.
    """
    nested: dict[str, dict[str, str]] = {}
    flat: dict[str, str] = {}
    for name, raw in texts.items():
        text = raw.strip()
        head, dot, sub = name.partition(".")
        if dot:
            nested.setdefault(head, {})[sub] = text
        else:
            flat[name] = text
    filled = {name: text for name, text in flat.items() if text != ""}
    values = parse_texts(collection, filled, local_times=local_times)
    values.update({name: None for name, text in flat.items() if text == ""})
    errors: dict[str, Any] = {}
    for head, parts in nested.items():
        try:
            obj = parse_texts(collection, {f"{head}.{k}": v for k, v in parts.items() if v != ""})
        except EditRefused as exc:
            errors.update(exc.messages)
            continue
        values[head] = {k.partition(".")[2]: v for k, v in obj.items()} or None
    if errors:
        raise EditRefused("invalid values", errors)
    if current is None:
        return {name: value for name, value in values.items() if value is not None}
    return {name: value for name, value in values.items() if _comparable(current.get(name)) != _comparable(value)}


def _comparable(value: Any) -> Any:
    """A nested value without its empty parts: {"text": "HQ", "lat": None} is the form's {"text": "HQ"}."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None} or None
    return value

"""What each form shows, and the round trip between a record and a form's text.

This module only describes inputs and moves text around; turning text into
values is :func:`field_client.inputs.form_values` and judging values is
:mod:`field_client.edits` (the sync/ schemas), exactly as for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync.schemas import CONTACT_ROLES, RESERVATION_STATES, RESOURCE_KINDS, RESOURCE_STATUSES

from ..inputs import utc_to_local_input


@dataclass(frozen=True)
class Input:
    name: str  # field name; "location.lat" for a part of a nested field
    label: str
    kind: str = "text"  # text, textarea, select, number, tel, email, datetime, contact, resource
    choices: tuple[str, ...] = ()
    hint: str = ""
    required: bool = False


FIELDS: dict[str, tuple[Input, ...]] = {
    "resources": (
        Input("name", "Name", required=True, hint="e.g. Unit 12"),
        Input("kind", "Kind", "select", RESOURCE_KINDS, required=True),
        Input("status", "Status", "select", RESOURCE_STATUSES),
        Input("quantity", "Quantity", "number"),
        Input("location.text", "Location", hint="e.g. HQ motor pool, bay 3"),
        Input("location.lat", "Latitude", "number", hint="optional, with longitude"),
        Input("location.lon", "Longitude", "number"),
        Input("point_of_contact", "Point of contact", "contact"),
        Input("description", "Description", "textarea"),
        Input("notes", "Notes", "textarea"),
    ),
    "contacts": (
        Input("name", "Name", required=True, hint="e.g. Lt. Maria Ortiz"),
        Input("role", "Role", "select", CONTACT_ROLES, required=True),
        Input("agency_unit", "Unit", hint="e.g. Patrol Division, District 2"),
        Input("phone", "Phone", "tel", hint="e.g. +1 217 555 0142"),
        Input("radio", "Radio", hint="channel or call sign, e.g. TAC-2"),
        Input("email", "Email", "email"),
        Input("jurisdiction", "Jurisdiction", hint="e.g. Sangamon County"),
        Input("notes", "Notes", "textarea"),
    ),
    "reservations": (
        Input("resource_id", "Resource", "resource", required=True),
        Input("starts_at", "Starts", "datetime", required=True),
        Input("ends_at", "Ends", "datetime", required=True),
        Input("purpose", "Purpose", "textarea", hint="e.g. Warrant service, 4 officers"),
    ),
}
STATE_INPUT = Input("state", "State", "select", RESERVATION_STATES)


def inputs_for(collection: str, *, editing: bool) -> tuple[Input, ...]:
    fields = FIELDS[collection]
    if collection == "reservations" and editing:
        return (*fields, STATE_INPUT)
    return fields


def record_texts(collection: str, record: dict[str, Any], *, editing: bool = True) -> dict[str, str]:
    """A record as the text its form shows."""
    out: dict[str, str] = {}
    for field in inputs_for(collection, editing=editing):
        head, _, sub = field.name.partition(".")
        value = record.get(head)
        if sub:
            value = value.get(sub) if isinstance(value, dict) else None
        if field.kind == "datetime":
            out[field.name] = utc_to_local_input(value) if value else ""
        else:
            out[field.name] = "" if value is None else str(value)
    return out


def submitted(collection: str, form: Any, *, editing: bool) -> dict[str, str]:
    """The form's text for this collection's inputs, nothing else (a posted extra name is ignored)."""
    return {f.name: str(form.get(f.name, "")) for f in inputs_for(collection, editing=editing) if f.name in form}


def flat_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested messages as ``{"location.lat": [...]}``; "_schema" stays as is."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key))
            for inner, texts in flat_errors(value, name).items():
                out.setdefault(inner, []).extend(texts)
    elif isinstance(messages, list | tuple):
        for item in messages:
            for inner, texts in flat_errors(item, prefix).items():
                out.setdefault(inner, []).extend(texts)
    else:
        out.setdefault(prefix or "_schema", []).append(str(messages))
    return out

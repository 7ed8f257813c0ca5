"""Local edits: validate, sign, merge and queue, in one transaction.

Rules this module owns:

- Every edit is validated by the sync/ schemas first; a bad value raises
  :class:`EditRefused` with field-level messages and nothing is written.
- A valid edit becomes a change signed with the device key at that moment,
  stamped with the laptop's clock and the next link of its feed, merged into
  the local record with the same engine as the hub, and queued in the outbox,
  all in one replica transaction: a crash loses nothing and duplicates nothing.
  Nothing is signed while the laptop's feed is closed (Device.check_can_sign:
  a replica restored from an old copy, or burned seqs).
- The CLI and the officer's web page call these functions and nothing else to
  write.
- Reservations follow sync.reservations (initial state, who may approve,
  time order); this module reads the booked resource from the replica and
  words the refusal for the officer.
- A record id that is not a UUID4 (lower-case, as every replica writes them)
  is refused as such before it is looked up.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sync import ReservationRefused, ValidationError, make_change, reservations, validate_values
from sync.schemas import UUID_RE

from . import outbox, state
from .device import Device
from .errors import EditRefused, RecordNotFound

DEFAULTS = {"resources": {"status": "available"}}
RECORD_ID = re.compile(UUID_RE)


def _check_id(record_id: Any, field: str = "record_id") -> None:
    if not isinstance(record_id, str) or not RECORD_ID.match(record_id):
        raise EditRefused("invalid record id", {field: ["Not a record id (a lower-case UUID4)."]})


def create(device: Device, collection: str, values: dict[str, Any]) -> dict[str, Any]:
    values = {**DEFAULTS.get(collection, {}), **values}
    if collection == "reservations":
        _check_id(values.get("resource_id"), "resource_id")
        resource = state.get_record(device.replica, str(values.get("resource_id", "")))
        if resource is None or resource["collection"] != "resources" or resource["deleted"]:
            raise EditRefused("no such resource on this laptop", {"resource_id": ["No such resource."]})
        owner = resource["agency"]
        if "state" not in values:
            values["state"] = reservations.initial_state(device.agency, owner)
        elif not reservations.may_set_state(
            values["state"], writer=device.agency, requester=device.agency, resource_agency=owner
        ):
            raise EditRefused(
                f"only {resource['agency']} may {values['state'][:-1]} a booking of its resource",
                {"state": ["Must be requested."]},
            )
    _validate(collection, values, creating=True)
    record_id = str(uuid.uuid4())
    _write(device, collection, record_id, device.agency, values, deleted=False)
    return state.get_record(device.replica, record_id) or {}


def update(device: Device, record_id: str, values: dict[str, Any]) -> dict[str, Any]:
    _check_id(record_id)
    current = state.get_record(device.replica, record_id)
    if current is None:
        raise RecordNotFound(record_id)
    if current["deleted"]:
        raise EditRefused(f"record {record_id} was deleted")
    if not values:
        raise EditRefused("nothing to change: give at least one field")
    _validate(current["collection"], values, creating=False)
    if current["collection"] == "reservations":
        try:
            reservations.check_times({**current, **values})
        except ReservationRefused as exc:
            raise EditRefused(exc.reason, exc.messages) from None
    _write(device, current["collection"], record_id, current["agency"], values, deleted=False)
    return state.get_record(device.replica, record_id) or {}


def delete(device: Device, record_id: str) -> None:
    _check_id(record_id)
    current = state.get_record(device.replica, record_id)
    if current is None:
        raise RecordNotFound(record_id)
    if current["deleted"]:
        raise EditRefused(f"record {record_id} is already deleted")
    if current["agency"] != device.agency:
        raise EditRefused(f"only {current['agency']} may delete its records")
    _write(device, current["collection"], record_id, current["agency"], {}, deleted=True)


def _validate(collection: str, values: dict[str, Any], *, creating: bool) -> None:
    try:
        validate_values(collection, values, creating=creating)
    except ValidationError as exc:
        raise EditRefused("invalid values", exc.messages) from None


def _write(
    device: Device, collection: str, record_id: str, agency: str, values: dict[str, Any], *, deleted: bool
) -> None:
    replica = device.replica
    device.check_can_sign()
    with replica.transaction():
        current = state.load(replica, record_id)
        clock = device.clock()
        seq = device.sync_state.seq + 1
        wire = make_change(
            device.key,
            collection=collection,
            record_id=record_id,
            agency=agency,
            device=device.device_id,
            seq=seq,
            prev=device.sync_state.prev,
            hlc=str(clock.now()),
            values=values,
            seen=current.seen() if current else {},
            deleted=deleted,
        )
        change = device.verifier().verify(wire, device.certificate)  # the same check every receiver makes
        state.keep_change(replica, change, "local")
        state.apply_change(replica, change)
        outbox.queue(replica, seq, change.id, record_id, wire)
        device.record_feed(seq, change.hash)
        device.sync_state.clock = str(clock.last)

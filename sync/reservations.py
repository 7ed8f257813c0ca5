"""Reservations: a booking's own rules, the same on the laptop and the hub. No I/O.

Rules this module owns:

- Time order: a booking ends after it starts (``starts_at < ends_at``), checked
  whenever both times are known - in one change (:mod:`sync.schemas`) and in the
  merged record (a change may move one end past the other one already stored).
  Times are RFC 3339 UTC text of one fixed form, so text order is time order.
- A reservation belongs to the agency that asks (the requester). Its initial
  state: booking one's own agency's resource is ``approved`` at once (no one
  else to ask); booking another agency's starts ``requested``.
- Who may set a state: only the agency that owns the booked resource may
  approve or decline (``approved``, ``declined``); the requester may set the
  others (``requested``, ``cancelled``: it may cancel its booking), and
  approves or declines only a booking of its own resource.
- Who may write a booking: the requester writes any of its fields, but never
  moves it to another resource; the resource's owner, when it is another
  agency, may only approve or decline an existing booking: no other field,
  no delete, no create. Anyone else writes nothing.

The callers read what these rules need (the booked resource's agency, the
booking's current values) and turn :class:`ReservationRefused` into their own
refusal: the laptop's :class:`~field_client.errors.EditRefused`, a rejected
push verdict, a 422 for command staff.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .errors import ReservationRefused

#: the states only the booked resource's owner may set (a tuple: a state from
#: outside may be any JSON value, unhashable ones included)
OWNER_STATES = ("approved", "declined")

ENDS_BEFORE_START = "the reservation would end before it starts"
MUST_END_AFTER_START = "Must be after starts_at."


def ends_before_start(values: Mapping[str, Any]) -> bool:
    """True when both times are known and the booking does not end after it starts."""
    starts, ends = values.get("starts_at"), values.get("ends_at")
    return bool(starts and ends and ends <= starts)


def check_times(values: Mapping[str, Any]) -> None:
    """Raise :class:`ReservationRefused` (on ``ends_at``) for a booking that ends before it starts."""
    if ends_before_start(values):
        raise ReservationRefused(ENDS_BEFORE_START, {"ends_at": [MUST_END_AFTER_START]})


def initial_state(requester: str, resource_agency: str) -> str:
    """A new booking's state when none is given: approved for one's own resource, else requested."""
    return "approved" if requester == resource_agency else "requested"


def may_set_state(state: Any, *, writer: str, requester: str, resource_agency: str) -> bool:
    """May ``writer`` put a booking of ``requester`` for ``resource_agency``'s resource in ``state``?"""
    if writer == requester:
        return state not in OWNER_STATES or writer == resource_agency
    return writer == resource_agency and state in OWNER_STATES


def check_write(
    writer: str,
    *,
    requester: str,
    resource_agency: str,
    values: Mapping[str, Any],
    withheld: Collection[str],
    deleted: bool,
    current: Mapping[str, Any] | None,
) -> None:
    """Raise :class:`ReservationRefused` unless ``writer`` may make this change of a booking.

    ``values``: the fields the change sets; ``withheld``: fields it carries only as
    digests; ``current``: the booking's stored values, None when the change creates it.
    """
    state: Any = values.get("state")
    if writer == requester:
        if "resource_id" in values and current is not None and values["resource_id"] != current.get("resource_id"):
            raise ReservationRefused(
                "a reservation cannot move to another resource", {"resource_id": ["Cannot change."]}
            )
        if not may_set_state(state, writer=writer, requester=requester, resource_agency=resource_agency):
            raise ReservationRefused(
                f"only {resource_agency}, which owns the resource, may {state[:-1]} this reservation",
                {"state": [f"Only {resource_agency} may set {state}."]},
            )
        return
    # another agency: only the resource's owner, only the state, only approve/decline
    if resource_agency != writer or deleted or current is None:
        raise ReservationRefused(f"agency {writer} may not change {requester}'s reservations")
    extra = sorted(set(values) - {"state"}) + sorted(withheld)
    if extra or not may_set_state(state, writer=writer, requester=requester, resource_agency=resource_agency):
        raise ReservationRefused(
            f"as the resource's owner, {writer} may only approve or decline {requester}'s reservation",
            {name: ["Not writable."] for name in extra} or {"state": ["Must be approved or declined."]},
        )

"""A booking's rules (sync/reservations.py): time order, initial state, who may set a state and write a field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import ChangeRejected, ReservationRefused, ValidationError, reservations, validate_values
from sync.schemas import RESERVATION_STATES

RESOURCE = "6f1c2b1e-1d3a-4c6e-8f00-000000000001"
OTHER = "6f1c2b1e-1d3a-4c6e-8f00-000000000002"
BOOKING = {"resource_id": RESOURCE, "starts_at": "2030-01-01T08:00:00Z", "ends_at": "2030-01-01T10:00:00Z"}

times = st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
agencies = st.sampled_from(["SPD", "CSO", "FBI"])
states = st.sampled_from(RESERVATION_STATES)


def refusal(**kw: Any) -> ReservationRefused:
    """check_write's refusal for a booking of SPD's resource requested by CSO (unless ``kw`` says otherwise)."""
    args: dict[str, Any] = {
        "requester": "CSO",
        "resource_agency": "SPD",
        "values": {},
        "withheld": {},
        "deleted": False,
        "current": BOOKING,
    }
    writer = kw.pop("writer")
    with pytest.raises(ReservationRefused) as caught:
        reservations.check_write(writer, **{**args, **kw})
    return caught.value


# -- time order -------------------------------------------------------------------------


def test_a_booking_must_end_after_it_starts() -> None:
    reservations.check_times(BOOKING)
    reservations.check_times({"starts_at": "2030-01-01T08:00:00Z"})  # one end known: nothing to compare
    reservations.check_times({})
    for ends in ("2030-01-01T08:00:00Z", "2030-01-01T07:59:59Z"):
        with pytest.raises(ReservationRefused) as caught:
            reservations.check_times({**BOOKING, "ends_at": ends})
        assert caught.value.reason == "the reservation would end before it starts"
        assert caught.value.messages == {"ends_at": ["Must be after starts_at."]}
        assert isinstance(caught.value, ChangeRejected)  # the hub's push refuses it like any rejected change


@given(times, times)
def test_time_order_is_text_order_and_the_schema_applies_the_same_rule(starts: str, ends: str) -> None:
    values = {**BOOKING, "starts_at": starts, "ends_at": ends}
    assert reservations.ends_before_start(values) == (ends <= starts)
    try:
        validate_values("reservations", values, creating=True)
    except ValidationError as exc:
        assert ends <= starts and exc.messages == {"ends_at": ["Must be after starts_at."]}
    else:
        assert starts < ends


# -- initial state and who may set a state -------------------------------------------------


def test_booking_ones_own_resource_is_approved_at_once_anothers_is_requested() -> None:
    assert reservations.initial_state("SPD", "SPD") == "approved"
    assert reservations.initial_state("CSO", "SPD") == "requested"


def test_only_the_resources_owner_approves_or_declines_and_the_requester_may_cancel() -> None:
    def may(state: Any, writer: str) -> bool:
        return reservations.may_set_state(state, writer=writer, requester="CSO", resource_agency="SPD")

    assert [may(s, "CSO") for s in RESERVATION_STATES] == [True, False, False, True]  # requested, ..., cancelled
    assert [may(s, "SPD") for s in RESERVATION_STATES] == [False, True, True, False]
    assert not any(may(s, "FBI") for s in RESERVATION_STATES)
    assert not may({"not": "hashable"}, "SPD") and may({"not": "hashable"}, "CSO")  # any JSON value from outside
    own = [
        reservations.may_set_state(s, writer="SPD", requester="SPD", resource_agency="SPD") for s in RESERVATION_STATES
    ]
    assert all(own)


@given(agencies, agencies)
def test_a_new_bookings_initial_state_is_one_its_requester_may_set(requester: str, owner: str) -> None:
    state = reservations.initial_state(requester, owner)
    assert reservations.may_set_state(state, writer=requester, requester=requester, resource_agency=owner)


@given(agencies, agencies, agencies, states)
def test_check_write_of_a_state_alone_follows_may_set_state(
    writer: str, requester: str, owner: str, state: str
) -> None:
    may = reservations.may_set_state(state, writer=writer, requester=requester, resource_agency=owner)
    try:
        reservations.check_write(
            writer,
            requester=requester,
            resource_agency=owner,
            values={"state": state},
            withheld={},
            deleted=False,
            current=BOOKING,
        )
    except ReservationRefused:
        assert not may
    else:
        assert may


# -- who may write a booking ---------------------------------------------------------------


def test_the_requester_writes_its_booking_but_never_moves_it_to_another_resource() -> None:
    for values in ({"purpose": "exercise", "state": "cancelled"}, {"resource_id": RESOURCE}, {}):
        reservations.check_write(
            "CSO", requester="CSO", resource_agency="SPD", values=values, withheld={}, deleted=False, current=BOOKING
        )
    reservations.check_write(  # a new booking names its resource
        "CSO", requester="CSO", resource_agency="SPD", values=BOOKING, withheld={}, deleted=False, current=None
    )
    reservations.check_write(  # and may be deleted by the requester
        "CSO", requester="CSO", resource_agency="SPD", values={}, withheld={}, deleted=True, current=BOOKING
    )
    moved = refusal(writer="CSO", values={"resource_id": OTHER})
    assert (moved.reason, moved.messages) == (
        "a reservation cannot move to another resource",
        {"resource_id": ["Cannot change."]},
    )
    grab = refusal(writer="CSO", values={"state": "approved"}, current=None)
    assert (grab.reason, grab.messages) == (
        "only SPD, which owns the resource, may approve this reservation",
        {"state": ["Only SPD may set approved."]},
    )
    assert refusal(writer="CSO", values={"state": "declined"}).reason.endswith("may decline this reservation")


def test_the_resources_owner_only_approves_or_declines_an_existing_booking() -> None:
    for state in reservations.OWNER_STATES:
        reservations.check_write(
            "SPD",
            requester="CSO",
            resource_agency="SPD",
            values={"state": state},
            withheld={},
            deleted=False,
            current=BOOKING,
        )
    for kw in ({"deleted": True}, {"current": None, "values": {"state": "approved"}}):
        assert refusal(writer="SPD", **kw).reason == "agency SPD may not change CSO's reservations"
    purpose = refusal(writer="SPD", values={"state": "approved", "purpose": "ours"}, withheld={"notes": "digest"})
    assert purpose.reason == "as the resource's owner, SPD may only approve or decline CSO's reservation"
    assert purpose.messages == {"purpose": ["Not writable."], "notes": ["Not writable."]}
    assert refusal(writer="SPD", values={"state": "cancelled"}).messages == {"state": ["Must be approved or declined."]}
    assert refusal(writer="SPD", values={}).messages == {"state": ["Must be approved or declined."]}
    stranger = refusal(writer="FBI", values={"state": "approved"})
    assert (stranger.reason, stranger.messages) == ("agency FBI may not change CSO's reservations", {})

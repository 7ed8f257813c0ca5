"""The booking buttons on a resource's page offer what sync.reservations lets this agency set.

The buttons used to be decided in the template by a second copy of who may approve, decline and
cancel; now the page asks the one rule. The table below is what an officer must see.
"""

from __future__ import annotations

import itertools

import pytest

from field_client.ui.views import actions

OWNER, REQUESTER, OTHER = "SPD", "SCSO", "SP9"


@pytest.mark.parametrize(
    ("writer", "requester", "state", "offered"),
    [
        (OWNER, REQUESTER, "requested", ["approved", "declined"]),  # the resource's owner decides
        (REQUESTER, REQUESTER, "requested", ["cancelled"]),  # the requester may only withdraw it
        (REQUESTER, REQUESTER, "approved", ["cancelled"]),
        (OWNER, REQUESTER, "approved", []),  # an approved partner booking: only its requester cancels
        (OWNER, OWNER, "requested", ["approved", "declined", "cancelled"]),  # one's own booking of one's own
        (OWNER, OWNER, "approved", ["cancelled"]),
        (OTHER, REQUESTER, "requested", []),  # a third agency sets nothing
    ],
)
def test_the_buttons_follow_the_one_rule(writer: str, requester: str, state: str, offered: list[str]) -> None:
    assert actions({"agency": requester, "state": state}, writer=writer, resource_agency=OWNER) == offered


def test_settled_bookings_offer_nothing() -> None:
    for writer, state in itertools.product((OWNER, REQUESTER, OTHER), ("declined", "cancelled", None)):
        assert actions({"agency": REQUESTER, "state": state}, writer=writer, resource_agency=OWNER) == []

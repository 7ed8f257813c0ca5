"""The record page shows what the signatures say: a value altered in the merged state
(records.state) behind the hub's back is never shown as verified, and a malformed stored
clock is a "not verified", not an error page."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask

from backend.db import db
from backend.models import Record

from .conftest import STAFF, login
from .seed import Seeded


def _fields(page: Any) -> dict[str, list[str]]:
    return {
        r.locator("th").inner_text(): r.locator("td").all_inner_texts() for r in page.locator("#fields tbody tr").all()
    }


def test_an_altered_stored_value_and_clock_show_not_verified_and_the_signed_value(
    page: Any, web_app: Flask, seeded: Seeded
) -> None:
    record_id = seeded.records["k9"]
    login(page, STAFF, next_path=f"/records/{record_id}")
    before = _fields(page)
    assert before["name"][0] == "K9 Unit 3" and before["name"][3] == "verified"
    with web_app.app_context():
        row = db.session.get(Record, record_id)
        assert row is not None
        state = json.loads(json.dumps(row.state))
        state["name"][-1][4] = "K9 Unit 4"  # the winning version's value, edited in the merged state
        other = next(n for n in sorted(state) if n not in ("name", "_deleted"))
        state[other][-1][0] = "not-a-clock"  # and another field's clock, made unreadable
        row.state = state
        db.session.commit()
    response = page.goto(f"/records/{record_id}")
    assert response is not None and response.status == 200
    after = _fields(page)
    value, _by, _when, signature, _versions = after["name"]
    assert value == "K9 Unit 3", "the value shown is the signed change's, not the altered state's"
    assert signature.startswith("not verified") and "stored value differs from the signed change" in signature
    assert after[other][3].startswith("not verified") and "malformed" in after[other][3]
    assert page.get_by_text("stored values differ from the signed changes").count() == 1
    assert "K9 Unit 4" not in page.locator("#fields").inner_text()


def test_record_times_are_shown_to_the_second(page: Any, seeded: Seeded) -> None:
    login(page, STAFF, next_path=f"/records/{seeded.records['unit12']}")
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d C[SD]T$")
    for cell in [*page.locator("#fields tbody tr td:nth-child(4)").all_inner_texts()]:
        assert stamp.match(cell), cell
    for row in page.locator("#history tbody tr").all():
        written, received = row.locator("td").nth(1).inner_text(), row.locator("td").nth(2).inner_text()
        assert stamp.match(written) and stamp.match(received), (written, received)

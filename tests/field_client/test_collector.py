"""The cycle collector while pulling (field_client/collector.py)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from field_client import collector, edits, pull
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import VEHICLE

# Tests of the laptop's own checks run against the SQLite hub only; the rest on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_collector_runs_less_often_while_pulling_and_as_before_once_done(
    hub: Hub, laptop: MakeLaptop, monkeypatch: pytest.MonkeyPatch
) -> None:
    lee, ray = laptop("SPD", "Sgt. Lee"), laptop("SPD", "Ofc. Ray")
    for i in range(4):
        edits.create(lee.device, "resources", {**VEHICLE, "name": f"Unit {i}"})
    lee.sync()
    monkeypatch.setattr(pull, "PULL_LIMIT", 2)
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    real_apply = pull._apply_page

    def second_page_breaks(*args: Any) -> None:
        seen.append(gc.get_threshold())
        if len(seen) == 2:
            raise OSError("disk I/O error")
        real_apply(*args)

    monkeypatch.setattr(pull, "_apply_page", second_page_breaks)
    with pytest.raises(OSError):
        ray.sync()
    assert gc.get_threshold() == before  # put back after a failed pull too
    monkeypatch.setattr(pull, "_apply_page", lambda *args: (seen.append(gc.get_threshold()), real_apply(*args)))
    assert ray.sync().pulled in (2, 4)  # the first page is kept if it was committed before the second came
    assert gc.get_threshold() == before and ray.count("changes") == 4
    assert len(seen) >= 3 and set(seen) == {(collector.PULL_GC_THRESHOLD, *before[1:])}

"""crypto.clock: one text form per instant in signed objects, and the current time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import KeyFormatError, format_time, parse_time


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
def test_round_trip_to_the_second(moment: datetime) -> None:
    text = format_time(moment)
    assert parse_time(text) == moment.replace(microsecond=0)
    assert format_time(parse_time(text)) == text


def test_same_instant_same_text() -> None:
    utc = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
    elsewhere = utc.astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    assert format_time(utc) == format_time(elsewhere) == "2026-11-22T21:40:00Z"


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T21:40:00",
        "2026-11-22T21:40:00z",
        "2026-11-22t21:40:00Z",
        "2026-11-22 21:40:00Z",
        "2026-11-22T21:40:00.000Z",
        "2026-11-22T21:40:00+00:00",
        "2026-11-22T21:40Z",
        "2026-11-22",
        " 2026-11-22T21:40:00Z",
        "2026-11-22T21:40:00Z\n",
        "",
        None,
        1795383600,
    ],
)
def test_parse_accepts_only_the_one_form(text: object) -> None:
    with pytest.raises(KeyFormatError):
        parse_time(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "\uff12\uff10\uff12\uff16-11-22T21:40:00Z",  # fullwidth digits
        "\u0662\u0660\u0662\u0666-11-22T21:40:00Z",  # Arabic-Indic digits
        "2026-11-22T0\u0661:40:00Z",
    ],
)
def test_parse_refuses_non_ascii_digits(text: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_time(text)


@pytest.mark.parametrize("text", ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z"])
def test_parse_refuses_impossible_dates_with_key_format_error(text: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_time(text)

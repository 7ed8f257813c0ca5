"""Hybrid logical clocks: monotonic, mergeable, ordered as text, bounded against drift."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync import Clock, ClockDriftError, ClockError, Hlc, SyncError

from .helpers import HOUR_MS, T0_MS, FakeWall, hlc_text

NODE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
nodes = st.text(alphabet=NODE_CHARS, min_size=1, max_size=64)
hlcs = st.builds(Hlc, st.integers(0, 10**16 - 1), st.integers(0, 999_999), nodes)


def clock(node: str = "me", *, at: int = T0_MS, **kw: int) -> tuple[Clock, FakeWall]:
    wall = FakeWall(at)
    return Clock(node, now_ms=wall, **kw), wall


# -- now() ---------------------------------------------------------------
def test_now_follows_the_wall_clock_when_it_moves_forward() -> None:
    c, wall = clock()
    first = c.now()
    wall.advance(250)
    second = c.now()
    assert (first.wall_ms, first.counter) == (T0_MS, 0)
    assert (second.wall_ms, second.counter) == (T0_MS + 250, 0)
    assert first.node == second.node == "me"


def test_now_strictly_increases_while_the_wall_clock_stands_still() -> None:
    c, _ = clock()
    stamps = [c.now() for _ in range(50)]
    assert all(a < b for a, b in pairwise(stamps))
    assert {s.wall_ms for s in stamps} == {T0_MS}


def test_now_strictly_increases_when_the_wall_clock_goes_backwards() -> None:
    c, wall = clock()
    before = c.now()
    wall.set(T0_MS - 3 * HOUR_MS)  # NTP step, or the officer "fixes" the time
    after = [c.now() for _ in range(3)]
    assert before < after[0] < after[1] < after[2]
    assert after[0].wall_ms == T0_MS, "the clock keeps its wall time and counts instead"


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("wall"), st.integers(-HOUR_MS, HOUR_MS)),
            st.tuples(st.just("now"), st.just(0)),
            st.tuples(st.just("observe"), st.integers(-HOUR_MS, HOUR_MS), st.integers(0, 5), nodes),
        ),
        max_size=40,
    )
)
def test_every_event_is_later_than_everything_seen_before(steps: list[tuple]) -> None:
    c, wall = clock()
    seen: list[Hlc] = []
    for step in steps:
        if step[0] == "wall":
            wall.advance(step[1])
            continue
        if step[0] == "observe":
            remote = Hlc(wall.ms + step[1], step[2], step[3])
            stamp = c.observe(remote)
            seen.append(remote)
        else:
            stamp = c.now()
        assert all(stamp > s for s in seen), (stamp, seen)
        assert stamp.node == "me"
        seen.append(stamp)
    assert c.now() > max(seen, default=Hlc(0, 0, ""))


# -- observe() -----------------------------------------------------------
@pytest.mark.parametrize(
    ("remote_ms", "remote_counter"),
    [
        (T0_MS + 5_000, 0),  # a little ahead
        (T0_MS, 7),  # same millisecond, more events
        (T0_MS - 60_000, 3),  # behind: must not drag our clock back
    ],
)
def test_observe_makes_the_next_local_event_later_than_the_remote(remote_ms: int, remote_counter: int) -> None:
    c, _ = clock()
    mine = c.now()
    remote = Hlc(remote_ms, remote_counter, "zzzz-other")
    merged = c.observe(remote)
    nxt = c.now()
    assert merged > remote and merged > mine
    assert nxt > merged > remote
    assert nxt.node == "me"


def test_observe_accepts_text_and_compares_by_clock_not_by_node() -> None:
    c, _ = clock("aaaa")
    c.observe(hlc_text(T0_MS, 4, "zzzz"))  # same ms, higher counter, a "larger" node
    assert c.now() > Hlc(T0_MS, 4, "zzzz")


def test_observing_an_older_clock_changes_nothing_but_the_counter() -> None:
    c, wall = clock()
    wall.advance(10_000)
    c.now()
    merged = c.observe(Hlc(T0_MS, 0, "old"))
    assert merged.wall_ms == T0_MS + 10_000


# -- text form -----------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(hlcs)
def test_text_form_round_trips(h: Hlc) -> None:
    text = str(h)
    assert Hlc.parse(text) == h
    assert Hlc.parse(text).node == h.node


@settings(max_examples=300, deadline=None)
@given(hlcs, hlcs)
def test_string_order_is_clock_order(a: Hlc, b: Hlc) -> None:
    assert (str(a) < str(b)) == (a < b)
    assert (str(a) == str(b)) == (a == b)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**16 - 1), st.integers(0, 999_999), st.integers(0, 10**16 - 1), st.integers(0, 999_999))
def test_string_order_is_clock_order_for_one_node(w1: int, c1: int, w2: int, c2: int) -> None:
    # the common case: the same node, so only wall time and counter decide
    a, b = Hlc(w1, c1, "n"), Hlc(w2, c2, "n")
    assert (str(a) < str(b)) == ((w1, c1) < (w2, c2))


def test_text_form_is_fixed_width_up_to_the_node() -> None:
    assert str(Hlc(1, 2, "dev-1")) == "0000000000000001-000002-dev-1"
    assert str(Hlc(1_732_312_345_678, 0, "x")).startswith("0001732312345678-000000-")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "1732312345678-000000-node",  # wall not 16 digits
        "0001732312345678-0-node",  # counter not 6 digits
        "0001732312345678-000000-",  # no node
        "0001732312345678-000000-no de",  # space in node
        "0001732312345678-000000-" + "n" * 65,  # node too long
        "0001732312345678_000000_node",
        "0001732312345678-000000-node\n",
        " 0001732312345678-000000-node",
        "-001732312345678-000000-node",
        "\u0660\u0660\u06601732312345678-000000-node",  # Arabic-Indic digits: not ASCII, not ordered
        "\uff10\uff10\uff101732312345678-000000-node",  # full-width digits
        "0001732312345678-\u0661\u0662\u0663\u0664\u0665\u0666-node",
    ],
)
def test_malformed_text_is_a_clock_error(text: str) -> None:
    with pytest.raises(ClockError, match="not a clock value"):
        Hlc.parse(text)


@pytest.mark.parametrize("value", [None, 1732312345678, b"0001732312345678-000000-node"])
def test_non_text_is_a_clock_error(value: object) -> None:
    with pytest.raises(ClockError):
        Hlc.parse(value)  # type: ignore[arg-type]


def test_observing_malformed_text_is_refused_and_changes_nothing() -> None:
    c, _ = clock()
    before = c.now()
    with pytest.raises(ClockError):
        c.observe("9999-garbage")
    assert c.last == before


def test_a_clock_restored_from_malformed_text_is_refused() -> None:
    with pytest.raises(ClockError):
        Clock("me", last="yesterday")


def test_a_clock_restored_from_text_continues_after_it() -> None:
    c = Clock("me", last=hlc_text(T0_MS, 41, "me"), now_ms=lambda: T0_MS - HOUR_MS)
    assert c.now() == Hlc(T0_MS, 42, "me")


# -- drift ---------------------------------------------------------------
def test_a_remote_clock_far_in_the_future_is_refused_and_not_merged() -> None:
    c, _ = clock()
    before = c.now()
    remote = Hlc(T0_MS + 30 * HOUR_MS, 0, "laptop-set-to-2099")
    with pytest.raises(ClockDriftError) as info:
        c.observe(remote)
    assert c.last == before, "a refused clock must not move ours"
    assert c.now() < remote
    message = str(info.value)
    assert "30.0 hours ahead" in message
    assert "24.0 hours" in message
    assert "check the sender's system clock" in message
    assert (info.value.remote_ms, info.value.max_drift_ms) == (remote.wall_ms, 24 * HOUR_MS)
    assert info.value.remote_ms - info.value.local_ms == 30 * HOUR_MS


def test_drift_error_is_a_clock_error_and_a_sync_error() -> None:
    c, _ = clock()
    with pytest.raises(ClockError) as info:
        c.observe(Hlc(T0_MS + 25 * HOUR_MS, 0, "x"))
    assert isinstance(info.value, ClockDriftError)
    assert isinstance(info.value, SyncError)


def test_check_bounds_without_merging() -> None:
    c, _ = clock()
    before = c.now()
    ok = c.check(hlc_text(T0_MS + HOUR_MS, 3, "x"))
    assert ok == Hlc(T0_MS + HOUR_MS, 3, "x")
    assert c.last == before
    with pytest.raises(ClockDriftError):
        c.check(Hlc(T0_MS + 25 * HOUR_MS, 0, "x"))


@settings(max_examples=300)
@given(hlcs)
def test_check_text_admits_and_refuses_exactly_what_check_does(remote: Hlc) -> None:
    c, _ = clock()
    before = c.now()
    text = str(remote)
    try:
        expected: object = c.check(text)
    except ClockDriftError as exc:
        expected = (exc.remote_ms, exc.local_ms, exc.max_drift_ms)
    try:
        got: object = c.check_text(text)
    except ClockDriftError as exc:
        got = (exc.remote_ms, exc.local_ms, exc.max_drift_ms)
    if isinstance(expected, Hlc):
        assert got == text and Hlc.parse(text) == expected  # the very text back, which parses to it
    else:
        assert got == expected
    assert c.last == before  # neither merges


@pytest.mark.parametrize("text", ["9999-garbage", "0001732312345678-000000-node\n", None, 1732312345678])
def test_check_text_refuses_what_is_not_a_clock_text(text: object) -> None:
    c, _ = clock()
    with pytest.raises(ClockError, match="not a clock value"):
        c.check_text(text)  # type: ignore[arg-type]


def test_check_text_bounds_the_drift_at_each_call() -> None:
    c, wall = clock()
    text = hlc_text(T0_MS + 23 * HOUR_MS, 0, "x")
    assert c.check_text(text) == text
    wall.ms -= 2 * HOUR_MS  # the wall clock stepped back: the same clock is 25 h ahead now
    with pytest.raises(ClockDriftError):
        c.check_text(text)


def test_merge_takes_a_checked_clock_without_checking_it_again() -> None:
    """A clock admitted by check() is merged even if the wall clock stepped back meanwhile (the
    laptop checks each pulled change's clock, then merges the page's latest once)."""
    c, wall = clock()
    ahead = c.check(Hlc(T0_MS + 23 * HOUR_MS, 5, "x"))
    wall.ms -= 2 * HOUR_MS  # NTP steps the wall clock back: the same clock now looks 25 h ahead
    with pytest.raises(ClockDriftError):
        c.check(ahead)
    assert c.merge(ahead) == Hlc(T0_MS + 23 * HOUR_MS, 6, "me")
    assert c.now() > ahead


@pytest.mark.parametrize("hours_ahead", [1, 5, 14, 23.9])
def test_clocks_hours_ahead_within_the_default_bound_are_accepted(hours_ahead: float) -> None:
    # a laptop set to the wrong time zone is still allowed to sync
    c, _ = clock()
    remote = Hlc(T0_MS + int(hours_ahead * HOUR_MS), 0, "tz-mistake")
    c.observe(remote)
    assert c.now() > remote


def test_the_default_bound_is_a_day() -> None:
    c, _ = clock()
    c.observe(Hlc(T0_MS + 24 * HOUR_MS, 0, "x"))  # exactly at the bound: accepted
    c2, _ = clock()
    with pytest.raises(ClockDriftError):
        c2.observe(Hlc(T0_MS + 24 * HOUR_MS + 1, 0, "x"))


def test_the_drift_bound_is_configurable() -> None:
    c, wall = clock(max_drift_ms=60_000)
    c.observe(Hlc(T0_MS + 60_000, 0, "x"))
    with pytest.raises(ClockDriftError):
        c.observe(Hlc(T0_MS + 60_001, 0, "y"))
    wall.advance(30_000)  # the bound is measured from our wall clock now
    c.observe(Hlc(T0_MS + 90_000, 0, "z"))
    roomy, _ = clock(max_drift_ms=72 * HOUR_MS)
    roomy.observe(Hlc(T0_MS + 48 * HOUR_MS, 0, "x"))
    assert roomy.now().wall_ms == T0_MS + 48 * HOUR_MS


def test_drift_is_measured_against_the_wall_clock_not_the_merged_clock() -> None:
    # a clock 20 h ahead that we accepted must not let the next one go 40 h ahead
    c, _ = clock()
    c.observe(Hlc(T0_MS + 20 * HOUR_MS, 0, "a"))
    with pytest.raises(ClockDriftError):
        c.observe(Hlc(T0_MS + 40 * HOUR_MS, 0, "b"))


def test_drift_message_stays_readable_with_a_bound_of_minutes() -> None:
    c, _ = clock(max_drift_ms=10 * 60_000)
    with pytest.raises(ClockDriftError) as info:
        c.observe(Hlc(T0_MS + 11 * 60_000, 0, "x"))
    message = str(info.value)
    amounts = re.findall(r"\d+(?:\.\d+)? (?:hours?|minutes?|seconds?)", message)
    assert len(amounts) == 2 and amounts[0] != amounts[1], message


# -- counter -------------------------------------------------------------
def test_a_full_counter_steps_one_millisecond_ahead_never_wraps() -> None:
    c = Clock("me", last=Hlc(T0_MS, 999_999, "me"), now_ms=lambda: T0_MS)
    before = c.last
    after = c.now()
    assert after == Hlc(T0_MS + 1, 0, "me")
    assert after > before and str(after) > str(before)


def test_a_remote_with_a_huge_counter_cannot_freeze_our_clock() -> None:
    c, wall = clock()
    remote = Hlc(T0_MS + HOUR_MS, 999_998, "peer")
    c.observe(remote)
    wall.advance(1_000)
    stamps = [c.now(), c.now()]
    assert remote < stamps[0] < stamps[1]
    c.observe(Hlc(T0_MS + HOUR_MS, 999_999, "peer2"))

"""Device feeds: gap-free, hash-linked chains; equivocation is caught, gaps are held back."""

from __future__ import annotations

import functools
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from sync import Change, FeedHead, Verdict, classify, release

from .helpers import Agency, Device


class Link(NamedTuple):
    """The three things a feed looks at (sync.feeds.Linked), for hand-made chains."""

    seq: int
    prev: str | None
    hash: str


def head_after(change: Change) -> FeedHead:
    return FeedHead(change.seq, change.hash)


def officer_with_feed(n: int) -> tuple[Device, list[Change]]:
    device = Agency.create("SPD").device("alice")
    first = device.create("resources", {"kind": "vehicle", "name": "Unit 12"})
    for i in range(n - 1):
        device.edit(first.record_id, {"notes": f"shift {i}"})
    return device, list(device.made)


@functools.cache
def feed_of(n: int) -> tuple[Change, ...]:
    """One real device feed of ``n`` signed, verified changes (built once)."""
    return tuple(officer_with_feed(n)[1])


# -- classify ------------------------------------------------------------
def test_a_real_feed_links_seq_and_prev() -> None:
    feed = feed_of(4)
    assert [c.seq for c in feed] == [1, 2, 3, 4]
    assert feed[0].prev is None
    assert [c.prev for c in feed[1:]] == [c.hash for c in feed[:-1]]


def test_each_next_link_appends() -> None:
    head = FeedHead()
    for change in feed_of(4):
        assert classify(head, change) is Verdict.APPEND
        head = head_after(change)
    assert head == FeedHead(4, feed_of(4)[-1].hash)


def test_the_very_change_already_held_is_a_duplicate() -> None:
    feed = feed_of(4)
    head = head_after(feed[3])
    for held in feed:
        assert classify(head, held, held.hash) is Verdict.DUPLICATE


def test_a_change_from_the_future_is_a_gap() -> None:
    feed = feed_of(4)
    assert classify(FeedHead(), feed[1]) is Verdict.GAP
    assert classify(head_after(feed[0]), feed[2]) is Verdict.GAP
    assert classify(head_after(feed[0]), feed[3]) is Verdict.GAP


def test_a_first_change_that_claims_a_prev_is_equivocation() -> None:
    assert classify(FeedHead(), Link(1, "x" * 43, "h1")) is Verdict.EQUIVOCATION
    assert classify(FeedHead(), Link(1, None, "h1")) is Verdict.APPEND


def test_a_laptop_restored_from_an_image_equivocates() -> None:
    alice, _ = officer_with_feed(2)
    clone = alice.restore_image()
    rid = alice.made[0].record_id
    original = [alice.edit(rid, {"status": "deployed"}), alice.edit(rid, {"notes": "north"})]
    forked = [clone.edit(rid, {"status": "maintenance"}), clone.edit(rid, {"notes": "south"})]
    assert [c.seq for c in original] == [c.seq for c in forked] == [3, 4]
    assert original[0].prev == forked[0].prev, "both branches grow from the same link"

    head = head_after(original[0])  # the hub accepted the original seq 3
    # same seq, different hash: two signed histories
    assert classify(head, forked[0], original[0].hash) is Verdict.EQUIVOCATION
    # the clone's next link is the next seq, but it does not extend our head
    assert classify(head, forked[1]) is Verdict.EQUIVOCATION
    # while the original's next link does
    assert classify(head, original[1]) is Verdict.APPEND


def test_same_seq_without_a_known_hash_is_never_a_duplicate() -> None:
    feed = feed_of(3)
    assert classify(head_after(feed[2]), feed[1]) is Verdict.EQUIVOCATION
    assert classify(head_after(feed[2]), feed[1], "some other hash") is Verdict.EQUIVOCATION


# -- release -------------------------------------------------------------
def test_release_returns_the_contiguous_prefix_in_order_and_stops_at_a_gap() -> None:
    feed = feed_of(6)
    held = {c.seq: c for c in (feed[4], feed[2], feed[1])}  # seq 5, 3, 2 arrived early
    head = head_after(feed[0])
    assert release(head, held) == [feed[1], feed[2]]
    head = head_after(feed[2])
    assert release(head, held) == [], "seq 4 is still missing"
    held[4] = feed[3]
    assert release(head, held) == [feed[3], feed[4]]
    assert set(held) == {2, 3, 4, 5}, "release does not consume what it was given"


def test_release_with_nothing_held_or_nothing_next() -> None:
    feed = feed_of(3)
    assert release(FeedHead(), {}) == []
    assert release(FeedHead(), {3: feed[2]}) == []
    assert release(FeedHead(), {1: feed[0]}) == [feed[0]]


def test_release_stops_at_a_link_that_does_not_extend_the_chain() -> None:
    feed = feed_of(3)
    forged = Link(3, "not the hash of seq 2", "h3")
    assert release(head_after(feed[0]), {2: feed[1], 3: forged}) == [feed[1]]
    assert release(FeedHead(3, "other head"), {4: Link(4, feed[2].hash, "h4")}) == []


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_feed_arriving_in_any_order_with_repeats_is_accepted_exactly_once_in_order(data: st.DataObject) -> None:
    feed = feed_of(8)
    repeats = data.draw(st.lists(st.sampled_from(feed), max_size=8))
    arrivals = data.draw(st.permutations([*feed, *repeats]))
    head, hashes, held, accepted = FeedHead(), {}, {}, []
    verdicts = set()
    for change in arrivals:
        verdict = classify(head, change, hashes.get(change.seq))
        verdicts.add(verdict)
        if verdict is Verdict.GAP:
            held[change.seq] = change
            continue
        assert verdict in (Verdict.APPEND, Verdict.DUPLICATE), verdict
        if verdict is Verdict.APPEND:
            for link in [change, *release(head_after(change), held)]:
                accepted.append(link)
                hashes[link.seq] = link.hash
                held.pop(link.seq, None)
                head = head_after(link)
    assert accepted == list(feed)
    assert Verdict.EQUIVOCATION not in verdicts

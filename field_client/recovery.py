"""A replica restored from an old copy: a clean resync from the hub, never a stale re-send.

Rules this module owns:

- Every sync first asks the hub for this device's own feed (GET
  /api/v1/sync/feed) before it pushes anything. The replica is *restored*
  (older than its own history) when its seq is below its high-water mark
  (field_client.highwater) or below the hub's head of its feed: edits the
  laptop signed later are not in this file.
- A restored replica never re-signs a seq it may already have signed (that
  would be equivocation, and the hub would quarantine the laptop) and never
  sends its stale outbox blindly. Each pending outbox entry is compared with
  the hub's link at its seq: the same hash means the hub already holds it
  (marked accepted, not re-sent); anything else is set aside
  (``status = 'set_aside'``, with the reason), kept and reported, never sent
  and never silently dropped.
- If the hub holds the feed up to the high-water mark, the laptop resyncs
  cleanly: its local records, changes, conflicts and double bookings are
  rebuilt from the hub (cursor back to 0), its feed continues from the hub's
  head (seq and hash), and the mark is rewritten to that head.
- If the mark is above the hub's head, the seqs between were signed on a
  newer copy that is gone and were never pushed: they are *burned*
  (``feed_burned``). The laptop resyncs read-only and signs nothing again on
  that feed (Device.check_can_sign): re-enrollment gives it a new one.
- What happened is kept in the replica (``restored``) and shown by
  ``fieldsync status``; the whole step is one replica transaction.
"""

from __future__ import annotations

import json
from typing import Any

from crypto import change_hash
from crypto.clock import stamp

from . import outbox
from .device import Device
from .outbox import Status


def feed_after(device: Device) -> int:
    """The seq after which the hub's link hashes are wanted: below the oldest pending entry,
    or the replica's own head (no hashes needed in the common case)."""
    replica = device.replica
    oldest = outbox.oldest_pending(replica)
    seq = device.sync_state.seq
    return max(0, min(seq, oldest - 1)) if oldest is not None else seq


def reconcile(device: Device, answer: dict[str, Any], links: dict[int, str]) -> dict[str, Any] | None:
    """Resync a restored replica (see the module's rules); returns what was done, or None when
    the replica is not restored. ``links`` maps the hub's seqs (after :func:`feed_after`) to hashes."""
    replica, kept = device.replica, device.sync_state
    local = kept.seq
    mark = device.mark()
    marked = mark.seq if mark is not None else 0
    hub_seq, hub_hash = int(answer["seq"]), answer.get("hash")
    if max(marked, hub_seq) <= local:
        return None
    burned = (hub_seq + 1, marked) if marked > hub_seq else None
    kept_aside: list[int] = []
    already: list[int] = []
    with replica.transaction():
        for row in outbox.to_send(replica):
            seq = int(row["seq"])
            if seq <= hub_seq and links.get(seq) == change_hash(json.loads(row["wire"])):
                already.append(seq)
                reason = "the hub already held it (replica restored from an old copy)"
                outbox.mark(replica, seq, Status.ACCEPTED, reason)
            else:
                kept_aside.append(seq)
                reason = (
                    f"set aside, not sent: seq {seq} is in the burned range {burned[0]}..{burned[1]}"
                    if burned and seq >= burned[0]
                    else f"set aside, not sent: the hub holds another change at seq {seq}"
                    if seq <= hub_seq
                    else f"set aside, not sent: stale entry of a restored replica (seq {seq})"
                )
                outbox.mark(replica, seq, Status.SET_ASIDE, reason)
        for table in ("records", "changes", "conflicts", "double_bookings"):
            replica.conn.execute(f"DELETE FROM {table}")
        kept.cursor = 0
        done = {
            "detected_at": stamp(),
            "replica_seq": local,
            "high_water": marked if mark is not None else None,
            "hub_seq": hub_seq,
            "already_on_hub": already,
            "set_aside": kept_aside,
            "burned": {"from": burned[0], "to": burned[1]} if burned else None,
            "lost": list(range(max(local + 1, burned[0]), burned[1] + 1)) if burned else [],
        }
        kept.restored = done
        if burned:
            kept.feed_burned = done["burned"]
        else:
            device.record_feed(hub_seq, hub_hash)
    return done


def describe(done: dict[str, Any]) -> str:
    """One paragraph for the officer."""
    text = (
        f"RESTORED REPLICA: this laptop's replica held seq {done['replica_seq']}, but "
        + (f"its high-water mark says {done['high_water']} and " if done.get("high_water") is not None else "")
        + f"the hub holds its feed up to {done['hub_seq']}: it was restored from an old copy. "
        "Local records were rebuilt from the hub; no stale edit was re-sent"
    )
    if done["set_aside"]:
        text += f"; {len(done['set_aside'])} stale edit(s) set aside (seq {', '.join(map(str, done['set_aside']))})"
    if done["burned"]:
        lost = done["lost"]
        text += (
            f". Seqs {done['burned']['from']}..{done['burned']['to']} were signed on a newer copy and never reached "
            f"the hub: {'edits at seq ' + ', '.join(map(str, lost)) + ' are lost' if lost else 'none is here'}. "
            "This laptop may no longer sign: ask your administrator to re-enroll it"
        )
    return text + "."

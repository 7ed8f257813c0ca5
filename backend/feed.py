"""A device's own feed as the hub holds it: the answer to "what of mine do you have?".

Rules this module owns:

- A device asks only about its own feed (the device is the one that signed
  the request; there is no parameter naming another): its head (seq and
  hash of the last authentic link, accepted or refused) and the hash of each
  link after a given seq, so a laptop restored from an old copy can tell
  which of its stale outbox entries the hub already holds (same seq, same
  hash) without re-sending any of them.
- The answer carries the hub's signed checkpoint and ``chain_at``, the head
  of the log's hash chain at the size the laptop last saw (``since``), so a
  laptop checks for a rolled-back hub (a smaller log) or a forked one (another
  head at that size) before it pushes anything. ``chain_at`` is null when the
  log is shorter than ``since`` or ``since`` is 0.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from . import log
from .db import db
from .models import Device, FeedLink, LogEntry

FEED_LIMIT = 1000


def feed(device: Device, after: int, since: int = 0) -> dict[str, Any]:
    links = db.session.execute(
        select(FeedLink.seq, FeedLink.hash, FeedLink.status)
        .where(FeedLink.device == device.id, FeedLink.seq > after)
        .order_by(FeedLink.seq)
        .limit(FEED_LIMIT)
    ).all()
    head = log.read_head()
    chain_at = None
    if 0 < since <= head.size:
        chain_at = db.session.scalar(select(LogEntry.chain).where(LogEntry.seq == since))
    return {
        "device": device.id,
        "seq": int(device.feed_seq or 0),
        "hash": device.feed_hash,
        "links": [{"seq": int(seq), "hash": h, "status": status} for seq, h, status in links],
        "more": len(links) == FEED_LIMIT,
        "chain_at": chain_at,
        "checkpoint": log.checkpoint(head.size, head.head),
    }

"""Hub trust: the hub's signed checkpoints, the ROLLBACK and FORK alarms, and accept-hub.

Rules this module owns:

- Before anything is pushed, the hub is asked for this device's own feed and
  a signed checkpoint with the head of its log at the size the laptop last
  saw (GET /api/v1/sync/feed: :func:`feed`). That checkpoint, and every
  pull's, must verify with the hub key, and must not show a smaller log than
  the newest checkpoint kept (ROLLBACK), nor another head at that size
  (FORK): otherwise :class:`HubUntrusted` stops the sync, loudly, with
  nothing sent or applied. A checkpoint that does not verify is refused
  likewise, and nothing of it is kept.
- Only a verified, sound checkpoint that shows a longer log is kept as the
  newest; the probe's is not kept (the pull's are, page by page, with the
  page they came with).
- The alarm is kept in the replica (``hub_alarm``): every later sync refuses
  at once, before any request (:func:`refuse_if_alarmed`), until the officer
  runs ``fieldsync accept-hub`` with the size and head the hub's
  administrator read on the hub itself (:func:`accept_hub`). The laptop
  accepts only what the hub then signs, so an impostor alone cannot talk a
  laptop into trusting it.
"""

from __future__ import annotations

import logging
from typing import Any

from crypto import VerificationError, verify_checkpoint
from crypto.clock import stamp

from . import outbox
from .device import Device
from .errors import ClientError, HubUntrusted
from .syncstate import Checkpoint
from .transport import HubClient

logger = logging.getLogger("fieldsync.client")

Alarm = tuple[str, str, Any, Any, Checkpoint]  # kind, message, the verified checkpoint, as sent, the kept one


def refuse_if_alarmed(device: Device) -> None:
    """Raise HubUntrusted when a ROLLBACK or FORK alarm is kept: no request until accept-hub."""
    alarm = device.sync_state.hub_alarm
    if alarm:
        raise HubUntrusted(f"{alarm['message']} (raised {alarm['detected_at']}, kept until `fieldsync accept-hub`)")


def feed(device: Device, client: HubClient, after: int) -> tuple[dict[str, Any], dict[int, str]]:
    """The hub's answer about this device's feed (with the hub's head at the size of the newest
    checkpoint kept), and its link hashes after ``after`` (all pages)."""
    kept = device.sync_state.checkpoint
    since = int(kept["size"]) if kept else 0
    answer = client.feed(after=after, since=since)
    links: dict[int, str] = {}
    while True:
        links.update({int(link["seq"]): str(link["hash"]) for link in answer.get("links", [])})
        if not answer.get("more") or not answer.get("links"):
            return answer, links
        answer = client.feed(after=int(answer["links"][-1]["seq"]), since=since)


def check_checkpoint(device: Device, checkpoint: Any, *, chain_at: Any = None, probe: bool = False) -> None:
    """Verify a checkpoint and compare it with the newest kept; a ROLLBACK or FORK is kept as the
    replica's ``hub_alarm`` before it is raised. ``probe`` (the feed answer, with ``chain_at``: the
    hub's head at the kept size) also catches a fork that has grown past the kept size; a probe's
    checkpoint is not kept (the pull's are, page by page)."""
    alarm = checkpoint_alarm(device, checkpoint, chain_at=chain_at, probe=probe)
    if alarm is not None:
        raise_alarm(device, *alarm)
    if not probe:
        keep_checkpoint(device, checkpoint)


def checkpoint_alarm(device: Device, checkpoint: Any, *, chain_at: Any = None, probe: bool = False) -> Alarm | None:
    """What :func:`raise_alarm` must raise for this checkpoint, or None; writes nothing. A checkpoint
    that does not verify raises HubUntrusted at once (nothing of it is kept)."""
    try:
        cp = verify_checkpoint(checkpoint, device.registry().hub_key)
    except VerificationError as exc:
        raise HubUntrusted(f"the hub's signed checkpoint does not verify: {exc}") from None
    newest = device.sync_state.checkpoint
    if newest is None:
        return None
    seen = f"{cp.size} log entries (head {cp.head})"
    signed = f"signed {newest['size']} (head {newest['head']}) on {newest['at']}"
    if cp.size < newest["size"]:
        return (
            "ROLLBACK",
            f"ROLLBACK: the hub shows {seen} but {signed}: restored from an old copy, or not the same "
            "hub. Nothing was sent or applied; tell your administrator.",
            cp,
            checkpoint,
            newest,
        )
    forked_at_size = cp.size == newest["size"] and cp.head != newest["head"]
    forked_before = probe and cp.size > newest["size"] and chain_at != newest["head"]
    if forked_at_size or forked_before:
        return (
            "FORK",
            f"FORK: the hub shows {seen}"
            + (f", head {chain_at} at size {newest['size']}," if forked_before else "")
            + f" but {signed}: a different history. Nothing was sent or applied; tell your administrator.",
            cp,
            checkpoint,
            newest,
        )
    return None


def keep_checkpoint(device: Device, checkpoint: dict[str, Any]) -> None:
    """Keep a verified, sound checkpoint as the newest when it shows a longer log."""
    newest = device.sync_state.checkpoint
    size = int(checkpoint["size"])
    if newest is None or size > newest["size"]:
        device.sync_state.checkpoint = {"size": size, "head": checkpoint["head"], "at": checkpoint["at"]}


def raise_alarm(device: Device, kind: str, message: str, cp: Any, checkpoint: Any, newest: Checkpoint) -> None:
    """Keep the alarm as the replica's ``hub_alarm``, log it, and raise HubUntrusted."""
    device.sync_state.hub_alarm = {
        "kind": kind,
        "message": message,
        "seen": {"size": cp.size, "head": cp.head, "at": checkpoint["at"]},
        "kept": newest,
        "detected_at": stamp(),
    }
    logger.error("ALERT: %s", message)
    raise HubUntrusted(message)


def accept_hub(device: Device, client: HubClient, *, size: int, head: str) -> dict[str, Any]:
    """The officer's explicit step after a ROLLBACK or FORK alarm, with the log size and head the
    hub's administrator read on the hub itself (``fieldsync-hub log head``).

    Refused unless an alarm is kept and the hub now signs exactly that (size, head): a laptop
    facing an impostor cannot be talked into trusting it by the impostor alone. Then, in one
    transaction: the hub's checkpoint is kept as the newest, the cursor goes back to 0 (every
    change is pulled again; merging is idempotent), this device's changes the hub no longer
    holds (after the hub's head of its feed) are queued again - the same signed bytes, so no
    equivocation - and the alarm moves to ``hub_resets``, the replica's record of every one."""
    replica, kept = device.replica, device.sync_state
    alarm = kept.hub_alarm
    if not alarm:
        raise ClientError("there is no ROLLBACK or FORK alarm on this laptop: nothing to accept")
    answer = client.feed(after=0, since=0)
    try:
        cp = verify_checkpoint(answer.get("checkpoint"), device.registry().hub_key)
    except VerificationError as exc:
        raise HubUntrusted(f"the hub's signed checkpoint does not verify: {exc}") from None
    if (cp.size, cp.head) != (size, head):
        raise HubUntrusted(
            f"not accepted: the hub now signs size {cp.size} head {cp.head}, not the size {size} head {head} you "
            "were given; the alarm stays. Check the hub address and ask your administrator again."
        )
    hub_seq = int(answer["seq"])
    with replica.transaction():
        requeued = outbox.requeue_after(replica, hub_seq)
        checkpoint = Checkpoint(size=cp.size, head=cp.head, at=answer["checkpoint"]["at"])
        record = {
            "accepted_at": stamp(),
            "alarm": alarm,
            "checkpoint": checkpoint,
            "requeued": requeued,
        }
        kept.hub_resets = [*kept.hub_resets, record]
        kept.checkpoint = checkpoint
        kept.cursor = 0
        del kept.hub_alarm
    return record

"""The replica's high-water mark: the highest feed seq this laptop has signed, kept OUTSIDE the database.

Rules this module owns:

- A replica file restored from an old copy (a backup, a synced folder, a
  damaged WAL that lost its last transactions) looks perfectly healthy from
  the inside. The mark, a small file ``highwater.json`` beside it, remembers
  the device id and the highest seq (and its hash) the laptop signed; on
  open and sync, replica seq < mark seq means the replica is older than
  its own history (field_client.recovery decides what then).
- It is written after each commit that advances the device's seq (never
  before: a crash between the two leaves mark < replica, which is fine and
  catches up; never mark > replica, which would be a false alarm), to a temp
  file that is fsynced, then renamed over the old one, then the folder is
  fsynced: it is either the old or the new mark, never half of one.
- It carries an HMAC-SHA256 keyed from the replica key (Replica.mac_key), so
  it cannot be edited (lowered to hide a restore) without the passphrase; a
  mark that fails its MAC, names another device or does not parse raises
  :class:`HighWaterInvalid`. A missing mark reads as None (a laptop enrolled
  before marks existed, or the file deleted): the hub's own record of the
  device's feed (GET /api/v1/sync/feed) is the second, independent check.
- A copy of the whole home folder (a disk image) carries its mark along, so
  nothing local can tell: that case is the hub's (equivocation, quarantine).
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HighWaterInvalid

NAME = "highwater.json"
DOMAIN = b"fieldsync/v1/highwater\0"


@dataclass(frozen=True, slots=True)
class Mark:
    device: str
    seq: int
    hash: str | None


def path(home: str | os.PathLike[str]) -> Path:
    return Path(home) / NAME


def _mac(key: bytes, body: dict[str, Any]) -> str:
    message = DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, message, "sha256").hexdigest()


def write(home: str | os.PathLike[str], key: bytes, mark: Mark) -> None:
    """Atomically replace the mark: temp file, fsync, rename, fsync of the folder."""
    body = {"device": mark.device, "seq": mark.seq, "hash": mark.hash}
    text = json.dumps({**body, "mac": _mac(key, body)}, indent=1)
    target = path(home)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read(home: str | os.PathLike[str], key: bytes, device_id: str) -> Mark | None:
    """The mark, verified; None if there is none. Raises HighWaterInvalid if it was tampered with."""
    target = path(home)
    try:
        text = target.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise HighWaterInvalid(f"{target} cannot be read ({exc})") from None
    try:
        data = json.loads(text)
        body = {"device": data["device"], "seq": data["seq"], "hash": data["hash"]}
        mac = data["mac"]
        if type(body["seq"]) is not int or body["seq"] < 0 or not isinstance(mac, str):
            raise ValueError("bad field types")
    except (ValueError, KeyError, TypeError) as exc:
        raise HighWaterInvalid(f"{target} is not a high-water mark ({exc})") from None
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise HighWaterInvalid(
            f"{target} fails its MAC: it was edited, or belongs to another replica. Sync and edits are "
            "stopped: tell your administrator."
        )
    if body["device"] != device_id:
        raise HighWaterInvalid(f"{target} names device {body['device']}, not this laptop's {device_id}")
    return Mark(body["device"], body["seq"], body["hash"])

"""Push: the outbox's pending changes go to the hub, and each verdict is stored.

Rules this module owns:

- Push sends pending (and held) outbox changes in seq order, in batches of
  PUSH_BATCH; each batch's verdicts are stored in one transaction as they
  arrive, so a push cut off re-sends only what has no verdict yet (the hub
  answers a re-send ``duplicate``: harmless).
- A change the hub refused is marked with its reason and details and removed
  from the local state (the record is rebuilt without it), so the officer
  sees the refusal and the laptop agrees with the hub. A ``duplicate`` that
  carries a reason is a re-send of a change the hub had refused: refused
  again, the same way.
- A change ``held`` (the hub lacks an earlier link of this feed) stays in the
  outbox with the hub's reason; a batch in which every change was held ends
  the push (nothing more can be done now), and the next sync sends it again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from . import outbox, state
from .device import Device
from .outbox import Status
from .transport import HubClient

if TYPE_CHECKING:  # (agent imports this module: the report's type only)
    from .agent import SyncReport

PUSH_BATCH = 200


def push(device: Device, client: HubClient, report: SyncReport) -> None:
    replica = device.replica
    while True:
        rows = outbox.to_send(replica, PUSH_BATCH)
        if not rows:
            return
        results = client.push([json.loads(r["wire"]) for r in rows])
        by_id = {r["change_id"]: r for r in rows}
        refused: dict[str, set[str]] = {}
        progressed = False
        with replica.transaction():
            for result in results:
                row = by_id.get(result.get("id"))
                if row is None:
                    continue
                status = result["status"]
                if status == "duplicate" and result.get("reason"):
                    status = "rejected"  # a re-send of a change the hub had refused
                if status in ("accepted", "duplicate"):
                    report.accepted += 1
                    progressed = True
                    outbox.mark(replica, row["seq"], Status.ACCEPTED)
                elif status == "held":
                    report.held += 1
                    outbox.mark(replica, row["seq"], Status.HELD, result.get("reason"))
                else:
                    progressed = True
                    report.rejected.append(
                        {
                            "id": row["change_id"],
                            "record_id": row["record_id"],
                            "reason": result.get("reason"),
                            "details": result.get("details", {}),
                        }
                    )
                    outbox.mark(replica, row["seq"], Status.REJECTED, result.get("reason"), result.get("details"))
                    refused.setdefault(row["record_id"], set()).add(row["change_id"])
            for record_id, change_ids in refused.items():
                state.rebuild(replica, record_id, change_ids)
        report.pushed += len(rows)
        if not progressed:
            return  # everything held: the hub lacks an earlier link; nothing more to do now

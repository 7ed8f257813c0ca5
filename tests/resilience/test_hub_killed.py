"""The hub SIGKILLed in the middle of a push, then restarted on the same instance and port.

A laptop with a few hundred pending changes runs `fieldsync sync`; the push goes in batches
(field_client/push.py PUSH_BATCH, one transaction each on the hub: backend/pushbatch.py).
As soon as the hub's log shows the first batch committed, and not all of them, the hub
process is killed with SIGKILL: the next batch is in flight, its transaction never commits.
After a restart on the same folder and port, one more sync must leave the hub's log with
each of the laptop's (device, seq) exactly once, the audit chain intact, and every replica
equal to the hub's merged state.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.conftest import Hub, Officer

from .laptops import assert_converged, assert_log_exact, kill_hub, offline_edits, pending, start_sync, wait_until

VEHICLES = 150  # x3 = 450 changes: three push batches of 200, 200, 50


def test_hub_killed_mid_push_loses_nothing_and_applies_nothing_twice(
    hub_process: Hub, officer: Callable[[str, str], Officer]
) -> None:
    writer = officer("SPD", "Sgt. Lee")
    reader = officer("SPD", "Cpl. Diaz")
    total = offline_edits(writer, VEHICLES)

    def logged() -> int:
        return int(hub_process.query("SELECT count(*) AS n FROM log")[0]["n"])

    proc = start_sync(writer)
    try:
        wait_until(lambda: logged() > 0, timeout=60, what="the first push batch", proc=proc)
        kill_hub(hub_process)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    at_kill = logged()
    assert 0 < at_kill < total, f"the kill landed at {at_kill} of {total}: not mid-push"
    assert proc.returncode != 0
    assert "hub unreachable" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    # every change the hub did not commit is still queued; a committed batch whose answer died with
    # the hub is queued too (the laptop never heard), and the re-send below must not apply it twice
    assert total - at_kill <= pending(writer) <= total

    hub_process.start()  # same instance folder, same port
    assert hub_process.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    writer.sync()
    assert pending(writer) == 0
    assert_log_exact(hub_process, writer, total)
    verify = hub_process.admin("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert_converged(hub_process, [writer, reader])
    assert len(hub_process.records()) == VEHICLES

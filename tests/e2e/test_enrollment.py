"""Enrollment as an officer meets it: a mistake on the laptop must not spend the one-time token."""

from __future__ import annotations

from pathlib import Path

from .conftest import FIELDSYNC, Hub, Officer, clean_env, run_cli


def test_a_refused_passphrase_does_not_spend_the_enrollment_token(hub_process: Hub, tmp_path: Path) -> None:
    hub = hub_process
    token = hub.admin("device", "token", "SPD", "--officer", "frank").stdout.strip()
    home = tmp_path / "home-frank"
    argv = [FIELDSYNC, "--home", home, "enroll", "--hub", hub.url, "--token", token]

    short = run_cli(argv, clean_env(FIELDSYNC_PASSPHRASE="short"), check=False)
    assert short.returncode != 0
    assert len(short.stderr.strip().splitlines()) == 1 and "at least 8" in short.stderr, short.stderr
    assert not (home / "replica.db").exists()
    assert hub.query("SELECT id FROM devices") == []  # the hub enrolled nothing

    frank = Officer("frank", "SPD", home)
    assert "enrolled as frank of SPD" in frank.run(*argv[3:]).stdout  # the same token still works
    assert [row["officer"] for row in hub.query("SELECT officer FROM devices")] == ["frank"]

"""`make demo` (field_client/demo.py) plays its day end to end and says what happened."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import clean_env, free_port

pytestmark = pytest.mark.slow


def demo(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "field_client.demo", "--folder", str(folder), "--port", str(free_port()), *extra],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_demo_plays_a_day_of_three_agencies(tmp_path: Path) -> None:
    run = demo(tmp_path / "demo", "--no-serve")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    summary = dict(
        (m["officer"], m.groupdict())
        for m in re.finditer(
            r"^(?P<officer>\S+\. \S+ \S+)\s+(?P<agency>\S+)\s+sees (?P<resources>\d+) resources, (?P<contacts>\d+) "
            r"contacts; pending (?P<pending>\d+), conflicts (?P<conflicts>\d+), double bookings (?P<bookings>\d+)",
            out,
            re.M,
        )
    )
    assert {s["agency"] for s in summary.values()} == {"SPD", "SCSO", "SP9"}, out
    assert all(s["pending"] == "0" for s in summary.values())  # everyone synced
    lee = summary["Sgt. Dana Lee"]
    assert (lee["conflicts"], lee["bookings"]) == ("1", "1")  # the conflict and the double booking
    assert "REFUSED by the hub" in out and "does not let SCSO write name" in out
    assert re.search(r"audit log intact: \d+ entries", out)


def test_the_demo_never_wipes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.txt").write_text("keep me")
    run = demo(folder, "--no-serve")
    assert run.returncode != 0
    assert "not made by the demo" in run.stderr
    assert (folder / "report.txt").read_text() == "keep me"

"""A private PostgreSQL server of the tests, to stop and start at will (never the shared one on :5432).

Rules this module owns:

- The cluster lives in a fresh temporary folder owned by user ``postgres`` (``initdb`` refuses
  to run as root, so every server command runs through ``runuser -u postgres --``), made in
  the first of ``FIELDSYNC_TEST_PG_ROOT``, $TMPDIR, /tmp, /var/tmp that user can enter (a
  root-only /tmp would lock it out); binaries from /usr/lib/postgresql/15/bin unless
  ``FIELDSYNC_TEST_PG_BIN`` says otherwise.
- It listens only on 127.0.0.1, on a free port, with its unix socket in that folder; trust
  authentication; fsync off (a test cluster: speed over durability of the test data).
- :meth:`PgServer.stop` uses ``-m immediate`` by default: the server dies at once, as when
  its machine fails, and recovers from its WAL at the next :meth:`start`.
- :meth:`PgServer.remove` stops it (if running) and deletes the folder; callers run it in a
  ``finally`` so nothing is left behind, even on failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.conftest import free_port

PG_BIN = Path(os.environ.get("FIELDSYNC_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
TIMEOUT = 60


def _base_folder() -> str:
    candidates = [os.environ.get("FIELDSYNC_TEST_PG_ROOT"), os.environ.get("TMPDIR"), "/tmp", "/var/tmp"]
    for folder in filter(None, candidates):
        argv = ["runuser", "-u", "postgres", "--", "test", "-x", folder, "-a", "-d", folder]
        if subprocess.run(argv, capture_output=True, timeout=TIMEOUT).returncode == 0:
            return folder
    raise RuntimeError(f"user postgres can enter none of {candidates}: set FIELDSYNC_TEST_PG_ROOT")


class PgServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fieldsync-pg-", dir=_base_folder()))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        try:
            shutil.chown(self.root, "postgres", "postgres")
            self._pg("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _pg(self, program: str, *args: object) -> subprocess.CompletedProcess[str]:
        argv = ["runuser", "-u", "postgres", "--", str(PG_BIN / program), *map(str, args)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"{program} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._pg("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", TIMEOUT, "start")

    def stop(self, mode: str = "immediate") -> None:
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", TIMEOUT, "stop")

    def running(self) -> bool:
        argv = ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(argv, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL).returncode == 0

    def remove(self) -> None:
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

"""Records page at 100,000 merged records: the web view's keyset paging stays flat.

Run: ``.venv/bin/python bench/bench_web.py [--records N] [--rounds R] [--database-url URL]``

Builds a hub database (SQLite file by default; PostgreSQL with
``--database-url postgresql+psycopg://...``, which must be an empty database)
holding N merged records of three agencies (60% resources, 30% contacts, 10%
reservations), written as ``records`` rows the way ``backend.records.store``
writes them (title/status/search copies included). Change signing is not
part of what a page costs and is left out, so building 100,000 rows takes
seconds, not minutes.

Then, logged in as a staff user through the real login (banner, CSRF, session),
it times whole page requests (Flask test client: routing, session lookup in the
database, queries, Jinja rendering) as medians of R interleaved rounds:
the first page, a page 1,000 pages deep (reached by its keyset cursor), a page
filtered by collection+agency+status, a free-text search, and a sort by title.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from backend import bootstrap, create_app, records, schema, users
from backend.db import db
from backend.models import Agency, Record
from backend.web import listing, paging
from crypto import b64e

AGENCIES = ("SPD", "CSO", "SHP")
STATUSES = ("available", "deployed", "maintenance", "out_of_service")
PLACES = ("Station 3", "Fairgrounds", "I-55 mile 92", "County jail", "Harbor", "Airport", "Downtown")


def build(app, n: int) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC).replace(microsecond=0)
    with app.app_context():
        bootstrap.start_hub()
        for code in AGENCIES:
            db.session.add(Agency(code=code, name=f"{code} agency", created_at=now))
        users.add_user("bench.staff", "staff", "bench-password-1", actor="bench")
        db.session.commit()
        batch = []
        for i in range(n):
            kind = "resources" if i % 10 < 6 else ("contacts" if i % 10 < 9 else "reservations")
            if kind == "resources":
                values = {"kind": "vehicle", "name": f"Unit {i}", "status": STATUSES[i % 4],
                          "location": {"text": f"{PLACES[i % 7]} bay {i % 13}"}, "quantity": 1}  # fmt: skip
            elif kind == "contacts":
                values = {"name": f"Officer {i}", "role": "liaison", "phone": f"+1 555 {i % 10000:04d}"}
            else:
                values = {"resource_id": str(uuid.uuid4()), "purpose": f"Shift {i}", "state": "approved",
                          "starts_at": "2026-12-01T20:00:00Z", "ends_at": "2026-12-02T04:00:00Z"}  # fmt: skip
            title, status, search = records.summary(kind, values)
            batch.append({
                "record_id": str(uuid.uuid4()), "collection": kind, "agency": AGENCIES[i % 3],
                "resource_id": values.get("resource_id"), "state": {}, "values": values, "deleted": False,
                "updated_hlc": "", "updated_at": now - timedelta(seconds=i), "title": title,
                "status": status, "search": search,
            })  # fmt: skip
            if len(batch) == 5000:
                db.session.execute(insert(Record), batch)
                batch = []
        if batch:
            db.session.execute(insert(Record), batch)
        db.session.commit()


def login(client) -> None:  # type: ignore[no-untyped-def]
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login/banner", data={"csrf_token": token})
    answer = client.post("/login", data={"csrf_token": token, "name": "bench.staff", "password": "bench-password-1"})
    assert answer.status_code == 302, answer.status_code


def deep_cursor(app, pages: int) -> str:  # type: ignore[no-untyped-def]
    with app.app_context():
        offset = pages * listing.PAGE_SIZE
        row = db.session.execute(
            select(Record.updated_at, Record.record_id)
            .where(Record.deleted.is_(False))
            .order_by(Record.updated_at.desc(), Record.record_id.desc())
            .offset(offset - 1)
            .limit(1)
        ).one()
        return paging.encode((row[0], row[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fieldsync-bench-web-"))
    url = args.database_url or f"sqlite:///{folder}/hub.db"
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(folder / "instance"), "KEK": b64e(os.urandom(32)),
                      "SECRET_KEY": b64e(os.urandom(32))})  # fmt: skip
    with app.app_context():
        schema.upgrade()
    started = time.perf_counter()
    build(app, args.records)
    print(f"{db_name(url)}: built {args.records:,} records in {time.perf_counter() - started:.1f} s")
    client = app.test_client()
    login(client)
    cases = {
        "first page (newest first)": "/records",
        "1,000 pages deep (keyset cursor)": f"/records?after={deep_cursor(app, 1000)}",
        "collection+agency+status filter": "/records?collection=resources&agency=CSO&status=deployed",
        "free text 'harbor bay 7'": "/records?q=harbor+bay+7",
        "sorted by title": "/records?sort=title&dir=asc",
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for path in cases.values():  # warm-up
        assert client.get(path).status_code == 200, path
    for _ in range(args.rounds):
        for name, path in cases.items():
            t = time.perf_counter()
            response = client.get(path)
            times[name].append(time.perf_counter() - t)
            assert response.status_code == 200 and "records match" in response.text, (path, response.status_code)
    print(f"| page ({args.records:,} records) | median ms | max ms |")
    print("| --- | ---: | ---: |")
    for name, samples in times.items():
        print(f"| {name} | {statistics.median(samples) * 1000:.1f} | {max(samples) * 1000:.1f} |")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def db_name(url: str) -> str:
    return url.split(":", 1)[0].split("+")[0]


if __name__ == "__main__":
    main()

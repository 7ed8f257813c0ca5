"""What the dashboard and the audit page read: one place for their queries."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from crypto.clock import as_utc, now

from .. import audit
from ..db import db
from ..errors import BadRequest
from ..models import Agency, AuditEntry, AuditHead, ConflictRow, Device, DoubleBookingRow, LogEntry, Record
from . import paging
from .sorting import Sort, choose, sort_rows
from .timefmt import zone

CHART_DAYS = 14


@dataclass(frozen=True)
class AgencyRow:
    code: str
    name: str
    devices: int
    records: int
    last_sync: datetime | None


@dataclass(frozen=True)
class Dashboard:
    agencies: list[AgencyRow]
    devices: list[Device]
    device_total: int
    open_conflicts: int
    open_double_bookings: int
    records: int
    changes: int
    per_day: list[tuple[str, int]]
    quarantined: int


def _last_sync(device: Device) -> datetime | None:
    times = [as_utc(t) for t in (device.last_push_at, device.last_pull_at) if t is not None]
    return max(times) if times else None


DEVICE_SORTS = {
    "sync": "desc",  # the default: most recent sync (push or pull) first
    "device": "asc",
    "agency": "asc",
    "officer": "asc",
    "status": "asc",
    "push": "desc",
    "pull": "desc",
    "changes": "desc",
}
_DEVICE_KEYS: dict[str, Any] = {
    "sync": _last_sync,
    "device": lambda d: d.id,
    "agency": lambda d: d.agency,
    "officer": lambda d: d.officer,
    "status": lambda d: d.status,
    "push": lambda d: as_utc(d.last_push_at) if d.last_push_at else None,
    "pull": lambda d: as_utc(d.last_pull_at) if d.last_pull_at else None,
    "changes": lambda d: d.feed_seq,
}


def sort_devices(devices: list[Device], sort: Sort) -> list[Device]:
    """The devices table's order (the dashboard's and the admin page's)."""
    return sort_rows(devices, sort, _DEVICE_KEYS, tiebreak=lambda d: d.id)


def dashboard(device_limit: int = 25, sort: Sort | None = None) -> Dashboard:
    devices_all = list(db.session.scalars(select(Device)))
    by_agency: dict[str, list[Device]] = {}
    for d in devices_all:
        by_agency.setdefault(d.agency, []).append(d)
    record_counts = dict(
        db.session.execute(
            select(Record.agency, func.count()).where(Record.deleted.is_(False)).group_by(Record.agency)
        ).all()
    )
    agencies = []
    for agency in db.session.scalars(select(Agency).order_by(Agency.code)):
        mine = by_agency.get(agency.code, [])
        syncs = [t for t in (_last_sync(d) for d in mine) if t is not None]
        agencies.append(
            AgencyRow(
                agency.code,
                agency.name,
                sum(1 for d in mine if d.status == "active"),
                int(record_counts.get(agency.code, 0)),
                max(syncs) if syncs else None,
            )
        )
    devices = sort_devices(devices_all, sort or Sort("sync", "desc"))
    return Dashboard(
        agencies=agencies,
        devices=devices[:device_limit],
        device_total=len(devices_all),
        open_conflicts=_count(select(func.count()).select_from(ConflictRow).where(ConflictRow.status == "open")),
        open_double_bookings=_count(
            select(func.count()).select_from(DoubleBookingRow).where(DoubleBookingRow.status == "open")
        ),
        records=sum(int(v) for v in record_counts.values()),
        changes=_count(select(func.count()).select_from(LogEntry)),
        per_day=changes_per_day(),
        quarantined=sum(1 for d in devices_all if d.status == "quarantined"),
    )


def _count(query: Select[Any]) -> int:
    return int(db.session.scalar(query) or 0)


def changes_per_day(days: int = CHART_DAYS) -> list[tuple[str, int]]:
    """Accepted changes per local day (DISPLAY_TZ), the last ``days`` days, today included.

    The database groups by UTC hour (a few hundred rows at most, whatever the
    volume); the hours are then placed in local days here, so no SQL dialect's
    time-zone functions are needed."""
    tz = zone()
    today = now().astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC) - timedelta(hours=1)
    if db.engine.dialect.name == "sqlite":
        hour = func.strftime("%Y-%m-%d %H", LogEntry.accepted_at)
    else:
        hour = func.to_char(func.timezone("UTC", LogEntry.accepted_at), "YYYY-MM-DD HH24")
    rows = db.session.execute(select(hour, func.count()).where(LogEntry.accepted_at >= since).group_by(hour)).all()
    counts: Counter[date] = Counter()
    for label, count in rows:
        moment = datetime.strptime(label, "%Y-%m-%d %H").replace(tzinfo=UTC).astimezone(tz)
        if moment.date() >= first:
            counts[moment.date()] += int(count)
    return [((first + timedelta(days=i)).isoformat(), counts[first + timedelta(days=i)]) for i in range(days)]


# -- the audit log --------------------------------------------------------------------------------
AUDIT_PAGE = 50
OUTCOMES = ("ok", "refused", "rejected")


# sortable columns of the audit table: (column, its type for the paging cursor, first-click direction);
# the entry's seq breaks ties, so keyset paging never skips or repeats an entry
AUDIT_SORTS: dict[str, tuple[Any, type, str]] = {
    "time": (AuditEntry.seq, int, "desc"),  # seq is the order entries were written: time order
    "actor": (AuditEntry.actor, str, "asc"),
    "action": (AuditEntry.action, str, "asc"),
    "outcome": (AuditEntry.outcome, str, "asc"),
}


@dataclass
class AuditFilters:
    action: str = ""
    actor: str = ""
    outcome: str = ""
    sort: str = "time"
    dir: str = "desc"

    @classmethod
    def from_args(cls, args: Any) -> AuditFilters:
        f = cls(args.get("action", "").strip()[:64], args.get("actor", "").strip()[:200], args.get("outcome", ""))
        if f.outcome not in ("", *OUTCOMES):
            raise BadRequest(f"unknown outcome {f.outcome!r}")
        chosen = choose(args, {k: v[2] for k, v in AUDIT_SORTS.items()}, "time")
        f.sort, f.dir = chosen.key, chosen.dir
        return f


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def audit_page(filters: AuditFilters, *, after: str | None, before: str | None) -> paging.Page:
    where = []
    if filters.action:
        where.append(AuditEntry.action == filters.action)
    if filters.actor:
        where.append(AuditEntry.actor.contains(filters.actor, autoescape=True))
    if filters.outcome:
        where.append(AuditEntry.outcome == filters.outcome)
    column, kind, _ = AUDIT_SORTS[filters.sort]
    if filters.sort == "time":
        keys, kinds, key_of = (AuditEntry.seq,), (int,), lambda e: (e.seq,)
    else:
        keys, kinds = (column, AuditEntry.seq), (kind, int)
        key_of = lambda e: (getattr(e, column.key), e.seq)  # noqa: E731
    result = paging.fetch(
        select(AuditEntry).where(*where),
        keys,
        kinds,
        descending=filters.dir == "desc",
        after=after,
        before=before,
        limit=AUDIT_PAGE,
        session=db.session,
        key_of=key_of,
    )
    total = _count(select(func.count()).select_from(AuditEntry).where(*where))
    result.summary = f"{total:,} entr{'y' if total == 1 else 'ies'}"
    return result


RECHECK_SECONDS = 60
FORCED_CHECK_SECONDS = 60  # "check again now" at most this often per hub process
_last_check: dict[str, tuple[int, str | None, datetime, audit.AuditReport]] = {}
_last_forced: dict[str, datetime] = {}


@dataclass(frozen=True)
class ChainStatus:
    report: audit.AuditReport
    checked_at: datetime
    throttled: bool = False  # "check again now" was asked too soon after the last one
    forced_ago: int = 0  # seconds since the last forced check (when throttled)


def audit_status(*, fresh: bool = False) -> ChainStatus:
    """The whole chain, walked and re-hashed: work in proportion to the log's length.

    The answer is reused for up to RECHECK_SECONDS while the log's head is
    unchanged, so a busy audit page does not re-hash a large log on every
    view; a new entry, the age limit or ``fresh`` (the page's "check again
    now") walk the whole chain again. A forced check runs at most once per
    FORCED_CHECK_SECONDS in this process, whoever asks: otherwise any logged-in
    account could keep the hub re-hashing a large log by reloading
    ``?check=now``. The page shows when the check ran."""
    head = db.session.get(AuditHead, 1)
    size, top = (head.size, head.head) if head is not None else (0, None)
    key = str(db.engine.url)
    moment = now()
    throttled, forced_ago = False, 0
    if fresh:
        last = _last_forced.get(key)
        if last is not None and (moment - last).total_seconds() < FORCED_CHECK_SECONDS:
            fresh, throttled, forced_ago = False, True, int((moment - last).total_seconds())
        else:
            _last_forced[key] = moment
    cached = _last_check.get(key)
    if (
        not fresh
        and cached is not None
        and cached[:2] == (size, top)
        and (moment - cached[2]).total_seconds() < RECHECK_SECONDS
    ):
        return ChainStatus(cached[3], cached[2], throttled, forced_ago)
    report = audit.verify()
    _last_check[key] = (size, top, moment, report)
    return ChainStatus(report, moment, throttled, forced_ago)

"""Every hub setting, its default and what it is for: the one table docs/operations.md lists.

Each is read from the environment as ``FIELDSYNC_<NAME>`` (Flask's
``from_prefixed_env``), after the instance folder's ``config.py``; a test
config given to :func:`backend.create_app` overrides both. A test checks that
each setting here appears in docs/operations.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Setting(NamedTuple):
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        None,
        "SQLAlchemy URL of the hub database. Default: a SQLite file "
        "`fieldsync.db` in the instance folder. Production: `postgresql+psycopg://user@host/db`.",
    ),
    Setting(
        "SECRET_KEY",
        None,
        "Signs web sessions and CSRF tokens. Required in production; "
        "`fieldsync-hub init` writes a random one to the instance folder when unset.",
    ),
    Setting(
        "KEK",
        None,
        "Key-encryption key (32 bytes, unpadded base64url) that seals agency and hub "
        "private keys. Give it from a secret store; when unset, `init` creates `instance/kek` (mode 0600).",
    ),
    Setting("MAX_CONTENT_LENGTH", 8 * 1024 * 1024, "Largest request body in bytes; larger ones get 413."),
    Setting("MAX_BATCH", 500, "Most changes accepted in one push."),
    Setting("PULL_LIMIT", 1000, "Most changes returned by one pull (a client may ask for fewer)."),
    Setting("REQUEST_MAX_SKEW", 300, "Seconds a signed request's time may differ from the hub's clock."),
    Setting("MAX_CLOCK_DRIFT", 86400, "Seconds a change's clock may run ahead of the hub's before it is refused."),
    Setting("TOKEN_TTL", 86400, "Seconds an enrollment token stays valid."),
    Setting("CERT_DAYS", 365, "Days a device certificate is valid."),
    Setting(
        "SCHEDULER",
        True,
        "Run the scheduled jobs (backend/jobs.py) in this process; `0` turns them off. "
        "With several processes on one database each job still runs once per interval.",
    ),
    Setting("JOB_TICK", 60, "Seconds between a process's checks for due scheduled jobs."),
    Setting("AUDIT_VERIFY_INTERVAL", 3600, "Seconds between scheduled re-verifications of the audit hash chain."),
    Setting("SESSION_PURGE_INTERVAL", 600, "Seconds between scheduled purges of idle web sessions."),
    Setting(
        "DISPLAY_TZ",
        "UTC",
        "IANA time zone (e.g. `Europe/Berlin`, `America/Chicago`) in which the web pages show times, "
        "always with the zone's name; everything is stored in UTC.",
    ),
    Setting("SESSION_IDLE_MINUTES", 30, "Minutes without a request after which a web session ends."),
    Setting("LOGIN_MAX_FAILURES", 5, "Wrong passwords in a row that lock a web account."),
    Setting("LOGIN_LOCK_MINUTES", 10, "Minutes a locked web account stays locked."),
    Setting(
        "SESSION_COOKIE_SECURE",
        True,
        "Mark the web session cookie `Secure` (sent over HTTPS only). Keep it on; the hub's tests "
        "keep it on too (Chromium treats http://127.0.0.1 as secure). Turn it off only for a trial on plain http "
        "from another machine.",
    ),
    Setting(
        "SESSION_COOKIE_SAMESITE",
        "Lax",
        "SameSite attribute of the session cookie (`Lax` or `Strict`); the cookie is always HttpOnly.",
    ),
)

DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}
DEFAULTS["SESSION_COOKIE_NAME"] = "fieldsync_session"
DEFAULTS["SESSION_COOKIE_HTTPONLY"] = True

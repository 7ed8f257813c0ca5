"""Checking a web login: Argon2id passwords, lockout after repeated failures, audit.

Rules this module owns:

- ``LOGIN_MAX_FAILURES`` (5) wrong passwords in a row lock the account for
  ``LOGIN_LOCK_MINUTES`` (10). While locked, even the right password is
  refused; the lock lifts by itself. A good login resets the count.
- The login form does not tell which names exist: every path (unknown name,
  locked account, wrong password, right password) spends exactly one Argon2id
  verification (an unknown name against a decoy hash, a locked account against
  its own hash, whose result is then ignored), and every refusal gets the one
  message of :func:`_refused`, which says the account may be locked. A locked
  account is never named as locked to the person at the form: that would be an
  answer an unknown name never gets. The audit log keeps the real reason.
- The user row is read ``FOR UPDATE`` (PostgreSQL; SQLite's BEGIN IMMEDIATE
  already serializes writers), so concurrent wrong passwords count one by one
  and exactly the ``LOGIN_MAX_FAILURES``-th locks.
- Every attempt is one audit entry: ``login`` (ok), ``login.failed``,
  ``login.locked`` (the failure that locked it) or ``login.refused`` (tried
  while locked), in the same transaction as the counter it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from flask import current_app
from sqlalchemy import select

from crypto.clock import as_utc, now

from .. import audit
from ..db import db
from ..models import User
from ..users import check_password, hash_password

REFUSED = "The user name or password is not right, or the account is locked"


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    message: str | None = None  # why it was refused

    @property
    def ok(self) -> bool:
        return self.user is not None


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return hash_password("fieldsync decoy password, never a real one")


def actor(name: str) -> str:
    """How a web user appears in the audit log."""
    return f"user:{name}"


def authenticate(name: str, password: str, *, client: str | None) -> LoginResult:
    """Check one login attempt and commit its counters and audit entry."""
    name = name.strip()
    details = {"client": client} if client else {}
    user = db.session.scalar(select(User).where(User.name == name).with_for_update()) if name else None
    moment = now()
    if user is None:
        check_password(User(password_hash=_decoy_hash()), password)  # the same work as a real account
        audit.record(
            "login.failed",
            actor=actor(name[:100] or "?"),
            outcome="refused",
            details={**details, "reason": "no such user"},
        )
        db.session.commit()
        return LoginResult(None, _refused())
    if user.locked_until is not None and as_utc(user.locked_until) > moment:
        check_password(user, password)  # spent and ignored: a locked account answers no faster
        audit.record(
            "login.refused",
            actor=actor(user.name),
            outcome="refused",
            details={**details, "reason": "account locked", "until": as_utc(user.locked_until).isoformat()},
        )
        db.session.commit()
        return LoginResult(None, _refused())
    if not check_password(user, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        limit = int(current_app.config["LOGIN_MAX_FAILURES"])
        if user.failed_logins >= limit:
            user.locked_until = moment + timedelta(minutes=float(current_app.config["LOGIN_LOCK_MINUTES"]))
            user.failed_logins = 0
            audit.record(
                "login.locked",
                actor=actor(user.name),
                outcome="refused",
                details={
                    **details,
                    "reason": f"{limit} wrong passwords in a row",
                    "until": user.locked_until.isoformat(),
                },
            )
            db.session.commit()
            return LoginResult(None, _refused())
        audit.record(
            "login.failed",
            actor=actor(user.name),
            outcome="refused",
            details={**details, "reason": "wrong password", "failures": user.failed_logins},
        )
        db.session.commit()
        return LoginResult(None, _refused())
    user.failed_logins = 0
    user.locked_until = None
    audit.record("login", actor=actor(user.name), details={**details, "role": user.role})
    db.session.commit()
    return LoginResult(user)


def _refused() -> str:
    """The one answer to every refused login (the same for every name: it tells nothing)."""
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    minutes = current_app.config["LOGIN_LOCK_MINUTES"]
    return (
        f"{REFUSED}: after {limit} failed attempts in a row an account is locked for {minutes} minutes. "
        "Try again later or ask an administrator."
    )

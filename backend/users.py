"""Staff accounts of the web view: adding, removing and listing them.

Rules this module owns:

- Passwords are stored only as Argon2id hashes (PyNaCl pwhash); a password has
  at least ``MIN_PASSWORD`` characters, a name 1 to 100, a role one of
  ``ROLES``; names are unique.
- Adding or removing an account writes one audit entry in the same
  transaction; removing one ends all its web sessions at once.
- The last admin account cannot be removed: nobody could manage the hub's
  accounts from the web view any more.
"""

from __future__ import annotations

import nacl.exceptions
import nacl.pwhash
from sqlalchemy import func, select

from crypto.clock import now

from . import audit
from .db import db
from .errors import Conflict, NotFound, Unprocessable
from .models import User

ROLES = ("admin", "staff")
MIN_PASSWORD = 12


def hash_password(password: str) -> str:
    return nacl.pwhash.argon2id.str(password.encode("utf-8")).decode("ascii")


def check_password(user: User, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(user.password_hash.encode("ascii"), password.encode("utf-8")))
    except nacl.exceptions.InvalidkeyError:
        return False


def add_user(name: str, role: str, password: str, *, actor: str) -> User:
    name = name.strip()
    if not name or len(name) > 100:
        raise Unprocessable("a user name is 1 to 100 characters", details={"name": ["Invalid."]})
    if role not in ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ROLES)}", details={"role": ["Invalid."]})
    if len(password) < MIN_PASSWORD:
        raise Unprocessable(
            f"a password needs at least {MIN_PASSWORD} characters", details={"password": ["Too short."]}
        )
    if db.session.scalar(select(User).where(User.name == name)):
        raise Conflict(f"user {name} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password), failed_logins=0, created_at=now())
    db.session.add(user)
    audit.record("user.add", actor=actor, object=name, details={"role": role})
    return user


def remove_user(name: str, *, actor: str) -> User:
    """Remove an account and end all its web sessions at once (in the caller's transaction).

    The last admin account cannot be removed: nobody could manage the hub's
    accounts from the web view any more.
    """
    from .auth.sessions import end_user_sessions  # lazy: backend.auth imports this module

    user = db.session.scalar(select(User).where(User.name == name.strip()).with_for_update())
    if user is None:
        raise NotFound(f"no user {name}")
    if user.role == "admin":
        admins = db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
        if admins <= 1:
            raise Conflict(f"{user.name} is the last admin account; add another admin first")
    ended = end_user_sessions(user.id)
    db.session.delete(user)
    audit.record("user.remove", actor=actor, object=user.name, details={"role": user.role, "sessions_ended": ended})
    return user


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.name)))

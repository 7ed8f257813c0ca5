"""Guards for web views: ``@login_required`` and ``@roles_required("admin")``.

A visitor who is not logged in is sent to the login page (and back after);
a logged-in user without the role gets 403, and the refusal is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, redirect, request, session, url_for
from flask_login import current_user

from .. import audit
from ..db import db
from .accounts import actor

F = TypeVar("F", bound=Callable[..., Any])


def _to_login() -> Any:
    expired = 1 if getattr(session, "expired", False) else None
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?"), expired=expired))


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return _to_login()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Only users whose role is one of ``roles`` (403 for the others)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return _to_login()
            if current_user.role not in roles:
                audit.record(
                    "access.denied",
                    actor=actor(current_user.name),
                    object=f"{request.method} {request.path}",
                    outcome="refused",
                    details={"role": current_user.role, "needs": list(roles)},
                )
                db.session.commit()
                abort(403, description=f"This page is for {' or '.join(roles)} accounts only.")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate

"""Routes of the ``web`` blueprint: thin, reading through backend.web.queries."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ..auth import login_required
from . import bp


@bp.get("/")
@login_required
def dashboard() -> Any:
    return render_template("web/dashboard.html")

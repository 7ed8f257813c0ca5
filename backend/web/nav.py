"""The top navigation: each blueprint registers its entries; a template shows those
whose endpoint exists and whose role matches the user."""

from __future__ import annotations

from typing import Any, NamedTuple

from flask import Flask, current_app, request
from flask_login import current_user


class NavItem(NamedTuple):
    order: int
    endpoint: str
    label: str
    role: str | None  # None: every logged-in user


_ITEMS: dict[str, NavItem] = {}


def register_nav(endpoint: str, label: str, *, role: str | None = None, order: int = 50) -> None:
    _ITEMS[endpoint] = NavItem(order, endpoint, label, role)


register_nav("web.dashboard", "Dashboard", order=10)
register_nav("web.records", "Records", order=20)
register_nav("web.audit_log", "Audit log", order=80)


def items() -> list[dict[str, Any]]:
    if not current_user.is_authenticated:
        return []
    here = request.endpoint or ""
    out = []
    for item in sorted(_ITEMS.values()):
        if item.endpoint not in current_app.view_functions:
            continue
        if item.role is not None and current_user.role != item.role:
            continue
        section = item.endpoint.split(".")[0]
        active = (
            here == item.endpoint
            or (section != "web" and here.startswith(section + "."))
            or (item.endpoint == "web.records" and here == "web.record")
        )
        out.append({"endpoint": item.endpoint, "label": item.label, "active": active})
    return out


def init_app(app: Flask) -> None:
    @app.context_processor
    def _nav() -> dict[str, Any]:
        return {"nav_items": items}

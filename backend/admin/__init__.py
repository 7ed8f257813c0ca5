"""Admin pages for hub administrators (blueprint ``admin``, under ``/admin``).

Agencies and their keys (create, rotate), devices (enrollment tokens,
revocation), sharing agreements (list, add, remove) and staff accounts (list,
add, remove). Every page needs the ``admin`` role (a staff account gets 403);
every change is a POST behind a confirmation where it cannot be undone, is
CSRF-checked app-wide, and calls the same service function as the
``fieldsync-hub`` command (backend.agencies, backend.enroll,
backend.agreements, backend.users), which writes the audit entry.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import views  # noqa: E402, F401  - the routes

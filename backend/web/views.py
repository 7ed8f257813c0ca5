"""Routes of the ``web`` blueprint: thin, reading through queries, listing and detail.

Every page needs a login (staff or admin). Nothing here changes state on GET;
the one export (the provenance bundle) is audited.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, render_template, request, url_for
from flask_login import current_user

from .. import audit, provenance
from ..auth import login_required
from ..auth.accounts import actor
from ..db import db
from . import bp, chart, detail, listing, queries, sorting


def endpoint_url(endpoint: str, **values: Any) -> str | None:
    """A link to another blueprint's page (the conflict queue...) if it is installed."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except Exception:  # the endpoint takes other arguments
        return None


@bp.app_context_processor
def _links() -> dict[str, Any]:
    return {"endpoint_url": endpoint_url}


@bp.get("/")
@login_required
def dashboard() -> Any:
    sort = sorting.choose(request.args, queries.DEVICE_SORTS, "sync")
    data = queries.dashboard(sort=sort)
    svg = chart.bar_chart(data.per_day, label=f"Changes accepted per day, last {len(data.per_day)} days")
    return render_template("web/dashboard.html", d=data, chart=svg, sort=sort)


@bp.get("/records")
@login_required
def records() -> Any:
    filters = listing.Filters.from_args(request.args)
    page = listing.page(filters, after=request.args.get("after"), before=request.args.get("before"))
    args = {k: v for k, v in request.args.items() if v}
    return render_template(
        "web/records.html",
        f=filters,
        page=page,
        args=args,
        agencies=listing.agencies(),
        collections=listing.COLLECTIONS,
        statuses=listing.STATUSES,
    )


@bp.get("/records/<record_id>")
@login_required
def record(record_id: str) -> Any:
    return render_template("web/record.html", r=detail.load(record_id[:64]))


@bp.get("/records/<record_id>/provenance.json")
@login_required
def record_provenance(record_id: str) -> Any:
    """The same bundle as the API's /records/<id>/provenance, for the logged-in staff member
    (who sees every field), as a file ``fieldsync verify`` checks offline."""
    bundle = provenance.bundle(record_id[:64], reader=None)
    audit.record(
        "provenance.export", actor=actor(current_user.name), agency=bundle["record"]["agency"], object=record_id
    )
    db.session.commit()
    response = Response(json.dumps(bundle, indent=2, sort_keys=True), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="provenance-{bundle["record"]["record_id"]}.json"'
    return response


@bp.get("/audit")
@login_required
def audit_log() -> Any:
    filters = queries.AuditFilters.from_args(request.args)
    page = queries.audit_page(filters, after=request.args.get("after"), before=request.args.get("before"))
    return render_template(
        "web/audit.html",
        f=filters,
        page=page,
        args={k: v for k, v in request.args.items() if v and k != "check"},  # links never re-force the check
        chain=queries.audit_status(fresh=request.args.get("check") == "now"),
        actions=queries.audit_actions(),
        outcomes=queries.OUTCOMES,
    )

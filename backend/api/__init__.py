"""The JSON sync API, /api/v1: enrollment, push, pull, own feed, registry, provenance."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowError

from crypto import format_time
from crypto.clock import as_utc, now
from sync.schemas import UUID_RE

from .. import audit, feed, keystore, provenance, pull, push
from .. import enroll as enrollment
from ..db import db
from ..errors import BadRequest, HubError, NotFound, Unprocessable
from . import schemas, text
from .auth import authenticate, refuse
from .spec import build_spec

bp = Blueprint("api", __name__, url_prefix="/api/v1")
HUB_TIME_HEADER = "X-Fieldsync-Hub-Time"
UUID = re.compile(UUID_RE)
PULL_SEEN_EVERY = 30  # seconds: how stale a device's last_pull_at may be while it pulls a long log


@bp.after_request
def _hub_time(response: Any) -> Any:
    """Every API answer, errors included, carries the hub's clock: a laptop whose clock is off
    learns the offset from it and signs its next request in hub time (field_client/transport.py)."""
    response.headers[HUB_TIME_HEADER] = format_time(now())
    return response


def _body(schema: Schema) -> dict[str, Any]:
    raw = request.get_data()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    where = text.unstorable(data) if text.may_hold_unstorable(raw) else None
    if where is not None:
        # the key of the place is made storable too: it goes back in the error's details
        raise Unprocessable("the request does not match its schema", details={text.safe(where): [text.MESSAGE]})
    try:
        return schema.load(data)  # type: ignore[no-any-return]
    except MarshmallowError as exc:
        raise Unprocessable("the request does not match its schema", details=exc.normalized_messages()) from None


@bp.post("/enroll")
def enroll() -> Any:
    try:
        body = _body(schemas.EnrollRequest())
    except (BadRequest, Unprocessable) as exc:
        raise enrollment.refuse(exc) from None
    answer = enrollment.enroll(body["token"], body["public_key"])
    return jsonify(answer), 201


@bp.post("/sync/push")
def sync_push() -> Any:
    device = authenticate()
    try:
        body = _body(schemas.PushRequest())
        results = push.push(device, body["changes"])
    except HubError as exc:  # malformed, or over the batch limit: refused, and audited
        raise refuse(exc, device) from None
    return jsonify({"results": results})


@bp.get("/sync/pull")
def sync_pull() -> Any:
    device = authenticate()
    try:
        args = schemas.PullQuery().load(request.args.to_dict())
    except MarshmallowError as exc:
        raise Unprocessable("bad pull parameters", details=exc.normalized_messages()) from None
    limit = min(args["limit"] or current_app.config["PULL_LIMIT"], int(current_app.config["PULL_LIMIT"]))
    page = pull.page(device.agency, args["cursor"], limit)
    # the dashboard's "last pull": written at a pull's last page, and during a long pull when it
    # is PULL_SEEN_EVERY seconds old, not at every page (each write is a commit of its own)
    moment = now()
    last = device.last_pull_at
    if not page.more or last is None or (moment - as_utc(last)).total_seconds() >= PULL_SEEN_EVERY:
        device.last_pull_at = moment
    db.session.commit()
    return current_app.response_class(page.body(), mimetype="application/json")


@bp.get("/sync/feed")
def sync_feed() -> Any:
    """This device's own feed as the hub holds it, and the hub's signed checkpoint."""
    device = authenticate()
    try:
        args = schemas.FeedQuery().load(request.args.to_dict())
    except MarshmallowError as exc:
        raise Unprocessable("bad feed parameters", details=exc.normalized_messages()) from None
    return jsonify(feed.feed(device, args["after"], args["since"]))


@bp.get("/registry")
def registry() -> Any:
    return jsonify({"entries": keystore.registry_entries()})


@bp.get("/records/<record_id>/provenance")
def record_provenance(record_id: str) -> Any:
    device = authenticate()
    if not UUID.match(record_id):  # nothing to look up (record ids are UUID4), nothing unstorable kept
        refused = NotFound(f"no record {text.safe(record_id)}")
        audit.refused(
            "provenance.read", actor=f"device:{device.id}", agency=device.agency,
            object=text.safe(record_id), reason="not a record id",
        )  # fmt: skip
        raise refused
    return jsonify(provenance.bundle(record_id, reader=device.agency, actor=f"device:{device.id}"))


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(build_spec())

"""The JSON sync API, /api/v1: enrollment, push, pull, own feed, registry, provenance."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowError

from .. import enroll as enrollment
from .. import feed, keystore, provenance, pull, push
from ..db import db
from ..errors import BadRequest, Unprocessable
from . import schemas
from .auth import authenticate
from .spec import build_spec

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _body(schema: Schema) -> dict[str, Any]:
    raw = request.get_data()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
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
    body = _body(schemas.PushRequest())
    return jsonify({"results": push.push(device, body["changes"])})


@bp.get("/sync/pull")
def sync_pull() -> Any:
    device = authenticate()
    try:
        args = schemas.PullQuery().load(request.args.to_dict())
    except MarshmallowError as exc:
        raise Unprocessable("bad pull parameters", details=exc.normalized_messages()) from None
    limit = min(args["limit"] or current_app.config["PULL_LIMIT"], int(current_app.config["PULL_LIMIT"]))
    answer = pull.pull(device.agency, args["cursor"], limit)
    device.last_pull_at = keystore.now()
    db.session.commit()
    return jsonify(answer)


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
    return jsonify(provenance.bundle(record_id, reader=device.agency))


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(build_spec())

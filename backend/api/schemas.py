"""Marshmallow schemas of the API's bodies: they validate input and generate the OpenAPI document."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from sync.schemas import ChangeSchema

from ..push import PushStatus


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class Error(Schema):
    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True, metadata={"description": "one sentence for a person"})
    details = fields.Dict(required=True, metadata={"description": "field-level messages, when any"})


class EnrollRequest(_Strict):
    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    public_key = fields.String(required=True, validate=validate.Length(equal=43))


class EnrollResponse(Schema):
    device_id = fields.String(required=True)
    agency = fields.String(required=True)
    officer = fields.String(required=True)
    certificate = fields.Dict(required=True)
    registry = fields.List(fields.Dict(), required=True)
    hub_time = fields.String(required=True)


class PushRequest(_Strict):
    changes = fields.List(fields.Dict(), required=True, metadata={"description": "signed changes (Change)"})


class PushResult(Schema):
    id = fields.Raw(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in PushStatus]))
    reason = fields.String()
    details = fields.Dict()


class PushResponse(Schema):
    results = fields.List(fields.Nested(PushResult), required=True)


class PulledChange(Schema):
    seq = fields.Integer(required=True)
    change = fields.Nested(ChangeSchema, required=True)


class Checkpoint(Schema):
    type = fields.String(required=True)
    size = fields.Integer(required=True)
    head = fields.String(required=True, allow_none=True)
    at = fields.String(required=True)
    signature = fields.String(required=True)


class PullResponse(Schema):
    changes = fields.List(fields.Nested(PulledChange), required=True)
    certificates = fields.Dict(required=True)
    next_cursor = fields.Integer(required=True)
    more = fields.Boolean(required=True)
    registry_size = fields.Integer(required=True)
    checkpoint = fields.Nested(Checkpoint, required=True)


class PullQuery(_Strict):
    cursor = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=None, validate=validate.Range(min=1, max=10_000))


class FeedQuery(_Strict):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    since = fields.Integer(load_default=0, validate=validate.Range(min=0))


class FeedEntry(Schema):
    seq = fields.Integer(required=True)
    hash = fields.String(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf([PushStatus.ACCEPTED.value, PushStatus.REJECTED.value])
    )


class FeedResponse(Schema):
    device = fields.String(required=True)
    seq = fields.Integer(required=True, metadata={"description": "last authentic link the hub holds, 0 if none"})
    hash = fields.String(required=True, allow_none=True)
    links = fields.List(fields.Nested(FeedEntry), required=True, metadata={"description": "links after `after`"})
    more = fields.Boolean(required=True)
    chain_at = fields.String(
        required=True, allow_none=True, metadata={"description": "head of the hub's log at size `since`"}
    )
    checkpoint = fields.Nested(Checkpoint, required=True)


class RegistryResponse(Schema):
    entries = fields.List(fields.Dict(), required=True)


class Provenance(Schema):
    record = fields.Dict(required=True)
    changes = fields.List(fields.Dict(), required=True)
    certificates = fields.Dict(required=True)
    registry = fields.List(fields.Dict(), required=True)
    checkpoint = fields.Nested(Checkpoint, required=True)


class Health(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)

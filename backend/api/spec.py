"""The OpenAPI 3 document, generated from the API's marshmallow schemas."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from sync.schemas import ChangeSchema

from . import schemas as s

SIGNED = [{"deviceSignature": []}]
# Any request may carry a body declared gzip (backend/compression.py answers before any route):
# 400 when it is not gzip, 413 when it is larger than allowed, compressed or inflated.
BODY = (400, 413)


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    """Error answers; every database-backed operation may also answer 503 while the database is down."""
    return {str(code): {"description": "error", **_json("Error")} for code in (*codes, 503)}


def _ecma_patterns(node: Any) -> Any:
    """OpenAPI patterns are ECMA-262 regexes: Python's ``\\A``/``\\Z`` anchors become ``^``/``$`` (the same
    anchors there, without a multiline flag); the schemas themselves keep validating with Python's."""
    if isinstance(node, dict):
        out = {key: _ecma_patterns(value) for key, value in node.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str):
            if pattern.startswith("\\A"):
                pattern = "^" + pattern[2:]
            if pattern.endswith("\\Z"):
                pattern = pattern[:-2] + "$"
            out["pattern"] = pattern
        return out
    if isinstance(node, list):
        return [_ecma_patterns(value) for value in node]
    return node


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="fieldsync hub API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Signed, offline-first sync of shared resources and contacts between agencies."},
    )
    spec.components.security_scheme(
        "deviceSignature",
        {
            "type": "apiKey",
            "in": "header",
            "name": "X-Fieldsync-Signature",
            "description": "Ed25519 signature by the device key over device, method, path, body digest, time "
            "and nonce (headers X-Fieldsync-Device, -Time, -Nonce).",
        },
    )
    # Change first: PullResponse nests ChangeSchema, and the plugin would otherwise register it under
    # the same name on its own, making this registration a duplicate (DuplicateComponentNameError)
    spec.components.schema("Change", schema=ChangeSchema)
    for name in (
        "Error",
        "EnrollRequest",
        "EnrollResponse",
        "PushRequest",
        "PushResponse",
        "PullResponse",
        "FeedResponse",
        "RegistryResponse",
        "Provenance",
        "Health",
    ):
        spec.components.schema(name, schema=getattr(s, name))
    spec.path(
        path="/api/v1/enroll",
        operations={
            "post": {
                "summary": "Enroll a laptop: one-time token + device public key -> certificate and key registry",
                "requestBody": {"required": True, **_json("EnrollRequest")},
                "responses": {
                    "201": {"description": "enrolled", **_json("EnrollResponse")},
                    **_errors(400, 401, 403, 409, 413, 422),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/sync/push",
        operations={
            "post": {
                "summary": "Push a batch of signed changes; each is accepted, duplicate, held or rejected",
                "security": SIGNED,
                "requestBody": {"required": True, **_json("PushRequest")},
                "responses": {
                    "200": {"description": "a verdict per change", **_json("PushResponse")},
                    **_errors(400, 401, 403, 413, 422),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/sync/pull",
        operations={
            "get": {
                "summary": "Changes visible to the caller's agency after the cursor",
                "security": SIGNED,
                "parameters": [
                    {"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                ],
                "responses": {
                    "200": {"description": "changes, certificates, next cursor, checkpoint", **_json("PullResponse")},
                    **_errors(400, 401, 403, 409, 413, 422),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/sync/feed",
        operations={
            "get": {
                "summary": "The calling device's own feed as the hub holds it (head, link hashes), and a checkpoint",
                "security": SIGNED,
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": {"description": "feed head and links after `after`", **_json("FeedResponse")},
                    **_errors(400, 401, 403, 413, 422),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/registry",
        operations={
            "get": {
                "summary": "The key registry: agency keys, rotations, revocations, hub key",
                "responses": {
                    "200": {"description": "registry entries", **_json("RegistryResponse")},
                    **_errors(*BODY),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/records/{record_id}/provenance",
        operations={
            "get": {
                "summary": "Provenance bundle of one record, verifiable offline with `fieldsync verify`",
                "security": SIGNED,
                "parameters": [{"name": "record_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "bundle", **_json("Provenance")},
                    **_errors(*BODY, 401, 403, 404),
                },
            }
        },
    )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "summary": "Health",
                "responses": {
                    "200": {"description": "healthy", **_json("Health")},
                    "503": {"description": "database unreachable", **_json("Health")},
                    **_errors(*BODY),
                },
            }
        },
    )
    return _ecma_patterns(spec.to_dict())  # type: ignore[no-any-return]

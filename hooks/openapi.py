"""The OpenAPI description of POST /hooks/replicate, which FastAPI's routing never sees.

The webhook is answered before FastAPI (hookwatch.app.HookwatchApp), so its schema entry is
added here by hand: clients and schemathesis then know it like every other endpoint.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from hookwatch.hooks.payload import MAX_LABEL
from hookwatch.hooks.route import PATH

_ERROR = {"$ref": "#/components/schemas/WebhookError"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


_LABEL = {"type": "string", "maxLength": MAX_LABEL}
_TEXT_OR_ANY: dict[str, Any] = {}  # any JSON: Replicate sends strings, Cog servers objects

SCHEMAS: dict[str, Any] = {
    "PredictionWebhook": {
        "type": "object",
        "description": "A prediction as Replicate or a Cog server sends it; unknown keys are "
                       "kept as received.",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string", "pattern": "^[!-~]{1,256}$"},  # printable ASCII
            "status": {"type": "string", "pattern": "^[a-z][a-z_]{0,31}$",
                       "examples": ["starting", "processing", "succeeded", "failed",
                                    "canceled", "aborted"]},
            "model": _LABEL,
            "version": _LABEL,
            "deployment": _LABEL,
            "error": _TEXT_OR_ANY,
            "logs": _TEXT_OR_ANY,
            "input": _TEXT_OR_ANY,
            "output": _TEXT_OR_ANY,
            "metrics": {"type": "object", "properties": {"predict_time": {"type": "number"}}},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "additionalProperties": True,
    },
    "WebhookRecorded": {
        "type": "object",
        "required": ["status", "id"],
        "properties": {
            "status": {"type": "string", "enum": ["recorded", "duplicate"]},
            "id": {"type": "string"},
        },
    },
    "WebhookError": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "webhookSignature": {
        "type": "apiKey", "in": "header", "name": "webhook-signature",
        "description": "Standard Webhooks: headers webhook-id, webhook-timestamp and "
                       "webhook-signature (v1 HMAC-SHA256 or v1a ed25519 over "
                       "'{id}.{timestamp}.{raw body}'); https://www.standardwebhooks.com/",
    },
    "ingestToken": {
        "type": "http", "scheme": "bearer",
        "description": "HOOKWATCH_INGEST_TOKEN, for Cog servers (their WEBHOOK_AUTH_TOKEN).",
    },
}

PATH_ITEM: dict[str, Any] = {
    "post": {
        "tags": ["webhooks"],
        "operationId": "receive_webhook",
        "summary": "Receive a Replicate or Cog prediction webhook",
        "description": "Answered 200 only after the event is durably committed; a repeated "
                       "webhook-id is answered 200 with status 'duplicate'. Nothing is stored "
                       "for a refused request.",
        # webhook-id and webhook-timestamp belong to the webhookSignature scheme: listed as
        # parameters, a client would send them without a signature and be refused.
        "parameters": [
            {"name": key, "in": "query", "required": False, "schema": _LABEL,
             "description": f"labels the event when the body has no '{key}'"}
            for key in ("model", "deployment", "version")
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PredictionWebhook"}
            }},
        },
        "security": [{"webhookSignature": []}, {"ingestToken": []}],
        "responses": {
            "200": {"description": "recorded, or a duplicate of a recorded event",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/WebhookRecorded"}}}},
            "400": _error("the client went away before the body was complete"),
            "401": _error("bad, missing or stale signature, or a wrong token"),
            "405": _error("not a POST"),
            "408": _error("the body did not arrive within HOOKWATCH_BODY_TIMEOUT"),
            "413": _error("the body is over HOOKWATCH_MAX_BODY_BYTES"),
            "415": _error("Content-Type is not application/json"),
            "422": _error("not JSON, or JSON that is not a prediction"),
            "503": _error("the database could not store it; retry"),
        },
    }
}


def document_webhook(app: FastAPI) -> None:
    """Add the webhook to app.openapi(), keeping whatever the routers declared."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        if PATH not in schema.setdefault("paths", {}):
            schema["paths"][PATH] = PATH_ITEM
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(SCHEMAS)
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

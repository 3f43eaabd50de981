"""POST /hooks/replicate: a plain Starlette endpoint, kept lean because it is the hot path.

Order of checks: size (413), authentication (401), media type (415), JSON (422), shape (422).
Nothing is stored unless every check passes; a 200 is sent only after the commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hooks.payload import PayloadError, parse_json, read_prediction
from hooks.signature import AuthError
from storage.batch import NewEvent
from storage.writer import WriterUnavailable

if TYPE_CHECKING:
    from hookwatch.runtime import Runtime

log = logging.getLogger("hookwatch.hooks")

# Never stored: they carry credentials.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


class BodyTooLarge(Exception):
    pass


def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": code, "detail": detail}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def receive_webhook(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    metrics = runtime.metrics
    try:
        async with asyncio.timeout(settings.body_timeout):
            body = await read_capped(request, settings.max_body_bytes)
    except BodyTooLarge:
        metrics.webhook("too_large")
        return error(413, "body_too_large", f"the body is over {settings.max_body_bytes} bytes")
    except TimeoutError:
        metrics.webhook("timeout")
        return error(408, "body_timeout", "the body did not arrive in time")
    except ClientDisconnect:
        metrics.webhook("disconnected")
        return error(400, "client_disconnected", "the client went away mid-body")

    now = runtime.clock()
    headers = request.headers
    try:
        auth = runtime.verifier.verify(headers, body, now)
    except AuthError as exc:
        metrics.webhook("unauthorized")
        return error(401, exc.code, exc.detail, {"WWW-Authenticate": "Bearer"})

    if not is_json_media_type(headers.get("content-type")):
        metrics.webhook("unsupported_media_type")
        return error(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        fields = read_prediction(parse_json(body), request.query_params)
    except PayloadError as exc:
        metrics.webhook(exc.code)
        return error(422, exc.code, exc.detail)

    if auth.webhook_id is not None:
        dedup_key = "id:" + auth.webhook_id
    else:
        digest = hashlib.sha256(body).hexdigest()
        dedup_key = f"tk:{fields['prediction_id']}:{fields['status']}:{digest}"
    kept = {k: v for k, v in headers.items() if k not in SECRET_HEADERS}
    event = NewEvent(
        dedup_key=dedup_key[:300],
        source=auth.method,
        received_at=now,
        sent_at=float(auth.timestamp) if auth.timestamp is not None else None,
        headers=orjson.dumps(kept).decode(),
        body=body,
        **fields,
    )
    try:
        duplicate = await runtime.writer.submit(event)
    except WriterUnavailable:
        metrics.webhook("store_failed")
        return error(
            503, "store_unavailable", "the event could not be stored; retry", {"Retry-After": "1"}
        )
    metrics.webhook("duplicate" if duplicate else "recorded")
    return Response(
        orjson.dumps(
            {"status": "duplicate" if duplicate else "recorded", "id": fields["prediction_id"]}
        ),
        media_type="application/json",
    )

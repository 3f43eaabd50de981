"""POST /hooks/replicate as a bare ASGI handler: the hot path, kept out of FastAPI's stack.

Order of checks: method (405), declared size (413), what authentication can tell from the
headers alone (401: credentials present and well-formed, timestamp within tolerance, token
matching), the bytes buffered across all requests (503, hooks.budget), a stalled writer (503),
then, with the body read, size (413), signature (401), media type (415), JSON (422), shape
(422). What is refused before the body is answered at once and the connection closed, so an
unauthenticated sender never makes the service hold its body. Nothing is stored unless every
check passes; a 200 is sent only after the commit.
The handler reads ASGI messages directly: one Request/Response object pair and FastAPI's
middleware chain cost more per webhook than verifying its signature (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from hookwatch.hooks.budget import ByteBudget, Reservation
from hookwatch.hooks.limits import DEADLINE, RequestDeadline
from hookwatch.hooks.payload import PayloadError, parse_json, read_prediction
from hookwatch.hooks.refusals import Refusals
from hookwatch.hooks.signature import AuthError, Credentials, Verifier
from hookwatch.storage.batch import NewEvent
from hookwatch.storage.writer import Writer, WriterUnavailable

log = logging.getLogger("hookwatch.hooks")

PATH = "/hooks/replicate"
# Never stored: they carry credentials.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Receiver:
    """What the webhook route needs, built by create_app: the verifier, the writer, the clock,
    the body limits and the counter of answers (hookwatch.metrics)."""

    verifier: Verifier
    writer: Writer
    clock: Callable[[], float]
    max_body_bytes: int
    body_timeout: float
    count: Callable[[str], None]  # one call per answer: recorded, duplicate or a refusal code
    refusals: Refusals | None = None  # by reason, per minute, for the dashboard and the log
    budget: ByteBudget = field(default_factory=ByteBudget)  # bodies held at once (hooks.budget)


class Refused(Exception):
    """A request answered with a 4xx (or 503) JSON error; nothing was stored."""

    def __init__(
        self, status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or []


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"),
            *extra,
        ],
    })
    await send({"type": "http.response.body", "body": body})


# The rest of a refused body is never read: the connection is closed instead.
_CLOSE = [(b"connection", b"close")]


def _too_large(limit: int) -> Refused:
    return Refused(413, "body_too_large", f"the body is over {limit} bytes", _CLOSE)


def _too_slow() -> Refused:
    return Refused(408, "body_timeout", "the body did not arrive in time", _CLOSE)


def _busy() -> Refused:
    return Refused(503, "server_busy", "too many webhook bodies are arriving at once; retry",
                   [(b"retry-after", b"1"), *_CLOSE])


def _unauthenticated(exc: AuthError, close: bool) -> Refused:
    extra = [(b"www-authenticate", b"Bearer"), *(_CLOSE if close else [])]
    return Refused(401, exc.code, exc.detail, extra)


async def read_body(
    receive: Receive, declared: str | None, limit: int, timeout: float | None,
    reservation: Reservation | None = None,
) -> bytes:
    """The body, never reading past limit; a trickling sender is cut off after timeout.

    timeout None: the server keeps the request's deadline itself (hooks.limits).
    reservation: grown by each chunk as it arrives (503 past the budget); the caller reserves
    a declared length itself, before reading, and passes None.
    """
    _declared_length(declared, limit)
    # One deadline for the whole body, its first byte included (a sender may send none).
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    message = await _next(receive, deadline)
    body = message.get("body", b"")
    size = len(body)
    if size > limit:  # the first message may already hold more than the cap
        raise _too_large(limit)
    if reservation is not None and not reservation.grow(size):
        raise _busy()
    if not message.get("more_body", False) and message["type"] == "http.request":
        return bytes(body)
    chunks = [body]
    # An http.disconnect message has no more_body, so it ends the loop (checked below).
    while message.get("more_body", False):
        message = await _next(receive, deadline)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if reservation is not None and not reservation.grow(len(chunk)):
            raise _busy()
        chunks.append(chunk)
    if message["type"] == "http.disconnect":
        raise Refused(400, "client_disconnected", "the client went away mid-body")
    return b"".join(chunks)


def _declared_length(declared: str | None, limit: int) -> int | None:
    """The Content-Length, when it is one (ASCII digits; isdigit alone takes '²'); 413 over
    limit, before a long digit string is ever converted."""
    if declared is None or not (declared.isascii() and declared.isdigit()):
        return None
    digits = declared.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise _too_large(limit)
    return int(digits)


async def _next(receive: Receive, deadline: float | None) -> Message:
    if deadline is None:
        return await receive()
    try:
        async with asyncio.timeout_at(deadline):
            return await receive()
    except TimeoutError:
        raise _too_slow() from None


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _ingest(receiver: Receiver, scope: Scope, receive: Receive) -> tuple[str, bool]:
    """Authenticate, parse and commit one webhook: (prediction id, duplicate)."""
    if scope["method"] != "POST":
        raise Refused(405, "method_not_allowed", "webhooks are POSTed",
                      [(b"allow", b"POST")])
    # ASGI header names arrive lower-cased (https://asgi.readthedocs.io/en/latest/specs/www.html).
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    length = _declared_length(headers.get("content-length"), receiver.max_body_bytes)
    try:
        credentials = receiver.verifier.check_headers(headers, receiver.clock())
    except AuthError as exc:
        raise _unauthenticated(exc, close=True) from None
    if receiver.writer.health.stalled:  # it would wait only to be answered 503 (storage.health)
        raise Refused(503, "store_unavailable", "the event could not be stored; retry",
                      [(b"retry-after", b"1"), *_CLOSE])
    reservation = Reservation(receiver.budget)
    if length is not None and not reservation.grow(length):
        raise _busy()
    try:
        return await _ingest_body(receiver, scope, receive, headers, credentials,
                                  None if length is not None else reservation)
    finally:
        reservation.release()


async def _ingest_body(
    receiver: Receiver, scope: Scope, receive: Receive, headers: dict[str, str],
    credentials: Credentials, reservation: Reservation | None,
) -> tuple[str, bool]:
    # Under `hookwatch serve` the server times the request out (hooks.limits); elsewhere, this.
    deadline: RequestDeadline | None = scope.get("extensions", {}).get(DEADLINE)
    try:
        body = await read_body(
            receive, headers.get("content-length"), receiver.max_body_bytes,
            None if deadline is not None else receiver.body_timeout, reservation,
        )
    except Refused:
        if deadline is not None and deadline.expired:  # the server sent its 408 already
            raise _too_slow() from None
        raise
    now = receiver.clock()
    try:
        auth = receiver.verifier.verify_body(credentials, body)
    except AuthError as exc:
        raise _unauthenticated(exc, close=False) from None
    if not is_json_media_type(headers.get("content-type")):
        raise Refused(415, "unsupported_media_type", "Content-Type must be application/json")
    query_string = scope.get("query_string", b"")
    query = dict(parse_qsl(query_string.decode("latin-1"))) if query_string else {}
    try:
        fields = read_prediction(parse_json(body), query)
    except PayloadError as exc:
        raise Refused(422, exc.code, exc.detail) from None

    if auth.webhook_id is not None:
        dedup_key = "id:" + auth.webhook_id  # webhook-id is at most 255 printable characters
    else:
        # Unsigned senders have no message id: the same prediction, status and body is the
        # same delivery. Hashed whole, so a long prediction id never crowds out the body.
        identity = f"{fields['prediction_id']}\0{fields['status']}\0".encode() + body
        dedup_key = "tk:" + hashlib.sha256(identity).hexdigest()
    kept = {k: v for k, v in headers.items() if k not in SECRET_HEADERS}
    event = NewEvent(
        dedup_key=dedup_key,
        source=auth.method,
        received_at=now,
        sent_at=float(auth.timestamp) if auth.timestamp is not None else None,
        headers=orjson.dumps(kept).decode(),
        body=body,
        **fields,
    )
    try:
        duplicate = await receiver.writer.submit(event)
    except WriterUnavailable:
        raise Refused(
            503, "store_unavailable", "the event could not be stored; retry",
            [(b"retry-after", b"1")],
        ) from None
    return fields["prediction_id"], duplicate


async def receive_webhook(receiver: Receiver, scope: Scope, receive: Receive, send: Send
                          ) -> None:
    try:
        prediction_id, duplicate = await _ingest(receiver, scope, receive)
    except Refused as exc:
        receiver.count(exc.code)
        if receiver.refusals is not None:
            receiver.refusals.refused(exc.status, exc.code, receiver.clock())
        body = orjson.dumps({"error": exc.code, "detail": exc.detail})
        await _send_json(send, exc.status, body, exc.headers)
        return
    result = "duplicate" if duplicate else "recorded"
    receiver.count(result)
    if receiver.refusals is not None:
        receiver.refusals.accepted(receiver.clock())
    await _send_json(send, 200, orjson.dumps({"status": result, "id": prediction_id}), [])

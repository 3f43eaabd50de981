"""The webhook channel: the alert as JSON, POSTed and signed with Standard Webhooks.

https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import AfterValidator, BeforeValidator, SecretStr

from hookwatch.hooks.signature import SecretFormatError, parse_secret, sign
from hookwatch.notifiers.base import DEFAULT_TIMEOUT, NotifyError, SendContext, SendResult
from hookwatch.notifiers.body_template import BodyTemplate, BodyTemplateError
from hookwatch.notifiers.fields import ChannelOptions, Secret, Timeout, Url, problem
from hookwatch.notifiers.http import make_client, refused
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import STATUS, context, iso


def _signing_secret(value: SecretStr) -> SecretStr:
    try:
        kind, _ = parse_secret(value.get_secret_value())
    except SecretFormatError:
        kind = None
    if kind != "hmac":
        raise problem("must be a whsec_ signing secret (make one: hookwatch secret)")
    return value


def _body_template(value: object) -> str | None:
    """Checked at start-up: a template that fails, or renders anything but JSON, for a sample
    of each kind of message is a config problem, not a failed delivery at 3 a.m."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):  # a multi-line TOML string is fine, unlike other keys
        raise problem("must be a string: a Jinja2 template that renders JSON")
    try:
        BodyTemplate.checked(value)
    except BodyTemplateError as exc:
        raise problem(str(exc)) from None
    return value


class WebhookOptions(ChannelOptions):
    """[notifiers.NAME] with type = "webhook": a JSON POST signed with Standard Webhooks."""

    type: Literal["webhook"] = "webhook"
    url: Url
    secret: Annotated[Secret, AfterValidator(_signing_secret)]
    timeout: Timeout = DEFAULT_TIMEOUT
    # The receiver's own JSON shape: a Jinja2 template (see README, "Your own webhook body").
    body_template: Annotated[str | None, BeforeValidator(_body_template)] = None

    def secrets(self) -> list[str]:
        # The URL may carry a token in its query or user info; treat all of it as secret.
        values = [self.secret.get_secret_value(), self.url]
        parts = urlsplit(self.url)
        if parts.query:
            values.append(parts.query)
        if parts.password:
            values.append(parts.password)
        return values

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "the receiver"


def build_document(message: AlertMessage, now: float) -> dict[str, Any]:
    """The body: Standard Webhooks' suggested {type, timestamp, data} envelope."""
    values = context(message)
    data = message.to_json()
    data["status"] = STATUS.get(message.kind, message.kind).lower().replace(" ", "_")
    data["title"] = values["title"]
    return {"type": f"alert.{message.kind}", "timestamp": iso(now), "data": data}


def message_id(context: SendContext) -> str:
    """Stable per notification: a retry carries the same webhook-id, so receivers dedupe."""
    if context.notification_id is None:
        return f"msg_hookwatch_test_{uuid.uuid4().hex}"
    return f"msg_hookwatch_{context.notification_id}"


class WebhookNotifier:
    min_interval = 0.0

    def __init__(
        self, name: str, options: WebhookOptions, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = name
        self.options = options
        self._client = make_client(options.timeout, transport)
        source = options.body_template
        self._template = BodyTemplate(source) if source else None

    def destination(self) -> str:
        return f"webhook:{self.options.host}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        document = build_document(message, context.now)
        if self._template is not None:
            try:
                body = self._template.render(message, document)
            except BodyTemplateError as exc:
                raise NotifyError(f"body_template: {exc}", retryable=False) from None
        else:
            body = orjson.dumps(document)
        msg_id = message_id(context)
        timestamp = int(context.now)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.options.secret.get_secret_value(), msg_id, timestamp,
                                      body),
        }
        host = self.options.host
        response = self._client.post(self.options.url, who=host, content=body, headers=headers)
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(http_status=status)
        if 300 <= status < 400:
            # The spec counts redirects as failures; following them would move a signed body.
            raise NotifyError(f"{host} answered HTTP {status} (redirects are not followed)",
                              retryable=False, http_status=status)
        raise refused(host, status=status, body=response.text,
                      retry_after=response.headers.get("retry-after"), now=context.now)

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()

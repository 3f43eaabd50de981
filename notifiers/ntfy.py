"""The ntfy channel: a POST to the topic URL, the text as body, title/priority/tags as headers.

https://docs.ntfy.sh/publish/
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator

from hookwatch.notifiers.base import DEFAULT_TIMEOUT, SendContext, SendResult
from hookwatch.notifiers.fields import ChannelOptions, OptSecret, Timeout, Url, problem
from hookwatch.notifiers.http import make_client, post, refused
from hookwatch.notifiers.limits import cut, cut_bytes, most_that_fit
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.redact import url_secrets
from hookwatch.notifiers.render import context, render

# ntfy.sh keeps messages up to 4096 bytes as text; a longer one becomes an attachment or, on a
# server without attachments, is refused (message-size-limit in the server's config).
BODY_MAX_BYTES = 4096
TITLE_MAX = 250
# https://docs.ntfy.sh/publish/#message-priority: 5 max/urgent ... 1 min.
PRIORITY = {"critical": 5, "error": 4, "warning": 3, "info": 2}
KIND_PRIORITY = {"resolve": 3, "acknowledge": 2, "test": 3}
# Emoji tags: https://docs.ntfy.sh/emojis/
SEVERITY_TAG = {"critical": "rotating_light", "error": "red_circle", "warning": "warning",
                "info": "information_source"}
KIND_TAG = {"resolve": "white_check_mark", "acknowledge": "eyes", "test": "test_tube"}
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _topic_url(value: str) -> str:
    if not urlsplit(value).path.strip("/"):
        raise problem("must be the topic's URL, e.g. https://ntfy.sh/acme-oncall")
    return value


class NtfyOptions(ChannelOptions):
    """[notifiers.NAME] with type = "ntfy": a topic on ntfy.sh or your own ntfy server."""

    type: Literal["ntfy"] = "ntfy"
    url: Annotated[Url, AfterValidator(_topic_url)]
    token: OptSecret = None  # an access token for a protected topic
    timeout: Timeout = DEFAULT_TIMEOUT

    def secrets(self) -> list[str]:
        # On a public server the topic name is the only password there is.
        values = url_secrets(self.url)
        if self.token is not None:
            values.append(self.token.get_secret_value())
        return values


def header_text(value: str) -> str:
    """HTTP headers carry ASCII (httpx refuses anything else); ntfy decodes RFC 2047
    encoded-words in its headers (https://github.com/binwiederhier/ntfy/issues/737)."""
    flat = " ".join(value.split())
    if flat.isascii():
        return flat
    return "=?UTF-8?B?" + base64.b64encode(flat.encode()).decode() + "?="


def priority(message: AlertMessage) -> int:
    return KIND_PRIORITY.get(message.kind, PRIORITY.get(message.severity, 3))


def tags(message: AlertMessage) -> list[str]:
    first = KIND_TAG.get(message.kind) or SEVERITY_TAG.get(message.severity, "bell")
    found = [first, "hookwatch", message.severity, message.rule_kind]
    return [t for t in dict.fromkeys(_TAG_UNSAFE.sub("_", t)[:40] for t in found) if t]


def build_body(message: AlertMessage) -> str:
    """The text, with the most top errors that keep it within BODY_MAX_BYTES."""
    values = context(message)
    errors = message.top_errors if message.kind != "resolve" else []

    def text(n: int) -> str:
        return render("ntfy.txt.j2", message,
                      {**values, "errors": errors[:n], "more": len(errors) - n}).strip()

    shown = most_that_fit(len(errors), lambda n: len(text(n).encode()) <= BODY_MAX_BYTES)
    return cut_bytes(text(shown), BODY_MAX_BYTES)


def build_headers(message: AlertMessage, token: str | None = None) -> dict[str, str]:
    values = context(message)
    headers = {
        "content-type": "text/plain; charset=utf-8",
        # No icon in the title: ntfy shows the first emoji tag in front of it already.
        "Title": header_text(cut(values["title"], TITLE_MAX)),
        "Priority": str(priority(message)),
        "Tags": ",".join(tags(message)),
    }
    link = values["link"]
    if link.startswith(("http://", "https://")) and link.isascii():
        headers["Click"] = link
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class NtfyNotifier:
    min_interval = 0.0

    def __init__(
        self, name: str, options: NtfyOptions, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = name
        self.options = options
        self._client = make_client(options.timeout, transport)

    def destination(self) -> str:
        return f"ntfy:{hashlib.sha256(self.options.url.encode()).hexdigest()[:16]}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        token = self.options.token.get_secret_value() if self.options.token else None
        response = post(self._client, self.options.url, who="ntfy",
                        content=build_body(message).encode(),
                        headers=build_headers(message, token))
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                data = None
            ref = data.get("id") if isinstance(data, dict) else None
            return SendResult(external_ref=str(ref) if ref else None, http_status=status)
        # 400 a bad request, 401/403 a wrong token, 413 too large: permanent.
        # 429 ("limit reached") and 5xx: temporary, honouring Retry-After.
        raise refused("ntfy", status=status, body=response.text,
                      retry_after=response.headers.get("retry-after"), now=context.now)

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()

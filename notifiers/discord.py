"""The Discord channel: an execute-webhook call with one embed; the resolution edits the trigger.

https://discord.com/developers/docs/resources/webhook#execute-webhook
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import AfterValidator, SecretStr

from hookwatch.notifiers.base import (
    DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER,
    SendContext,
    SendResult,
)
from hookwatch.notifiers.fields import (
    Bool,
    ChannelOptions,
    OptText,
    Secret,
    Timeout,
    problem,
    url_ok,
)
from hookwatch.notifiers.http import make_client, refused, request
from hookwatch.notifiers.limits import cut, most_that_fit, units
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.redact import url_secrets
from hookwatch.notifiers.render import context, iso, oneline, render

# Embed limits: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
EMBED_TOTAL_MAX = 6000  # title + description + field names and values + footer (2048) + author
USERNAME_MAX = 80
COLOURS = {"critical": 0xCF222E, "error": 0xBC4C00, "warning": 0x9A6700, "info": 0x0969DA}
RESOLVED_COLOUR, ACKNOWLEDGED_COLOUR = 0x1A7F37, 0x57606A
# Markdown Discord would act on in a value (bold, italics, code, spoilers, quotes, headings,
# masked links, mentions and timestamps); a backslash makes each literal.
_MARKDOWN = set("\\*_~`|<>[]#")


def discord_escape(value: Any) -> str:
    text = "" if value is None else str(value)
    return "".join("\\" + c if c in _MARKDOWN else c for c in text)


def _discord_webhook(value: SecretStr) -> SecretStr:
    url = value.get_secret_value()
    if not url_ok(url) or "/webhooks/" not in urlsplit(url).path:
        raise problem("must be a Discord webhook URL (https://discord.com/api/webhooks/ID/TOKEN)")
    return value


def _username(value: str | None) -> str | None:
    if value is not None and len(value) > USERNAME_MAX:
        raise problem(f"must be at most {USERNAME_MAX} characters")
    return value


class DiscordOptions(ChannelOptions):
    """[notifiers.NAME] with type = "discord": a channel's webhook."""

    type: Literal["discord"] = "discord"
    webhook_url: Annotated[Secret, AfterValidator(_discord_webhook)]
    username: Annotated[OptText, AfterValidator(_username)] = None
    edit_on_resolve: Bool = True
    timeout: Timeout = DEFAULT_TIMEOUT

    def secrets(self) -> list[str]:
        # The token is the last path segment; the URL and its path are all credentials.
        url = self.webhook_url.get_secret_value()
        token = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        return [*url_secrets(url), *([token] if len(token) >= 20 else [])]


def _field(name: str, value: str, *, inline: bool = False) -> dict[str, Any]:
    return {"name": cut(name, FIELD_NAME_MAX) or "\u200b",
            "value": cut(value, FIELD_VALUE_MAX) or "\u200b", "inline": inline}


def _size(embed: dict[str, Any]) -> int:
    """What counts against the 6000: title, description, field names and values, footer."""
    total = units(embed.get("title", "")) + units(embed.get("description", ""))
    total += units(embed.get("footer", {}).get("text", ""))
    total += sum(units(f["name"]) + units(f["value"]) for f in embed.get("fields", []))
    return total


def build_body(message: AlertMessage, *, username: str | None = None) -> dict[str, Any]:
    """One execute-webhook body within every documented limit, however large the message."""
    values = context(message)
    link = values["link"] if values["link"].startswith(("http://", "https://")) else ""
    # A masked link, outside the escaped template: only ')' and spaces would end it.
    link_line = f"\n\n[Open in hookwatch]({quote(link, safe=':/?&=#%+@,;~')})" if link else ""
    if units(link_line) > 500:
        link_line = ""  # the title links there too
    if message.kind == "resolve":
        colour = RESOLVED_COLOUR
    elif message.kind == "acknowledge":
        colour = ACKNOWLEDGED_COLOUR
    else:
        colour = COLOURS.get(message.severity, COLOURS["info"])
    # Parts we choose to keep shorter than Discord allows, so the 6000 in all always leaves
    # room for the description and the top errors.
    embed: dict[str, Any] = {
        "title": cut(values["title"], TITLE_MAX),
        "color": colour,
        "timestamp": iso(message.at),
        "footer": {"text": cut(render("discord_footer.txt.j2", message, values), 300)},
    }
    if link:
        embed["url"] = link
    fields = [
        _field("Severity", cut(message.severity, 100), inline=True),
        _field("Scope", cut(f"{message.scope} {discord_escape(message.scope_name)}", 300),
               inline=True),
        _field("Rule", cut(discord_escape(f"{message.rule} ({message.rule_kind})"), 300),
               inline=True),
    ]
    errors = message.top_errors if message.kind != "resolve" else []
    error_fields = [
        _field(f"{e.count}\u00d7 · {e.fingerprint[:12]}", f"```\n{oneline(e.example, 300)}\n```")
        for e in errors
    ]
    room = EMBED_TOTAL_MAX - _size({**embed, "fields": fields})  # at least 4700
    # The description takes up to 4096, leaving the top errors at least 1000.
    text = render("discord.md.j2", message, values, escape=discord_escape).strip()
    budget = min(DESCRIPTION_MAX, room - 1000) - units(link_line)
    embed["description"] = cut(text, budget) + link_line
    room -= units(embed["description"])

    def fits(n: int) -> bool:
        chosen = error_fields[:n] + ([_more(len(errors) - n)] if n < len(errors) else [])
        return (len(fields) + len(chosen) <= FIELDS_MAX
                and sum(units(f["name"]) + units(f["value"]) for f in chosen) <= room)

    shown = most_that_fit(len(error_fields), fits)
    embed["fields"] = fields + error_fields[:shown]
    if shown < len(errors) and fits(shown):
        embed["fields"].append(_more(len(errors) - shown))
    body: dict[str, Any] = {
        "content": cut(render("discord_content.md.j2", message, values, escape=discord_escape),
                       CONTENT_MAX),
        "embeds": [embed],
        # An error message saying "@everyone" must not ping anyone.
        "allowed_mentions": {"parse": []},
    }
    if username:
        body["username"] = username
    return body


def _more(count: int) -> dict[str, Any]:
    return _field("…", f"and {count} more error{'s' if count != 1 else ''} (see hookwatch)")


def retry_after_from(response: httpx.Response) -> str | None:
    """Discord's 429 body says `retry_after` in seconds (a float, finer than the header).

    https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
    """
    header = response.headers.get("retry-after")
    try:
        data = response.json()
    except ValueError:
        return header
    seconds = data.get("retry_after") if isinstance(data, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return str(min(float(seconds), MAX_RETRY_AFTER))
    return header


class DiscordNotifier:
    # Webhooks allow about 5 requests per 2 seconds each; one a second stays clear of it.
    min_interval = 1.0

    def __init__(
        self, name: str, options: DiscordOptions, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = name
        self.options = options
        self._url = httpx.URL(options.webhook_url.get_secret_value())
        self._client = make_client(options.timeout, transport)

    def destination(self) -> str:
        digest = hashlib.sha256(self.options.webhook_url.get_secret_value().encode())
        return f"discord:{digest.hexdigest()[:16]}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        body = build_body(message, username=self.options.username)
        edit = (message.kind in ("resolve", "acknowledge") and context.thread_ref is not None
                and self.options.edit_on_resolve and context.thread_ref.isdigit())
        if edit:
            assert context.thread_ref is not None
            # Edit the trigger's message in place, so the channel shows the alert's state now;
            # a thread_id in the webhook URL's query must come along.
            url = self._url.copy_with(path=self._url.path.rstrip("/")
                                      + f"/messages/{context.thread_ref}")
            body.pop("username", None)  # not accepted on an edit
            response = self._call("PATCH", url, body, context)
            if response is not None:
                return self._result(response)
            # The trigger's message is gone (deleted): follow with a new one instead.
        # wait=true: Discord answers with the saved message (its id is what the resolution
        # edits); without it a message that fails to save returns no error.
        url = self._url.copy_merge_params({"wait": "true"})
        response = self._call("POST", url, body, context)
        assert response is not None
        return self._result(response)

    def _call(self, method: str, url: httpx.URL, body: dict[str, Any],
              context: SendContext) -> httpx.Response | None:
        response = request(self._client, method, url, who="Discord", json=body)
        status = response.status_code
        if 200 <= status < 300:
            return response
        if method == "PATCH" and status == 404:
            return None
        # 400 invalid body, 401/403/404 a deleted or wrong webhook: permanent. 429 and 5xx: not.
        raise refused("Discord", status=status, body=response.text,
                      retry_after=retry_after_from(response), now=context.now)

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        try:
            data = response.json()
        except ValueError:
            data = None
        ref = str(data.get("id", "")) if isinstance(data, dict) else ""
        # Sent either way; without a snowflake id the resolution follows instead of editing.
        return SendResult(external_ref=ref if ref.isdigit() else None,
                          http_status=response.status_code)

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()

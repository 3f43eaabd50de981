"""The Telegram channel: Bot API sendMessage in HTML parse mode; resolutions reply to the trigger.

https://core.telegram.org/bots/api#sendmessage
"""

from __future__ import annotations

import html
import re
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, StrictInt, WithJsonSchema

from hookwatch.notifiers.base import (
    DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER,
    NotifyError,
    SendContext,
    SendResult,
    short,
)
from hookwatch.notifiers.fields import ChannelOptions, Secret, Timeout, Url, explain, problem
from hookwatch.notifiers.http import make_client, post, refused
from hookwatch.notifiers.limits import cut, most_that_fit, units
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context, render

DEFAULT_API_URL = "https://api.telegram.org"
# "1-4096 characters after entities parsing"; the HTML we send is never shorter than what it
# parses to, so keeping the HTML itself within the limit is enough.
TEXT_MAX = 4096
# A bot token is "123456789:AA…" (the bot's id, a colon, 35 characters of secret).
_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
# A chat id is a number (groups and channels negative) or a channel's @username.
_CHAT = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")


def _bot_token(value: SecretStr) -> SecretStr:
    if not _TOKEN.match(value.get_secret_value()):
        raise problem("must be a bot token from @BotFather (digits, ':', then the secret part)")
    return value


def _chat_id(value: object) -> str:
    if value is None or value == "":
        raise problem("is required")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # chat_id = -1001234567890 without quotes is fine too
    if not isinstance(value, str) or not _CHAT.match(value):
        raise problem("must be a chat id (e.g. -1001234567890) or @channelname")
    return value


class TelegramOptions(ChannelOptions):
    """[notifiers.NAME] with type = "telegram": a bot that is a member of the chat."""

    type: Literal["telegram"] = "telegram"
    bot_token: Annotated[Secret, AfterValidator(_bot_token)]
    chat_id: Annotated[str, BeforeValidator(_chat_id),
                       WithJsonSchema({"type": ["string", "integer"]})]
    api_url: Annotated[Url, AfterValidator(lambda url: url.rstrip("/"))] = DEFAULT_API_URL
    message_thread_id: Annotated[StrictInt | None, Field(ge=1, le=2**53),
                                 explain("must be a whole number from 1 (a forum topic's id)")
                                 ] = None
    timeout: Timeout = DEFAULT_TIMEOUT

    def secrets(self) -> list[str]:
        token = self.bot_token.get_secret_value()
        # The token alone, and as the path segment every request URL carries.
        return [token, f"bot{token}"]


def build_text(message: AlertMessage) -> str:
    """The HTML text: every value escaped, the most top errors that keep it within 4096."""
    values = context(message)
    errors = message.top_errors if message.kind != "resolve" else []

    def text(n: int) -> str:
        shown = {**values, "errors": errors[:n], "more": len(errors) - n}
        return render("telegram.html.j2", message, shown).strip()

    shown = most_that_fit(len(errors), lambda n: units(text(n)) <= TEXT_MAX)
    result = text(shown)
    if units(result) <= TEXT_MAX:
        return result
    # Only values the templates already shorten are left; should they still not fit, the
    # title and summary alone. Cut before escaping (an entity is at most 6 characters, so
    # 60 + 600 characters stay within 4096), never cutting a tag or an entity in half.
    title, summary = cut(values["title"], 60), cut(message.summary, 600)
    return f"<b>{html.escape(title)}</b>\n\n{html.escape(summary)}"


class TelegramNotifier:
    # At most one message a second to a chat, 20 a minute to a group:
    # https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
    def __init__(
        self, name: str, options: TelegramOptions, *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.min_interval = 3.0 if options.chat_id.startswith("-") else 1.0
        self._client = make_client(options.timeout, transport)

    def destination(self) -> str:
        return f"telegram:{self.options.api_url}:{self.options.chat_id}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        body: dict[str, Any] = {
            "chat_id": self.options.chat_id,
            "text": build_text(message),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if self.options.message_thread_id:
            body["message_thread_id"] = self.options.message_thread_id
        reply_to = context.thread_ref if message.kind != "trigger" else None
        if reply_to and reply_to.isdigit():
            # reply_parameters since Bot API 7.0; reply_to_message_id for older self-hosted
            # servers (a newer one reads reply_parameters first). The reply goes out even
            # when the trigger's message was deleted.
            body["reply_parameters"] = {"message_id": int(reply_to),
                                        "allow_sending_without_reply": True}
            body["reply_to_message_id"] = int(reply_to)
            body["allow_sending_without_reply"] = True
        token = self.options.bot_token.get_secret_value()
        url = f"{self.options.api_url}/bot{token}/sendMessage"
        response = post(self._client, url, who="Telegram", json=body)
        data = _json(response)
        status = response.status_code
        if status == 200 and data.get("ok") is True:
            result = data.get("result")
            message_id = result.get("message_id") if isinstance(result, dict) else None
            return SendResult(external_ref=str(message_id) if message_id is not None else None,
                              http_status=status)
        raise _error(status, data, response, context)

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(status: int, data: dict[str, Any], response: httpx.Response,
           context: SendContext) -> NotifyError:
    """Bot API errors: {"ok": false, "error_code", "description", "parameters"}.

    https://core.telegram.org/bots/api#making-requests and #responseparameters
    """
    parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    assert isinstance(parameters, dict)
    retry_after = parameters.get("retry_after")
    header = response.headers.get("retry-after")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        header = str(min(max(float(retry_after), 0.0), MAX_RETRY_AFTER))
    migrated = parameters.get("migrate_to_chat_id")
    if migrated is not None:
        # The group became a supergroup: only a config change helps.
        new_id = short(str(migrated), 30)
        return NotifyError(f'Telegram: the chat moved; set chat_id = "{new_id}"',
                           retryable=False, http_status=status)
    description = data.get("description")
    body = description if isinstance(description, str) else response.text
    if status == 200:  # ok is not true, yet HTTP 200: not the Bot API's answer
        return NotifyError(f"Telegram answered HTTP 200 without ok: {short(body, 200)}",
                           retryable=True, http_status=status)
    return refused("Telegram", status=status, body=body, retry_after=header, now=context.now)

"""Config field types for notifier tables and settings, each naming its own one-line problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

# The error type hookwatch's own validators raise; hookwatch.config prints its text as it is.
PROBLEM = "hookwatch"


def problem(text: str, *, key: str | None = None) -> PydanticCustomError:
    """One sentence for check-config. `key` names the field when a model-wide check raises it.

    The text travels in the context, so braces in it are never read as a template.
    """
    context: dict[str, str] = {"text": text}
    if key is not None:
        context["key"] = key
    return PydanticCustomError(PROBLEM, "{text}", context)


def explain(text: str) -> WrapValidator:
    """Replace whatever pydantic says about a bad value with `text` (constraints stay in the
    JSON Schema)."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise problem(text) from None

    return WrapValidator(check)


def _has_control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def url_ok(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    if port == 0:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(ord(c) <= 32 or ord(c) == 127 for c in value)
    )


def _text(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise problem("is required")
        return None
    if not isinstance(value, str):
        raise problem("must be a string")
    if _has_control(value):
        raise problem("must not contain control characters (line breaks, tabs)")
    return value


def _secret(value: Any, *, required: bool) -> str | None:
    """Like _text, but a problem never quotes the value."""
    if value is None or value == "":
        if required:
            raise problem("is required (an empty value counts as missing)")
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if not isinstance(value, str):
        raise problem("must be a string")
    if _has_control(value) or value != value.strip():
        raise problem("must not contain spaces or control characters at either end")
    return value


def _url(value: Any, *, required: bool) -> str | None:
    """An http(s) URL with a host. Problems never quote it: URLs often carry tokens."""
    if value is None or value == "":
        if required:
            raise problem("is required")
        return None
    if not isinstance(value, str) or not url_ok(value):
        raise problem("must be an http:// or https:// URL with a host")
    return value


def one_or_many(value: Any) -> tuple[Any, ...]:
    """A string or a list of strings; the items are checked by the tuple's item type."""
    if value is None or value == "" or value == []:
        raise problem("is required")
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise problem("must be a string or a list of strings")
    return tuple(value)


Text = Annotated[str, BeforeValidator(lambda v: _text(v, required=True))]
OptText = Annotated[str | None, BeforeValidator(lambda v: _text(v, required=False))]
Secret = Annotated[SecretStr, BeforeValidator(lambda v: _secret(v, required=True))]
OptSecret = Annotated[SecretStr | None, BeforeValidator(lambda v: _secret(v, required=False))]
Url = Annotated[str, BeforeValidator(lambda v: _url(v, required=True))]
OptUrl = Annotated[str | None, BeforeValidator(lambda v: _url(v, required=False))]
Strings = Annotated[tuple[str, ...], BeforeValidator(one_or_many)]
Bool = Annotated[StrictBool, explain("must be true or false")]
Port = Annotated[StrictInt, Field(ge=1, le=65535),
                 explain("must be a whole number from 1 to 65535")]
# Seconds a notifier may wait for its receiver.
Timeout = Annotated[StrictFloat, Field(ge=1, le=60), explain("must be a number from 1 to 60")]


def tag_required(tag: str) -> Callable[[dict[str, Any]], None]:
    """For `json_schema_extra`: the union's tag (`type`, `kind`) has a default in Python, so
    code may leave it out, but the file must say it: the schema lists it as required."""

    def extra(schema: dict[str, Any]) -> None:
        if tag in schema.get("properties", {}):
            required = schema.setdefault("required", [])
            if tag not in required:
                required.insert(0, tag)

    return extra


class ChannelOptions(BaseModel):
    """What every [notifiers.NAME] table takes. A channel's options model subclasses this and
    adds `type: Literal["its-type"]` and its own keys; secrets are SecretStr and never print."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              json_schema_extra=tag_required("type"))
    # Extra words check-config adds after "is required" for a missing key.
    hints: ClassVar[dict[str, str]] = {}

    send_resolved: Bool = True
    # Another notifier's name: where this one's notifications go while it keeps failing
    # (notifiers.health); checked across the notifiers by hookwatch.config.
    fallback: OptText = None

    def secrets(self) -> list[str]:
        """Every value that must never reach a log line (redaction)."""
        return []

"""The generic webhook's optional body_template: a sandboxed Jinja2 template that renders JSON."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hookwatch.notifiers.base import short
from hookwatch.notifiers.message import AlertMessage, Kind, TopError
from hookwatch.notifiers.render import context, duration, iso, oneline, pct, utc

SOURCE_MAX = 100_000
# Every kind of message a template must render; branches on m.kind are checked too.
SAMPLE_KINDS: tuple[Kind, ...] = ("trigger", "reminder", "acknowledge", "resolve", "test")


class BodyTemplateError(ValueError):
    """One line saying what is wrong; it never quotes the rendered body (it holds alert data)."""


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):  # `{{ m.typo|tojson }}` says which name is undefined
        value._fail_with_undefined_error()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    # Sandboxed: a config file's template reads the message, never Python internals.
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters.update(pct=pct, duration=duration, utc=utc, iso=iso, oneline=oneline)
    # `{{ value|tojson }}` is how a template writes a string or object safely into JSON.
    env.policies["json.dumps_function"] = json.dumps
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_default,
                                         "ensure_ascii": False}
    return env


def sample(kind: Kind) -> AlertMessage:
    """A message like the real ones, for checking a template before any alert needs it."""
    at = 1_800_000_000.0
    return AlertMessage(
        kind=kind,
        alert_key="sample-error-rate:deployment:acme/sdxl", alert_id=1,
        rule="sample-error-rate", rule_kind="error_rate", severity="critical",
        scope="deployment", scope_name="acme/sdxl",
        summary="acme/sdxl: 25.0% of predictions failed in the last 10m",
        started_at=at - 600, at=at, value=0.25, threshold=0.2, window_seconds=600,
        counts={"succeeded": 60, "failed": 20, "canceled": 0, "aborted": 0},
        top_errors=[TopError("0123456789abcdef", 20, "CUDA out of memory")],
        resolved_at=at if kind == "resolve" else None,
        acknowledged_by="oncall@example.com" if kind == "acknowledge" else None,
        acknowledge_comment="looking" if kind == "acknowledge" else None,
        dashboard_url="https://hookwatch.example/", alert_url="https://hookwatch.example/alerts/1",
    )


@dataclasses.dataclass(frozen=True)
class BodyTemplate:
    source: str

    @classmethod
    def checked(cls, source: str) -> BodyTemplate:
        """Compile it and render every sample kind, or raise BodyTemplateError."""
        if len(source) > SOURCE_MAX:
            raise BodyTemplateError(f"is longer than {SOURCE_MAX} characters")
        template = cls(source)
        template._compiled()
        for kind in SAMPLE_KINDS:
            try:
                template.render(sample(kind), {"type": f"alert.{kind}"})
            except BodyTemplateError as exc:
                raise BodyTemplateError(f"{exc} (for a sample {kind} message)") from None
        return template

    def _compiled(self) -> Any:
        try:
            return _compile(self.source)
        except TemplateSyntaxError as exc:
            why = short(exc.message or "", 150)
            raise BodyTemplateError(f"is not a valid Jinja2 template: line {exc.lineno}: {why}"
                                    ) from None

    def render(self, message: AlertMessage, document: dict[str, Any]) -> bytes:
        """The body to send: the template's output parsed as JSON, written back compactly."""
        values = {**context(message), "document": document}
        try:
            text = self._compiled().render(values)
        except TemplateError as exc:  # undefined values, sandbox refusals
            raise BodyTemplateError(f"does not render: {short(str(exc), 150)}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise BodyTemplateError(f"does not render: {type(exc).__name__}: "
                                    f"{short(str(exc), 150)}") from None
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BodyTemplateError(
                f"does not render valid JSON (line {exc.lineno} column {exc.colno}: "
                f"{short(exc.msg, 80)})"
            ) from None
        return orjson.dumps(parsed)


@functools.cache
def _compile(source: str) -> Any:
    return _environment().from_string(source)

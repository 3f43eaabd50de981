"""pydantic's validation errors as check-config's lines: one plain sentence per problem."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hookwatch.notifiers.fields import PROBLEM

# pydantic's own error types, said the way the rest of check-config says things. A type not
# listed keeps pydantic's sentence.
_PLAIN = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
}


class ConfigError(Exception):
    """Raised with every problem found, one sentence each. `path`: the file they are in, if
    any; `lines()` prefixes it, as check-config and serve print them."""

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.path = path

    def lines(self) -> list[str]:
        if self.path is None:
            return list(self.problems)
        return [f"{self.path}: {p}" for p in self.problems]


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a table of `model` takes, as the file spells them (aliases included)."""
    names = []
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        names.append(alias if isinstance(alias, str) else info.alias or name)
    return sorted(names)


def unknown_key(key: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    return f"unknown key (expected one of {', '.join(known)})"


def message(error: ErrorDetails, model: type[BaseModel] | None) -> str:
    """The sentence for one error; `model` is the table it happened in, when known."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == PROBLEM:
        return str(context["text"])
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    key = error["loc"][-1] if error["loc"] else ""
    if kind == "missing":
        hints: dict[str, str] = getattr(model, "hints", {}) if model else {}
        return "is required" + hints.get(str(key), "")
    if kind == "extra_forbidden":
        return unknown_key(str(key), field_names(model)) if model else "unknown key"
    return _PLAIN.get(kind, error["msg"])


def model_field(error: ErrorDetails) -> str | None:
    """The key a model-wide check named (problem(..., key=...)), if it did."""
    context = error.get("ctx") or {}
    key = context.get("key") if error["type"] == PROBLEM else None
    return str(key) if key is not None else None


def describe_errors(exc: ValidationError, name_of: Callable[[str], str],
                    model: type[BaseModel] | None = None) -> list[str]:
    """Lines for a flat model (settings): `name_of(field)` says where the field was set."""
    lines: list[str] = []
    for error in exc.errors():
        loc: list[Any] = list(error["loc"])
        extra = model_field(error)
        if extra is not None:
            loc.append(extra)
        where = name_of(str(loc[0])) if loc else "settings"
        where += "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                         for part in loc[1:])
        line = f"{where}: {message(error, model)}"
        if line not in lines:
            lines.append(line)
    return lines

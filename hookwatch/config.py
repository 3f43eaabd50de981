"""The TOML config file: its typed model, ${VAR} expansion, and one problem per line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from hookwatch.alerts.pricing import Pricing
from hookwatch.alerts.rules import (
    KINDS,
    RULE_KINDS,
    AnyRule,
    FileContext,
    Inhibit,
    Rule,
    default_rules,
)
from hookwatch.notifiers.fields import problem
from hookwatch.notifiers.registry import (
    NOTIFIERS,
    NotifierConfig,
    NotifierOptions,
    fallback_problems,
)
from hookwatch.problems import ConfigError, field_names, message, model_field, unknown_key
from hookwatch.settings import ServerSettings
from hookwatch.tomlfile import Loc, expand_env, read_toml

__all__ = ["Config", "ConfigError", "ConfigFile", "load_config", "parse_config"]

_NOTIFIER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def _notifier_name(value: Any) -> Any:
    if not isinstance(value, str) or not _NOTIFIER_NAME.match(value):
        raise problem("a notifier name is 1-100 letters, digits, '_', '-' or '.'")
    return value


NotifierName = Annotated[str, BeforeValidator(_notifier_name)]


class ConfigFile(BaseModel):
    """The whole file, as `hookwatch config-schema` describes it."""

    model_config = ConfigDict(extra="forbid", title="hookwatch config file")

    server: ServerSettings = Field(default_factory=ServerSettings)
    notifiers: dict[NotifierName, NotifierOptions] = Field(default_factory=dict)
    # Without [[rules]], the built-in default rules notify every notifier.
    rules: list[Rule] = Field(default_factory=list)
    inhibit: Inhibit = Field(default_factory=Inhibit)
    pricing: Pricing = Field(default_factory=Pricing)


TOP_LEVEL_KEYS = tuple(ConfigFile.model_fields)


@dataclass
class Config:
    """The checked file: typed notifiers, rules and [inhibit], ready for the service."""

    server: ServerSettings = field(default_factory=ServerSettings)
    notifiers: dict[str, NotifierConfig] = field(default_factory=dict)
    rules: list[AnyRule] = field(default_factory=list)
    inhibit: Inhibit = field(default_factory=Inhibit)
    path: Path | None = None
    pricing: Pricing = field(default_factory=Pricing)


def load_config(path: Path | None, *, env: Mapping[str, str] | None = None) -> Config:
    """Parse and check the whole file; None gives the built-in defaults."""
    if path is None:
        return Config(rules=default_rules())
    return parse_config(read_toml(path), env=env, path=path)


def parse_config(raw: Mapping[str, Any], *, env: Mapping[str, str] | None = None,
                 path: Path | None = None) -> Config:
    """Check a parsed file (a dict, as tomllib gives it); every problem is one line."""
    environ = os.environ if env is None else env
    found: list[tuple[Loc, str]] = []
    expanded = expand_env(dict(raw), (), found, environ)
    names = expanded.get("notifiers")
    context = FileContext(frozenset(names) if isinstance(names, dict) else frozenset())
    model: ConfigFile | None = None
    try:
        model = ConfigFile.model_validate(expanded, context=context)
    except ValidationError as exc:
        # A table with a missing ${VAR} has "" in its place: a check across its keys (Slack's
        # webhook_url or token) would only repeat the same problem in other words.
        unset = {loc[:2] for loc, _text in found}
        found += [(loc, text) for loc, text, across in _located(exc, expanded)
                  if not (across and loc[:2] in unset)]
    found += _duplicate_rules(expanded.get("rules"))
    if model is not None:
        found += [(("notifiers", name, "fallback"), text) for name, text in fallback_problems(
            {name: options.fallback for name, options in model.notifiers.items()})]
    found += _unpriced_spend(expanded)
    if found or model is None:
        raise ConfigError(_lines(found, expanded), path)
    notifiers = {name: NotifierConfig(name, options) for name, options in model.notifiers.items()}
    rules = list(model.rules) if "rules" in model.model_fields_set else default_rules(
        notify=sorted(notifiers))
    return Config(server=model.server, notifiers=notifiers, rules=rules,
                  inhibit=model.inhibit, path=path, pricing=model.pricing)


def _duplicate_rules(rules: Any) -> list[tuple[Loc, str]]:
    if not isinstance(rules, list):
        return []
    seen: set[str] = set()
    found: list[tuple[Loc, str]] = []
    for i, item in enumerate(rules):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str):
            if name in seen:
                found.append((("rules", i, "name"), f"{name!r} is used by an earlier rule"))
            seen.add(name)
    return found


def _unpriced_spend(raw: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """A spend rule with no [pricing.scopes] could never know a spend (alerts.pricing)."""
    rules, pricing = raw.get("rules"), raw.get("pricing")
    scopes = pricing.get("scopes") if isinstance(pricing, dict) else None
    if not isinstance(rules, list) or scopes:
        return []
    return [(("rules", i, "kind"), "a spend rule needs [pricing.scopes] to map its scopes to "
                                   "hardware; without it every spend is unknown")
            for i, item in enumerate(rules) if isinstance(item, dict)
            and item.get("kind") == "spend"]


def _located(exc: ValidationError, raw: Mapping[str, Any]) -> list[tuple[Loc, str, bool]]:
    """Each error at its place in the file, in hookwatch's words: the union tag pydantic puts
    in the location (`rules.0.error_rate.window`) is dropped. The flag: a check across keys."""
    found: list[tuple[Loc, str, bool]] = []
    for error in exc.errors():
        loc: list[Any] = list(error["loc"])
        kind = error["type"]
        table: type[BaseModel] | None = ConfigFile
        text: str | None = None
        section = loc[0] if loc else None
        if section == "notifiers" and len(loc) >= 2:
            item = _get(raw, "notifiers", loc[1])
            tag = item.get("type") if isinstance(item, dict) else None
            if loc[2:3] == ["[key]"]:
                loc = loc[:2]
            elif kind == "union_tag_not_found" and len(loc) == 2:
                loc, text = [*loc, "type"], "is required"
            elif kind == "union_tag_invalid" and len(loc) == 2:
                loc, text = [*loc, "type"], f"must be one of {sorted(NOTIFIERS)}"
            elif kind == "model_attributes_type" and len(loc) == 2:
                text = "must be a table with a type"
            elif isinstance(tag, str) and tag in NOTIFIERS and loc[2:3] == [tag]:
                del loc[2]
                table = _owner(NOTIFIERS[tag].options, loc[2:])
        elif section == "rules" and len(loc) >= 2:
            item = _get(raw, "rules", loc[1])
            tag = item.get("kind") if isinstance(item, dict) else None
            if kind == "union_tag_not_found" and len(loc) == 2:
                loc, text = [*loc, "kind"], f"is required (one of {', '.join(KINDS)})"
            elif kind == "union_tag_invalid" and len(loc) == 2:
                loc, text = [*loc, "kind"], f"{tag!r} is not one of {', '.join(KINDS)}"
            elif isinstance(tag, str) and tag in RULE_KINDS and loc[2:3] == [tag]:
                del loc[2]
                table = _owner(RULE_KINDS[tag], loc[2:])
                if kind == "extra_forbidden" and len(loc) == 3:
                    text = _not_for_kind(str(loc[2]), tag, table)
        elif section == "rules" and kind == "list_type":
            text = "must be an array of tables ([[rules]])"
        elif section == "notifiers" and kind == "dict_type":
            text = "must be a table of [notifiers.NAME] tables"
        elif kind == "extra_forbidden" and len(loc) == 1:
            text = (f"unknown top-level key (expected one of "
                    f"{', '.join(sorted(TOP_LEVEL_KEYS))})")
        elif len(loc) > 1:  # [server], [inhibit], and any table added to ConfigFile
            table = _owner(ConfigFile, loc)
        named = model_field(error)
        if named is not None:
            loc.append(named)
        found.append((tuple(loc), text if text is not None else message(error, table),
                      named is not None))
    return found


def _not_for_kind(key: str, kind: str, table: type[BaseModel] | None) -> str:
    others = {k for model in RULE_KINDS.values() for k in field_names(model)}
    if key in others:
        return f"not valid for kind {kind!r}"
    return unknown_key(key, field_names(table) if table else [])


def _get(raw: Mapping[str, Any], section: str, key: Any) -> Any:
    table = raw.get(section)
    try:
        return table[key] if isinstance(table, dict | list) else None
    except (KeyError, IndexError, TypeError):
        return None


def _owner(model: type[BaseModel], path: list[Any]) -> type[BaseModel]:
    """The model whose table holds the last key of `path` (nested tables like windows[0])."""
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        info = next((f for n, f in model.model_fields.items()
                     if part in (n, f.validation_alias, f.alias)), None)
        inner = _model_in(info.annotation) if info is not None else None
        if inner is None:
            break
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_SECTIONS = {name: rank for rank, name in enumerate(TOP_LEVEL_KEYS, 1)}


def _lines(found: list[tuple[Loc, str]], raw: Mapping[str, Any]) -> list[str]:
    """Render, keep the first line per place (a missing ${VAR} beats "is required"), order by
    file section, then table, then key."""
    notifier_order = {n: i for i, n in enumerate(raw.get("notifiers") or {})} if isinstance(
        raw.get("notifiers"), dict) else {}
    rows: dict[str, tuple[tuple[Any, ...], str]] = {}
    for loc, text in found:
        where = _where(loc, raw)
        if where in rows:
            continue
        section = str(loc[0]) if loc else ""
        if section in ("notifiers", "rules") and len(loc) > 1:  # tables in file order
            rank = notifier_order.get(loc[1], 0) if section == "notifiers" else loc[1]
            order = (_SECTIONS.get(section, 0), rank if isinstance(rank, int) else 0,
                     ".".join(str(p) for p in loc[2:]))
        else:
            order = (_SECTIONS.get(section, 0), 0, ".".join(str(p) for p in loc[1:]))
        rows[where] = (order, f"{where}: {text}")
    return [line for _order, line in sorted(rows.values(), key=lambda row: row[0])]


def _where(loc: Loc, raw: Mapping[str, Any]) -> str:
    def dotted(parts: Loc) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)

    if not loc:
        return "config"
    section = loc[0]
    if section == "notifiers" and len(loc) > 1:
        return f"notifiers.{loc[1]}{dotted(loc[2:])}"
    if section == "rules" and len(loc) > 1 and isinstance(loc[1], int):
        item = _get(raw, "rules", loc[1])
        name = item.get("name") if isinstance(item, dict) else None
        label = f"rules[{loc[1]}]" + (f" ({name})" if isinstance(name, str) else "")
        parts: list[str] = []
        for part in loc[2:]:
            if isinstance(part, int) and parts:
                parts[-1] += f"[{part}]"
            else:
                parts.append(str(part))
        return ": ".join([label, *parts])
    if section == "inhibit" and len(loc) > 1:
        return "inhibit: " + dotted(loc[1:]).lstrip(".")
    return f"{section}{dotted(loc[1:])}"

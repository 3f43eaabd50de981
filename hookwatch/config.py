"""The TOML config file: ${VAR} expansion, unknown-key checks, one problem per line."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
TOP_LEVEL_KEYS = {"server", "notifiers", "rules", "inhibit"}


class ConfigError(Exception):
    """Raised with every problem found, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Config:
    """The parsed file. Notifier and rule objects come from their own packages' parsers."""

    server: dict[str, Any] = field(default_factory=dict)
    notifiers: dict[str, Any] = field(default_factory=dict)
    rules: list[Any] = field(default_factory=list)
    inhibit: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def expand_env(value: Any, where: str, problems: list[str], env: dict[str, str]) -> Any:
    """Replace ${VAR} in every string; a missing variable is a problem, not an empty string."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]", problems, env) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}", problems, env) for k, v in value.items()}
    return value


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def load_server_table(path: Path, *, known: set[str]) -> dict[str, Any]:
    """The [server] table only, for Settings; the rest is checked by load_config."""
    problems: list[str] = []
    raw = read_toml(path)
    server = expand_env(raw.get("server", {}), "server", problems, dict(os.environ))
    if not isinstance(server, dict):
        problems.append("server: must be a table")
        server = {}
    for key in server:
        if key not in known:
            problems.append(f"server.{key}: unknown key")
    if problems:
        raise ConfigError(problems)
    return server


def load_config(path: Path | None, *, env: dict[str, str] | None = None) -> Config:
    """Parse and check the whole file; None gives the built-in defaults."""
    from hookwatch.alerts.rules import default_rules, parse_inhibit, parse_rules
    from hookwatch.notifiers.registry import parse_notifiers

    if path is None:
        return Config(rules=default_rules(), inhibit=parse_inhibit({}, []))
    environ = dict(os.environ) if env is None else env
    problems: list[str] = []
    raw = read_toml(path)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            expected = ", ".join(sorted(TOP_LEVEL_KEYS))
            problems.append(f"{key}: unknown top-level key (expected one of {expected})")
    expanded = expand_env(raw, "config", problems, environ)
    problems[:] = [p.removeprefix("config.") for p in problems]
    notifiers = parse_notifiers(expanded.get("notifiers", {}), problems)
    rules_raw = expanded.get("rules")
    rules = (
        default_rules(notify=sorted(notifiers))
        if rules_raw is None
        else parse_rules(rules_raw, notifier_names=set(notifiers), problems=problems)
    )
    inhibit = parse_inhibit(expanded.get("inhibit", {}), problems)
    if problems:
        raise ConfigError(problems)
    return Config(
        server=expanded.get("server", {}),
        notifiers=notifiers,
        rules=rules,
        inhibit=inhibit,
        path=path,
    )

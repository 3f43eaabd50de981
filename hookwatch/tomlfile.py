"""Reading the TOML config file: its read errors as one line, and ${VAR} expansion."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hookwatch.problems import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Loc = tuple[str | int, ...]  # where in the file: ("notifiers", "mail", "to", 0)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(["no such file"], path) from None
    except IsADirectoryError:
        raise ConfigError(["is a folder, not a file"], path) from None
    except PermissionError:
        raise ConfigError(["not readable (permission denied)"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], path) from None


def expand_env(value: Any, loc: Loc, problems: list[tuple[Loc, str]],
               env: Mapping[str, str]) -> Any:
    """Replace ${VAR} in every string; a missing variable is a problem, not an empty string."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append((loc, f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, (*loc, i), problems, env) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand_env(v, (*loc, k), problems, env) for k, v in value.items()}
    return value

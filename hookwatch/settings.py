"""Service settings: HOOKWATCH_* environment variables over the config file's [server] table.

Every setting has a type and a range; a bad one is refused at start-up and by check-config with
one line naming it (`HOOKWATCH_PORT: ...` or `server.port: ...`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hookwatch.hooks.signature import SecretFormatError, parse_secret
from hookwatch.notifiers.fields import explain, problem, url_ok
from hookwatch.problems import ConfigError, describe_errors
from hookwatch.tomlfile import Loc, expand_env, read_toml

DEFAULT_DATABASE_URL = "sqlite:///./data/hookwatch.db"
ENV_PREFIX = "HOOKWATCH_"


def _database_url(value: str) -> str:
    # The URL may hold a password: the problem never quotes it.
    if not value.startswith(("sqlite", "postgresql")):
        raise problem("must be a sqlite:///… or postgresql+psycopg://… URL")
    return value


def _http_url(value: str | None) -> str | None:
    if value is not None and not url_ok(value):
        raise problem("must be an http:// or https:// URL with a host")
    return value


def _host(value: str) -> str:
    if not value or value != value.strip():
        raise problem("must be a host name or address, e.g. 127.0.0.1 or 0.0.0.0")
    return value


# Lax types: the environment gives strings ("8000"), the file numbers; both are read alike.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False),
                    explain("must be a number of seconds greater than 0")]
# 0 allowed: reconcile_after = 0 looks up every unfinished prediction at once.
Wait = Annotated[float, Field(ge=0, allow_inf_nan=False),
                 explain("must be a number of seconds, 0 or more")]
# How often a scheduler job runs: under 0.1 s the process does little but wake up.
Interval = Annotated[float, Field(ge=0.1, le=86400),
                     explain("must be a number of seconds from 0.1 to 86400")]
Port = Annotated[int, Field(ge=1, le=65535), explain("must be a whole number from 1 to 65535")]
Flag = Annotated[bool, explain("must be true or false")]


class ServerSettings(BaseModel):
    """Every setting the [server] table may hold (HOOKWATCH_<NAME> in the environment)."""

    model_config = ConfigDict(extra="forbid")

    database_url: Annotated[str, AfterValidator(_database_url)] = DEFAULT_DATABASE_URL
    # Space-separated in the environment; a string or an array in the file.
    webhook_secrets: Annotated[list[SecretStr], NoDecode, WithJsonSchema({"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}}]})] = Field(
        default_factory=list)
    ingest_token: SecretStr | None = None
    signature_tolerance: Annotated[
        int, Field(ge=1, le=86400), explain("must be a whole number of seconds from 1 to 86400")
    ] = 300
    dashboard_token: SecretStr | None = None
    # Look, never change (a wall screen); hookwatch/access.py, SECURITY.md.
    viewer_token: SecretStr | None = None
    public_badges: Flag = False
    # Where `serve` keeps the dashboard token it makes; default: the SQLite database's folder.
    data_dir: Path | None = None
    replicate_api_token: SecretStr | None = None
    replicate_api_url: Annotated[str, AfterValidator(_http_url)] = "https://api.replicate.com/v1"

    host: Annotated[str, AfterValidator(_host)] = "127.0.0.1"
    port: Port = 8000
    public_url: Annotated[str | None, AfterValidator(_http_url)] = None
    # More host names people may reach the dashboard under (besides the public URL's, the
    # listen address's, localhost and IP addresses), space-separated; a DNS rebinding guard.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: Annotated[
        int, Field(ge=1, le=1 << 30), explain("must be a whole number of bytes from 1 to "
                                              "1073741824 (1 GiB)")
    ] = 1024 * 1024
    body_timeout: Seconds = 10.0
    # Bytes of webhook bodies held at once, all requests together; past it, 503 (hooks.budget).
    max_buffered_bytes: Annotated[
        int, Field(ge=1), explain("must be a whole number of bytes, 1 or more")
    ] = 64 * 1024 * 1024
    # A commit under way this long answers its waiting webhooks 503 (storage.health).
    commit_stall_after: Seconds = 3.0
    # FULL: an acknowledged event survives power loss; NORMAL: survives a process crash only.
    # https://www.sqlite.org/pragma.html#pragma_synchronous
    sqlite_synchronous: Annotated[Literal["FULL", "NORMAL"], explain("must be FULL or NORMAL")] = (
        "FULL")
    # Seconds a statement waits for another process's SQLite write lock (storage.engine).
    sqlite_busy_timeout: Wait = 30.0
    batch_max: Annotated[
        int, Field(ge=1, le=100_000), explain("must be a whole number from 1 to 100000")
    ] = 256
    # Commit batches in a process of their own (storage/writer_child.py), off the GIL.
    writer_process: Flag = True
    evaluate_interval: Interval = 15.0
    deliver_interval: Interval = 2.0
    reconcile_after: Wait = 600.0
    reconcile_interval: Interval = 60.0
    retention_days: Annotated[
        int, Field(ge=1, le=36500), explain("must be a whole number of days from 1 to 36500")
    ] = 30
    delivery_max_age: Seconds = 24 * 3600.0
    show_payloads: Flag = False
    auto_migrate: Annotated[bool | None, explain("must be true or false")] = None

    @field_validator("webhook_secrets", "allowed_hosts", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.split()
        return value

    @field_validator("webhook_secrets")
    @classmethod
    def _secret_format(cls, value: list[SecretStr]) -> list[SecretStr]:
        for i, secret in enumerate(value, 1):
            try:
                parse_secret(secret.get_secret_value())
            except SecretFormatError as exc:  # its message never quotes the secret
                raise problem(f"secret {i} of {len(value)}: {exc}") from None
        return value

    @field_validator("ingest_token", "dashboard_token", "viewer_token", "replicate_api_token",
                     "data_dir", "public_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class Settings(BaseSettings, ServerSettings):
    """Everything the service reads at start-up. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    config: Path | None = None

    @field_validator("config", mode="before")
    @classmethod
    def _no_config(cls, value: Any) -> Any:
        return None if value == "" else value  # HOOKWATCH_CONFIG= means none

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments (the CLI's, a test's) win over the environment.
        return (init_settings, env_settings)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_server_table(path: Path) -> dict[str, Any]:
    """The config file's [server] table, checked; the rest of the file is hookwatch.config's."""
    raw = read_toml(path)
    unset: list[tuple[Loc, str]] = []
    server = expand_env(raw.get("server", {}), ("server",), unset, os.environ)
    lines = [f"server{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in loc[1:])}: "
             f"{text}" for loc, text in unset]
    if not isinstance(server, dict):
        lines.append("server: must be a table")
    elif not lines:
        try:
            ServerSettings.model_validate(server)
        except ValidationError as exc:
            lines = sorted(describe_errors(exc, lambda field: f"server.{field}", ServerSettings))
    if lines:
        raise ConfigError(lines, path)
    return dict(server)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the config file's [server] table underneath.

    Precedence: explicit overrides > environment > config file > defaults. Every problem, in
    any of them, is one line of the ConfigError raised.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        env_set = Settings()  # the environment alone
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, env_name, ServerSettings)) from None
    path = given.get("config", env_set.config)
    file_values = {} if path is None else load_server_table(Path(path))
    merged: dict[str, Any] = dict(file_values)
    merged.update({name: getattr(env_set, name) for name in env_set.model_fields_set})
    merged.update(given)
    merged["config"] = path

    def source(field: str) -> str:
        if field in given:
            return f"--{field.replace('_', '-')}"
        return env_name(field) if field in env_set.model_fields_set else f"server.{field}"

    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source, ServerSettings)) from None

"""Service settings: HOOKWATCH_* environment variables over the config file's [server] table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_DATABASE_URL = "sqlite:///./data/hookwatch.db"


class Settings(BaseSettings):
    """Everything the service reads at start-up. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix="HOOKWATCH_", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    config: Path | None = None
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    ingest_token: SecretStr | None = None
    signature_tolerance: int = 300
    dashboard_token: SecretStr | None = None
    # Look, never change (a wall screen); hookwatch/access.py, SECURITY.md.
    viewer_token: SecretStr | None = None
    public_badges: bool = False
    # Where `serve` keeps the dashboard token it makes; default: the SQLite database's folder.
    data_dir: Path | None = None
    replicate_api_token: SecretStr | None = None
    replicate_api_url: str = "https://api.replicate.com/v1"

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    # More host names people may reach the dashboard under (besides the public URL's, the
    # listen address's, localhost and IP addresses), space-separated; a DNS rebinding guard.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 1024 * 1024
    body_timeout: float = 10.0
    # FULL: an acknowledged event survives power loss; NORMAL: survives a process crash only.
    # https://www.sqlite.org/pragma.html#pragma_synchronous
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    batch_max: int = 256
    # Commit batches in a process of their own (storage/writer_child.py), off the GIL.
    writer_process: bool = True
    evaluate_interval: float = 15.0
    deliver_interval: float = 2.0
    reconcile_after: float = 600.0
    reconcile_interval: float = 60.0
    retention_days: int = 30
    delivery_max_age: float = 24 * 3600.0
    show_payloads: bool = False
    auto_migrate: bool | None = None

    @field_validator("webhook_secrets", "allowed_hosts", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.split()
        return value

    @field_validator("ingest_token", "dashboard_token", "viewer_token", "replicate_api_token",
                     "data_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

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


def _settings_env_names() -> set[str]:
    return set(Settings.model_fields)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the config file's [server] table underneath.

    Precedence: explicit overrides > environment > config file > defaults.
    """
    from hookwatch.config import load_server_table

    probe = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if probe.config is None:
        return probe
    file_values = load_server_table(probe.config, known=_settings_env_names())
    env_set = Settings()  # the environment alone
    merged: dict[str, Any] = dict(file_values)
    for name in Settings.model_fields:
        if name in env_set.model_fields_set:
            merged[name] = getattr(env_set, name)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    merged["config"] = probe.config
    return Settings(**merged)

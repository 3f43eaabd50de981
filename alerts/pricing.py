"""The [pricing] table: dollars per second of each hardware SKU, which scopes run on which SKU,
and the spend estimate (billed predict seconds x price), null for a scope with no SKU."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hookwatch.alerts.inhibit import model_of_version
from hookwatch.alerts.rules import number
from hookwatch.notifiers.fields import problem

DEFAULT_AS_OF = "2026-12-02"
"""When DEFAULT_HARDWARE was read from https://replicate.com/pricing (public hardware)."""
DEFAULT_HARDWARE: Mapping[str, float] = {
    "cpu": 0.000100,
    "gpu-t4": 0.000225,
    "gpu-a40-small": 0.000575,
    "gpu-a40-large": 0.000725,
    "gpu-a40-large-2x": 0.001450,
    "gpu-a40-large-4x": 0.002900,
    "gpu-a40-large-8x": 0.005800,
    "gpu-l40s": 0.000975,
    "gpu-2x-l40s": 0.001950,
    "gpu-4x-l40s": 0.003900,
    "gpu-8x-l40s": 0.007800,
    "gpu-a100-large": 0.001400,
    "gpu-a100-large-2x": 0.002800,
    "gpu-a100-large-4x": 0.005600,
    "gpu-a100-large-8x": 0.011200,
    "gpu-h100": 0.001525,
    "gpu-h100-2x": 0.003050,
    "gpu-h100-4x": 0.006100,
    "gpu-h100-8x": 0.012200,
}


def _date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()  # TOML's bare dates: as_of = 2026-11-01
    if not isinstance(value, str) or len(value) != 10 or not _is_date(value):
        raise problem(f"{value!r} is not a date such as \"2026-11-01\"")
    return value


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _table(example: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise problem(f"must be a table, e.g. {example}")
        return value

    return BeforeValidator(check)


def _sku(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise problem('must be a hardware SKU such as "gpu-a100-large"')
    return value


def _with_defaults(given: dict[str, float]) -> dict[str, float]:
    return {**DEFAULT_HARDWARE, **given}


Price = Annotated[float, Field(ge=0, lt=1), number(0, 1, high_open=True)]
Sku = Annotated[str, BeforeValidator(_sku)]


class Pricing(BaseModel):
    """[pricing]. `hardware`: $/s per SKU, the built-in table with the file's entries over it.
    `scopes`: glob -> SKU in the file's order; the first glob matching a model or deployment
    name wins, and a version runs on its model's hardware."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: Annotated[str, BeforeValidator(_date)] = DEFAULT_AS_OF
    hardware: Annotated[dict[str, Price], _table('"gpu-a100-large" = 0.0014'),
                        AfterValidator(_with_defaults)] = Field(
        default_factory=lambda: dict(DEFAULT_HARDWARE))
    scopes: Annotated[dict[str, Sku], _table('"acme/sdxl*" = "gpu-a100-large"')] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> Pricing:
        unknown = sorted({sku for sku in self.scopes.values() if sku not in self.hardware})
        if unknown:
            raise problem(f"{', '.join(map(repr, unknown))} not in the hardware table (known: "
                          f"{', '.join(sorted(self.hardware))}; add others under "
                          "[pricing.hardware])", key="scopes")
        return self

    def sku(self, scope: str, name: str) -> str | None:
        target = model_of_version(name) if scope == "version" else name
        if not target:
            return None
        for glob, sku in self.scopes.items():
            if fnmatchcase(target, glob):
                return sku
        return None

    def price(self, scope: str, name: str) -> float | None:
        """$/s of the scope's hardware; None when no glob maps it (never a guess)."""
        sku = self.sku(scope, name)
        return self.hardware.get(sku) if sku is not None else None

    def spend(self, scope: str, name: str, predict_seconds: float) -> float | None:
        price = self.price(scope, name)
        return None if price is None else predict_seconds * price

"""Spend rules: dollars spent on a scope over a window, billed predict seconds x the price of
its hardware (alerts.pricing); no verdict is ever guessed for a scope with no hardware."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hookwatch.alerts.duration import format_duration
from hookwatch.alerts.pricing import Pricing
from hookwatch.alerts.rules import Rule, SpendRule
from hookwatch.storage.rates import ScopeKey
from hookwatch.storage.usage import Usage

Judged = tuple[bool | None, float | None, Callable[[], str]]


def usage_windows(rules: Iterable[Rule]) -> set[float]:
    return {rule.window for rule in rules if isinstance(rule, SpendRule)}


def dollars(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}".rstrip("0").rstrip(".")


def judge_spend(rule: SpendRule, key: ScopeKey, usage: Usage | None, pricing: Pricing) -> Judged:
    """Breach while the window's spend is over the threshold. An unmapped scope is judged
    clear with a summary that says why, so a spend alert whose mapping was removed ends."""
    sku = pricing.sku(*key)
    price = pricing.hardware.get(sku) if sku is not None else None
    if sku is None or price is None:
        return False, None, lambda: "spend unknown: no hardware for this scope in " \
                                    "[pricing.scopes]"
    used = usage or Usage()
    if used.predictions < rule.min_predictions:
        return None, None, lambda: (f"{used.predictions} billed predictions over "
                                    f"{format_duration(rule.window)}, under "
                                    f"{rule.min_predictions}, no verdict")
    spent = used.seconds * price
    return spent > rule.threshold, spent, lambda: (
        f"spend {dollars(spent)} (threshold {dollars(rule.threshold)}) over "
        f"{format_duration(rule.window)}: "
        f"{used.seconds:,.0f} s of predict time on {sku} at ${price:g}/s "
        f"(prices as of {pricing.as_of})")

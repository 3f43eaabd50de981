"""Inhibition: a firing model alert mutes the same kind's alerts on that model's
deployments and versions (a broader alert covers the narrower ones)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hookwatch.storage.rates import ScopeKey

Inhibitors = dict[tuple[str, str], str]  # (rule kind, model) -> what mutes, for display


def model_of_version(name: str) -> str | None:
    """A version scope is named "model:version" (storage.rollups.scope_names)."""
    model, sep, _version = name.rpartition(":")
    return model if sep and model else None


def inhibitors(firing: Iterable[tuple[str, str, str, str]]) -> Inhibitors:
    """From (rule kind, scope, name, rule name) of firing alerts, the model ones."""
    found: Inhibitors = {}
    for kind, scope, name, rule in firing:
        if scope == "model":
            found.setdefault((kind, name), f"inhibited by {rule} on model {name}")
    return found


def models_needed(candidates: Iterable[tuple[str, ScopeKey]], active: Inhibitors) -> set[str]:
    """Deployments whose models must be looked up: only those that could be inhibited."""
    kinds = {kind for kind, _model in active}
    return {name for kind, (scope, name) in candidates
            if scope == "deployment" and kind in kinds}


def inhibited_by(
    kind: str,
    key: ScopeKey,
    active: Inhibitors,
    deployment_models: Mapping[str, set[str]],
) -> str | None:
    scope, name = key
    if scope == "version":
        model = model_of_version(name)
        models = {model} if model else set()
    elif scope == "deployment":
        models = deployment_models.get(name, set())
    else:
        return None
    for model in sorted(models):
        if (kind, model) in active:
            return active[(kind, model)]
    return None

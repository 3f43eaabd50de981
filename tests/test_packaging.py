"""The lock file pins every dependency pyproject names, at versions its ranges admit."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned with ==: {line}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock (run `make lock`)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement.name}=={pins[name]} is outside {requirement.specifier}")


def test_the_dockerfile_installs_the_lock_before_the_sources() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    lock = next(i for i, x in enumerate(lines) if "pip install -r requirements.lock" in x)
    first_source = next(i for i, x in enumerate(lines) if x.startswith("COPY hookwatch"))
    assert lock < first_source
    assert any("pip install --no-deps ." in x for x in lines[first_source:])

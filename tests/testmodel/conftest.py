"""Fixtures for the bundled test model's tests: the model loaded from testmodel/predict.py."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MODEL_DIR = Path(__file__).resolve().parents[2] / "testmodel"


def load_model_module(name: str = "hookwatch_testmodel_predict") -> ModuleType:
    """Import testmodel/predict.py by path, as Cog does, under a name no other test uses."""
    spec = importlib.util.spec_from_file_location(name, MODEL_DIR / "predict.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (cog.BaseModel) look their module up here
    spec.loader.exec_module(module)
    return module


def call_predict(predictor: Any, **inputs: Any) -> Any:
    """predict() with each omitted input at its declared default, as Cog would fill it."""
    params = inspect.signature(predictor.predict).parameters
    for name, param in params.items():
        if name not in inputs:
            inputs[name] = getattr(param.default, "default", param.default)
    return predictor.predict(**inputs)


@pytest.fixture(scope="session")
def model() -> Iterator[ModuleType]:
    yield load_model_module()

"""The test model's outcomes, run through its Predictor directly on the CPU."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
from types import ModuleType
from typing import Any

import pytest

from tests.testmodel.conftest import MODEL_DIR, call_predict

# torch 2.x's caching-allocator message, as a real CUDA OOM prints it.
SIZE = r"\d+(?:\.\d\d)? (?:bytes|KiB|MiB|GiB)"
OOM_RE = re.compile(
    rf"^CUDA out of memory\. Tried to allocate {SIZE}\. GPU \d+ has a total capacity of {SIZE} "
    rf"of which {SIZE} is free\. Including non-PyTorch memory, this process has {SIZE} memory "
    r"in use\. .*PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
)


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def predictor(model: ModuleType, torch: Any) -> Any:
    p = model.Predictor()
    p.setup()
    # CPU on the machines these tests were written on; CUDA where a GPU and a CUDA torch exist.
    assert p.device == ("cuda" if torch.cuda.is_available() else "cpu")
    return p


@pytest.fixture
def pure_predictor(model: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same model as it runs where torch is not installed."""
    monkeypatch.setenv("HOOKWATCH_TESTMODEL_NO_TORCH", "1")
    p = model.Predictor()
    p.setup()
    assert p.torch is None and p.device == "python"
    return p


def expected_checksum(torch: Any, seed: int, size: int) -> float:
    """mean(P / std(P)) for P = A @ B, A and B drawn as the model draws them, in one product."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.rand(size, size, generator=gen)
    b = torch.rand(size, size, generator=gen)
    p = a @ b
    return float((p / p.std()).mean())


def test_success_returns_the_declared_output(model: ModuleType, predictor: Any, torch: Any) -> None:
    out = call_predict(predictor, outcome="success", seed=7, size=48, log_lines=0)
    assert isinstance(out, model.Output)
    assert (out.outcome, out.device, out.size) == ("success", predictor.device, 48)
    # The block-wise product the model logs from must equal the plain product.
    assert out.checksum == pytest.approx(expected_checksum(torch, 7, 48), rel=1e-4)
    assert out.elapsed_ms >= 0


def test_the_matrices_follow_the_seed(predictor: Any) -> None:
    a = call_predict(predictor, outcome="success", seed=1, size=32)
    b = call_predict(predictor, outcome="success", seed=1, size=32)
    c = call_predict(predictor, outcome="success", seed=2, size=32)
    assert a.checksum == b.checksum
    assert a.checksum != c.checksum


def test_log_lines_are_printed_while_working(
    predictor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    call_predict(predictor, outcome="success", seed=3, size=16, log_lines=5)
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [s.split(":")[0] for s in steps] == [f"step {i}/5" for i in range(1, 6)]
    # More lines than matrix columns: the extra lines still come.
    call_predict(predictor, outcome="success", seed=3, size=2, log_lines=4)
    out = capsys.readouterr().out
    assert sum(line.startswith("step ") for line in out.splitlines()) == 4


def test_sleep_delays_the_prediction(predictor: Any) -> None:
    out = call_predict(predictor, outcome="success", sleep=0.3, size=8)
    assert out.elapsed_ms >= 300


def test_error_raises(model: ModuleType, predictor: Any) -> None:
    with pytest.raises(model.TestModelError, match=r"failed on purpose \(outcome=error, seed=5\)"):
        call_predict(predictor, outcome="error", seed=5, size=8)


def test_cuda_oom_raises_torchs_error_type_and_words(predictor: Any, torch: Any) -> None:
    with pytest.raises(torch.OutOfMemoryError) as info:
        call_predict(predictor, outcome="cuda_oom", size=8)
    # One class in torch 2.x: code that catches either spelling catches this.
    assert isinstance(info.value, torch.cuda.OutOfMemoryError)
    assert OOM_RE.match(str(info.value)), str(info.value)


def test_nan_fails_the_finiteness_check(model: ModuleType, predictor: Any) -> None:
    with pytest.raises(model.NonFiniteOutputError, match="nan"):
        call_predict(predictor, outcome="nan", size=16)


def test_bad_return_type_returns_what_cog_cannot_encode(
    model: ModuleType, predictor: Any, torch: Any
) -> None:
    out = call_predict(predictor, outcome="bad_return_type", seed=4, size=8)
    assert not isinstance(out, model.Output)
    assert isinstance(out, torch.Tensor)
    # coglet encodes outputs with the json module; this is the TypeError that fails the prediction.
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps(out)


def test_random_follows_failure_rate_and_seed(model: ModuleType, predictor: Any) -> None:
    def outcome_of(seed: int, rate: float) -> str:
        try:
            out = call_predict(
                predictor, outcome="random", failure_rate=rate, seed=seed, size=4, log_lines=0
            )
        except Exception as exc:
            return type(exc).__name__
        return str(out.outcome) if isinstance(out, model.Output) else "unencodable"

    assert {outcome_of(s, 0.0) for s in range(20)} == {"success"}
    # Every failure kind shows up, each the way its own outcome fails; never hang or crash.
    assert {outcome_of(s, 1.0) for s in range(40)} == {
        "TestModelError",
        "OutOfMemoryError",
        "NonFiniteOutputError",
        "unencodable",
    }
    half = [outcome_of(s, 0.5) for s in range(200)]
    share = sum(o != "success" for o in half) / len(half)
    assert 0.35 < share < 0.65
    assert [outcome_of(s, 0.5) for s in range(10)] == half[:10]  # the seed decides


def test_inputs_outside_the_schema_are_refused(predictor: Any) -> None:
    # coglet without a built schema passes any input through; the model checks them itself.
    for bad in (
        {"outcome": "explode"},
        {"failure_rate": 1.5},
        {"sleep": -1.0},
        {"size": 0},
        {"log_lines": -2},
    ):
        with pytest.raises(ValueError, match="must be"):
            call_predict(predictor, **bad)


def test_without_torch_the_same_outcomes_hold(
    model: ModuleType, pure_predictor: Any, torch: Any
) -> None:
    out = call_predict(pure_predictor, outcome="success", seed=9, size=12, log_lines=1)
    assert isinstance(out, model.Output) and out.device == "python"
    # The pure-Python product against torch's, over the same matrices.
    rng = random.Random(9)
    a = torch.tensor([[rng.random() for _ in range(12)] for _ in range(12)], dtype=torch.float64)
    b = torch.tensor([[rng.random() for _ in range(12)] for _ in range(12)], dtype=torch.float64)
    p = a @ b
    assert out.checksum == pytest.approx(float((p / p.std()).mean()), rel=1e-9)

    with pytest.raises(RuntimeError) as info:
        call_predict(pure_predictor, outcome="cuda_oom", size=4)
    assert type(info.value).__name__ == "OutOfMemoryError"
    assert OOM_RE.match(str(info.value))

    with pytest.raises(model.NonFiniteOutputError):
        call_predict(pure_predictor, outcome="nan", size=4)
    raw = call_predict(pure_predictor, outcome="bad_return_type", size=3)
    assert isinstance(raw, bytes) and len(raw) == 9 * 8
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps(raw)
    assert math.isfinite(out.checksum)


RUNNER = textwrap.dedent(
    """
    import inspect, sys
    sys.path.insert(0, sys.argv[1])
    import predict
    p = predict.Predictor()
    p.setup()
    inputs = {n: getattr(v.default, "default", v.default)
              for n, v in inspect.signature(p.predict).parameters.items()}
    inputs.update(outcome=sys.argv[2], size=4)
    p.predict(**inputs)
    print("returned", flush=True)
    """
)


def run_outcome(outcome: str) -> subprocess.Popen[str]:
    env = dict(os.environ, HOOKWATCH_TESTMODEL_NO_TORCH="1")  # a quicker start; same code path
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(MODEL_DIR), outcome],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_crash_kills_the_process_abruptly() -> None:
    proc = run_outcome("crash")
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, out
    assert "crashing the worker process now" in out
    assert "returned" not in out


def test_hang_does_not_return() -> None:
    proc = run_outcome("hang")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(timeout=3)
        assert proc.poll() is None  # still sleeping
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    assert "chosen=hang" in out and "returned" not in out

"""The bundled chaos test model: a Cog predictor whose inputs choose how a prediction ends."""

import itertools
import math
import os
import random
import signal
import struct
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from cog import BaseModel, BasePredictor, Input

OUTCOMES = [
    "success",
    "error",
    "cuda_oom",
    "nan",
    "bad_return_type",
    "hang",
    "crash",
    "random",
]
# What `random` may turn into when it fails. hang and crash are left out on purpose: they take
# the Cog server's only worker out of service, which is never what a "failure_rate" dial means.
RANDOM_FAILURES = ["error", "cuda_oom", "nan", "bad_return_type"]

# Long enough to outlive any sane client or platform deadline (Replicate's is far shorter).
HANG_SECONDS = 24 * 3600.0
GIB = 1024**3


def _load_torch() -> Any | None:
    """torch when it is installed, else None: the model must run on a bare Cog install too."""
    if os.environ.get("HOOKWATCH_TESTMODEL_NO_TORCH") == "1":
        # Lets tests exercise the pure-Python path on a machine that does have torch.
        return None
    try:
        with warnings.catch_warnings():
            # A CPU torch without numpy warns "Failed to initialize NumPy" on import; the model
            # never hands tensors to numpy, so keep that noise out of every prediction's logs.
            warnings.simplefilter("ignore", UserWarning)
            import torch
    except ImportError:
        return None
    return torch


class TestModelError(RuntimeError):
    """The plain failure the `error` outcome raises, as a model bug would."""


class NonFiniteOutputError(ValueError):
    """A statistic came out NaN or infinite: the check a real model makes before returning."""


class _FallbackOutOfMemoryError(RuntimeError):
    """Stands in for torch.OutOfMemoryError when torch is absent, so the message reads alike."""


# Cog reports the exception's class name in the prediction error; keep torch's spelling.
_FallbackOutOfMemoryError.__name__ = "OutOfMemoryError"
_FallbackOutOfMemoryError.__qualname__ = "OutOfMemoryError"


def format_size(n: int) -> str:
    """torch's c10 format_size(): bytes, KiB, MiB or GiB with two decimals."""
    if n <= 1024:
        return f"{n} bytes"
    if n <= 1024**2:
        return f"{n / 1024:.2f} KiB"
    if n <= GIB:
        return f"{n / 1024**2:.2f} MiB"
    return f"{n / GIB:.2f} GiB"


def oom_message(
    tried: int, total: int, free: int, allocated: int, reserved_unallocated: int, device: int = 0
) -> str:
    """The text of torch 2.x's CUDA caching-allocator OOM error for the same numbers."""
    return (
        f"CUDA out of memory. Tried to allocate {format_size(tried)}. GPU {device} has a total "
        f"capacity of {format_size(total)} of which {format_size(free)} is free. Including "
        f"non-PyTorch memory, this process has {format_size(total - free)} memory in use. Of the "
        f"allocated memory {format_size(allocated)} is allocated by PyTorch, and "
        f"{format_size(reserved_unallocated)} is reserved by PyTorch but unallocated. If reserved "
        "but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF="
        "expandable_segments:True to avoid fragmentation.  See documentation for Memory "
        "Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
    )


# What the CPU stand-in reports: an 80 GB card (as torch sizes an H100) that is nearly full.
SIMULATED_GPU_TOTAL = 85_045_870_592
SIMULATED_GPU_FREE = 19_660_800


class Output(BaseModel):
    """What a successful prediction returns; the declared type `bad_return_type` violates."""

    outcome: str
    device: str
    size: int
    checksum: float
    elapsed_ms: float


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.torch = _load_torch()
        if self.torch is not None and self.torch.cuda.is_available():
            self.device = "cuda"
        elif self.torch is not None:
            self.device = "cpu"
        else:
            self.device = "python"
        print(f"testmodel ready on {self.device}", flush=True)

    def predict(
        self,
        outcome: str = Input(
            default="success", choices=OUTCOMES, description="How this prediction ends."
        ),
        failure_rate: float = Input(
            default=0.5,
            ge=0.0,
            le=1.0,
            description="With outcome=random: the chance of a failure (error, cuda_oom, nan "
            "or bad_return_type, picked evenly).",
        ),
        sleep: float = Input(
            default=0.0, ge=0.0, le=600.0, description="Seconds to sleep before the work."
        ),
        seed: int = Input(
            default=-1, description="Seed for outcome=random and the matrices; -1 picks one."
        ),
        log_lines: int = Input(
            default=3, ge=0, le=10_000, description="How many log lines to print while working."
        ),
        size: int = Input(
            default=256, ge=1, le=16_384, description="Side of the square matrices multiplied."
        ),
    ) -> Output:
        started = time.monotonic()
        _check_inputs(outcome, failure_rate, sleep, log_lines, size)
        if seed < 0:
            seed = random.SystemRandom().randrange(2**31)
        rng = random.Random(seed)
        chosen = outcome
        if outcome == "random":
            chosen = rng.choice(RANDOM_FAILURES) if rng.random() < failure_rate else "success"
        print(f"outcome={outcome} chosen={chosen} seed={seed} device={self.device}", flush=True)

        if sleep > 0:
            time.sleep(sleep)

        if chosen == "crash":
            print("crashing the worker process now", flush=True)
            sys.stdout.flush()
            # SIGKILL cannot be caught, like the kernel's OOM killer or a segfaulting extension.
            os.kill(os.getpid(), signal.SIGKILL)
            os._exit(137)  # only reached where SIGKILL is not delivered at once
        if chosen == "hang":
            _hang(HANG_SECONDS)

        product = self._matmul(size, seed, log_lines)

        if chosen == "error":
            raise TestModelError(f"testmodel failed on purpose (outcome={outcome}, seed={seed})")
        if chosen == "cuda_oom":
            self._out_of_memory()
        if chosen == "nan":
            # (x - x) / std(x - x) is 0/0: a NaN produced by the tensor maths itself, like a
            # diverged model's normalisation, not a hand-written float("nan").
            statistic = self._normalised_mean(product, lambda t: t - t)
        else:
            statistic = self._normalised_mean(product, lambda t: t)
        # The check a real model makes before it hands a broken result back.
        if not math.isfinite(statistic):
            raise NonFiniteOutputError(f"output statistic is {statistic}: refusing to return it")

        result = Output(
            outcome=chosen,
            device=self.device,
            size=size,
            checksum=statistic,
            elapsed_ms=round((time.monotonic() - started) * 1000, 3),
        )
        if chosen == "bad_return_type":
            # Declared `-> Output`, returns the raw tensor (raw bytes without torch): the classic
            # slip of handing back the model's tensor. Cog cannot encode it and fails the
            # prediction ("Failed to serialize output: TypeError: ...").
            return _raw_result(product)  # type: ignore[return-value]
        return result

    def _matmul(self, size: int, seed: int, log_lines: int) -> Any:
        """Multiply two seeded size x size matrices, logging `log_lines` lines along the way."""
        steps = max(log_lines, 1)
        if self.torch is not None:
            torch = self.torch
            gen = torch.Generator(device="cpu").manual_seed(seed)
            a = torch.rand(size, size, generator=gen).to(self.device)
            b = torch.rand(size, size, generator=gen).to(self.device)
            acc = torch.zeros(size, size, device=self.device)
            # Split the product into column blocks so log lines arrive while it works.
            bounds = _blocks(size, steps)
            for i, (lo, hi) in enumerate(bounds):
                acc[:, lo:hi] = a @ b[:, lo:hi]
                if i < log_lines:
                    print(f"step {i + 1}/{log_lines}: columns {lo}:{hi}", flush=True)
            for i in range(len(bounds), log_lines):
                print(f"step {i + 1}/{log_lines}", flush=True)
            if self.device == "cuda":
                torch.cuda.synchronize()
            return acc
        gen_py = random.Random(seed)
        a_rows = [[gen_py.random() for _ in range(size)] for _ in range(size)]
        b_rows = [[gen_py.random() for _ in range(size)] for _ in range(size)]
        b_cols = list(zip(*b_rows, strict=True))
        out: list[list[float]] = []
        bounds = _blocks(size, steps)
        for i, (lo, hi) in enumerate(bounds):
            out.extend(
                [sum(x * y for x, y in zip(row, col, strict=True)) for col in b_cols]
                for row in a_rows[lo:hi]
            )
            if i < log_lines:
                print(f"step {i + 1}/{log_lines}: rows {lo}:{hi}", flush=True)
        for i in range(len(bounds), log_lines):
            print(f"step {i + 1}/{log_lines}", flush=True)
        return out

    def _normalised_mean(self, product: Any, transform: Callable[[Any], Any]) -> float:
        """mean(t / std(t)) for t = transform(product): finite for a healthy product."""
        if self.torch is not None:
            t = transform(product)
            return float((t / t.std()).mean().item())
        flat = [transform(v) for row in product for v in row]
        n = len(flat)
        mean = sum(flat) / n
        var = sum((v - mean) ** 2 for v in flat) / max(n - 1, 1)
        std = math.sqrt(var)
        # Plain floats raise ZeroDivisionError where a tensor yields NaN; keep tensor semantics.
        return sum(v / std if std else math.nan for v in flat) / n

    def _out_of_memory(self) -> None:
        """Run out of GPU memory for real on CUDA; raise torch's error, same words, elsewhere."""
        torch = self.torch
        if torch is not None and self.device == "cuda":
            free, _total = torch.cuda.mem_get_info()
            # One block larger than everything free: the caching allocator must refuse it and
            # raises torch.OutOfMemoryError itself. Nothing stays allocated afterwards.
            torch.empty(int(free + 2 * GIB), dtype=torch.uint8, device="cuda")
            raise AssertionError("allocating past free GPU memory did not fail")  # pragma: no cover
        # Tried to allocate more than the card holds, as `cuda_oom` does on a real GPU.
        total, free = SIMULATED_GPU_TOTAL, SIMULATED_GPU_FREE
        in_use = total - free
        message = oom_message(
            free + 2 * GIB, total, free, allocated=in_use - GIB, reserved_unallocated=GIB // 2
        )
        if torch is not None:
            raise torch.OutOfMemoryError(message)
        raise _FallbackOutOfMemoryError(message)


def _check_inputs(
    outcome: str, failure_rate: float, sleep: float, log_lines: int, size: int
) -> None:
    """Check what the schema would: coglet without a built schema accepts any input."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if not 0.0 <= failure_rate <= 1.0:
        raise ValueError(f"failure_rate must be within 0..1, not {failure_rate}")
    if not 0.0 <= sleep <= 600.0:
        raise ValueError(f"sleep must be within 0..600 seconds, not {sleep}")
    if not 0 <= log_lines <= 10_000:
        raise ValueError(f"log_lines must be within 0..10000, not {log_lines}")
    if not 1 <= size <= 16_384:
        raise ValueError(f"size must be within 1..16384, not {size}")


def _raw_result(product: Any) -> Any:
    """The product as the model holds it: a tensor, or the bytes of the pure-Python matrix."""
    if isinstance(product, list):
        return b"".join(struct.pack("<d", v) for row in product for v in row)
    return product


def _blocks(size: int, steps: int) -> list[tuple[int, int]]:
    """Split range(size) into at most `steps` contiguous, non-empty blocks."""
    steps = max(1, min(steps, size))
    edges = [round(i * size / steps) for i in range(steps + 1)]
    return [(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]


def _hang(seconds: float) -> None:
    """Sleep in short steps: a cancel (an exception injected into this thread) still lands."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)

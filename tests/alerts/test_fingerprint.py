"""The fingerprint masking table: what varies between occurrences is masked, the gist stays."""

from __future__ import annotations

import pytest

from hookwatch.storage.fingerprint import MAX_LENGTH, fingerprint

OOM = ("CUDA out of memory. Tried to allocate <n> GiB (GPU <n>; <n> GiB total capacity; "
       "<n> GiB already allocated; <n> MiB free)")
TRACEBACK = """Traceback (most recent call last):
  File "/src/.venv/lib/python3.11/site-packages/cog/server/worker.py", line 221, in _predict
    result = predict(**payload)
  File "/src/predict.py", line {line}, in predict
    x = torch.empty({size}, device="cuda")
RuntimeError: CUDA error: an illegal memory access was encountered at 0x{addr}
"""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # numbers, decimals, exponents and numbers with units
        ("CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 79.35 GiB total capacity; "
         "74.12 GiB already allocated; 512.00 MiB free)", OOM),
        ("loss is nan at step 1200, lr=1e-4", "loss is nan at step <n>, lr=<n>"),
        ("request timed out after 30s (limit 300s)", "request timed out after <n>s (limit <n>s)"),
        ("expected shape torch.Size([1, 77, 768]) got [-1, 77]",
         "expected shape torch.Size([<n>, <n>, <n>]) got [<n>, <n>]"),
        ("upstream 10.0.3.17:8080 refused the connection",
         "upstream <n>:<n> refused the connection"),
        # identifiers keep their digits: they name the thing, not an occurrence
        ("layer3 of resnet50 needs sm_80 (CUDA11)", "layer3 of resnet50 needs sm_80 (CUDA11)"),
        # ids
        ("prediction 4f5c6d2a-1b2c-4d3e-8f9a-0b1c2d3e4f5a failed",
         "prediction <uuid> failed"),
        ("segfault at 0x7f3a2b1c in libcuda.so", "segfault at <hex> in libcuda.so"),
        ("version 5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa is gone",
         "version <hex> is gone"),
        ("the cafe and the deadbeef facade", "the cafe and the deadbeef facade"),
        ("at 2026-05-01T12:00:03.123Z the worker died", "at <time> the worker died"),
        ("at 2026-05-01 12:00:03+00:00 the worker died", "at <time> the worker died"),
        # paths and URLs
        ("FileNotFoundError: [Errno 2] No such file or directory: /src/weights/model.bin",
         "FileNotFoundError: [Errno <n>] No such file or directory: <path>"),
        (r"cannot open C:\models\sdxl\unet.safetensors", "cannot open <path>"),
        ("GET https://api.replicate.com/v1/files/abc123?x=1 returned 404",
         "GET <url> returned <n>"),
        # quoted values
        ("KeyError: 'prompt_strength'", "KeyError: '<str>'"),
        ('invalid value "blue-ish" for field "color"',
         'invalid value "<str>" for field "<str>"'),
        # whitespace collapses
        ("  NaN   in\n output\t ", "NaN in output"),
    ],
)
def test_masking_table(error: str, expected: str) -> None:
    assert fingerprint(error) == expected


def test_tracebacks_group_by_their_exception_line() -> None:
    one = fingerprint(TRACEBACK.format(line=42, size=10**9, addr="7f00aa11"))
    two = fingerprint(TRACEBACK.format(line=57, size=12, addr="7f00bb22"))
    assert one == two == (
        "RuntimeError: CUDA error: an illegal memory access was encountered at <hex>")
    other = fingerprint(TRACEBACK.replace("RuntimeError: CUDA error: an illegal memory access",
                                          "ValueError: bad input").format(line=1, size=1,
                                                                          addr="1a2b3c4d"))
    assert other != one


def test_same_error_different_numbers_same_fingerprint() -> None:
    a = fingerprint("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 1; 1.5 GiB free)")
    b = fingerprint("CUDA out of memory. Tried to allocate 1.25 GiB (GPU 0; 0.01 GiB free)")
    assert a == b == "CUDA out of memory. Tried to allocate <n> GiB (GPU <n>; <n> GiB free)"


def test_long_errors_are_cut() -> None:
    assert len(fingerprint("x" * 5000)) == MAX_LENGTH

"""Top-error labels in notifications: short hashes of the fingerprint."""

from __future__ import annotations

from hookwatch.notifiers.message import TopError


def test_top_error_labels_are_hashes_not_slices_of_the_masked_text() -> None:
    a = TopError(fingerprint="CUDA out of memory. Tried <n> GiB", count=3, example="x")
    b = TopError(fingerprint="CUDA out of memory. Tried <n> MiB", count=1, example="y")
    assert len(a.label) == 8 and all(c in "0123456789abcdef" for c in a.label)
    assert a.label != b.label and "CUDA" not in a.label

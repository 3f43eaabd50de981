"""read_prediction's text fields: capped, with logs keeping their newest end."""

from __future__ import annotations

from hookwatch.hooks.payload import MAX_ERROR, MAX_LOGS, read_prediction


def test_long_logs_keep_their_tail_whatever_their_json_type() -> None:
    lines = [f"step {i}" for i in range(3000)]
    as_text = read_prediction({"id": "p", "status": "processing", "logs": "\n".join(lines)}, {})
    as_list = read_prediction({"id": "p", "status": "processing", "logs": lines}, {})
    assert len(as_text["logs"]) == MAX_LOGS and as_text["logs"].endswith("step 2999")
    assert len(as_list["logs"]) == MAX_LOGS and as_list["logs"].endswith('"step 2999"]')


def test_long_errors_keep_their_head() -> None:
    error = {"message": "CUDA out of memory", "trace": "x" * (2 * MAX_ERROR)}
    got = read_prediction({"id": "p", "status": "failed", "error": error}, {})
    assert len(got["error"]) == MAX_ERROR and got["error"].startswith('{"message": "CUDA')


def test_cogs_doubled_prefix_is_said_once() -> None:
    doubled = "Prediction failed: Prediction failed: OutOfMemoryError: CUDA out of memory"
    got = read_prediction({"id": "p", "status": "failed", "error": doubled}, {})
    assert got["error"] == "Prediction failed: OutOfMemoryError: CUDA out of memory"
    single = read_prediction({"id": "p", "status": "failed", "error": got["error"]}, {})
    assert single["error"] == got["error"]


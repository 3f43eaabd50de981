"""The status page, /api/status, badges and /metrics."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

"""Alert and silence endpoints: /api/alerts, acknowledge, /api/silences."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

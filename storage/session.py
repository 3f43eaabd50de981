"""The FastAPI dependencies of storage: the app's engine and one database session per request.

`get_engine` is a placeholder that `hookwatch.app.create_app` binds to the app's engine
(`app.dependency_overrides`, FastAPI's own per-app binding), so routers below the shell take a
session without knowing the shell.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy import Engine
from sqlmodel import Session


def get_engine() -> Engine:
    raise LookupError("no engine: this app was not built by hookwatch.app.create_app")


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

"""FastAPI dependencies: short `Annotated` aliases for what handlers need. They are coroutines because
FastAPI runs a plain function dependency on a worker thread, a thread hop per request for a lookup."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from gateway.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def correlation_id(request: Request) -> str:
    """The sender's X-Correlation-Id, or a new one (the middleware echoes whichever is used)."""
    value = request.headers.get("x-correlation-id") or getattr(request.state, "correlation_id", None)
    if not value:
        value = str(uuid.uuid4())
    request.state.correlation_id = value
    return str(value)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CorrelationDep = Annotated[str, Depends(correlation_id)]

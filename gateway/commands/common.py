"""What the commands share: the store opened from the settings for the length of a command, JSON
output, times typed on the command line, and who a command's action is recorded as."""

from __future__ import annotations

import getpass
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.encoders import jsonable_encoder

from gateway.errors import Issue, MalformedInput
from gateway.settings import Settings
from gateway.store import Store


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[Store]:
    store = Store(settings.store_url, settings.store.batch_max, settings.store.db_schema)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


def print_json(data: Any) -> None:
    plain = asdict(data) if is_dataclass(data) and not isinstance(data, type) else data
    print(json.dumps(jsonable_encoder(plain)), flush=True)


def when(text: str | None) -> datetime | None:
    """An ISO 8601 time from the command line (no zone: UTC)."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedInput(f"'{text}' is not an ISO 8601 time", Issue(str(exc), "time", "value")) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def operator(by: str | None) -> str:
    """Who an action from the command line is recorded as."""
    return by or f"cli:{getpass.getuser()}"


def clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"

"""The store tests run on each store: SQLite on disk, and PostgreSQL where a server answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.settings import StoreSettings
from gateway.store.store import Store


@pytest.fixture
async def store(store_settings: StoreSettings, tmp_path: Path) -> AsyncIterator[Store]:
    started = Store(store_settings.url or f"sqlite+aiosqlite:///{tmp_path}/store.db", schema=store_settings.db_schema)
    await started.start()
    yield started
    await started.stop()

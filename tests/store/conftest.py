"""The store tests run on each store: SQLite on disk, and PostgreSQL where a server answers."""

from __future__ import annotations

import pytest

from gateway.store.store import Store


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store

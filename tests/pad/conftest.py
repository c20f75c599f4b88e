"""The pad's integration tests run against SQLite only: the store is tested on both stores by the
core's own tests, and the pad adds nothing store-specific."""

from __future__ import annotations

import pytest

from gateway.settings import StoreSettings


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()

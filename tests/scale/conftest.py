"""Fixtures for scale-out tests: a PostgreSQL schema of the test's own, shared by several stores or
gateway processes, as production shares one database between replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, drop_schema, postgres_answers


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema name (created by the first store that starts), dropped after the test."""
    if not postgres_answers():
        pytest.skip(f"no PostgreSQL server answers at {make_url(POSTGRES_URL).render_as_string()}")
    schema = f"scale_{uuid.uuid4().hex[:12]}"
    yield schema
    asyncio.run(drop_schema(schema))

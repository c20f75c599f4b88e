"""The store's Alembic migrations: `env.py`, the revision template and `versions/`. See README.md."""

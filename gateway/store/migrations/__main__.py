"""`python -m gateway.store.migrations "what changed"`: write the next revision from `tables.py`.

Autogenerate compares the tables with a scratch SQLite database brought to the current head, so no
server is needed. `--initial` replaces every revision with one initial revision made from the
tables as they are now: only for before the first release, when no database anywhere holds them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import Script
from sqlalchemy import create_engine

from gateway.store.migrate import MIGRATIONS_DIR, alembic_config

VERSIONS = MIGRATIONS_DIR / "versions"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.store.migrations", description=__doc__)
    parser.add_argument("message", help="what the revision changes, e.g. 'add audit table'")
    parser.add_argument("--initial", action="store_true", help="replace all revisions with one initial revision")
    args = parser.parse_args(argv)
    if args.initial:
        for old in VERSIONS.glob("*.py"):
            old.unlink()
    path = _autogenerate(args.message, f"{len(list(VERSIONS.glob('*.py'))) + 1:04d}")
    if path is None:
        print("tables.py and the migrations agree: no revision written")
        return 0
    _tidy(path)
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


def _autogenerate(message: str, rev_id: str) -> Path | None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{scratch}/scratch.db")
        try:
            with engine.begin() as conn:
                config = alembic_config(conn)
                config.attributes["skip_empty"] = True
                command.upgrade(config, "head")
                script = command.revision(config, message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    return Path(script.path) if isinstance(script, Script) else None


def _tidy(path: Path) -> None:
    """Lint and format the new file as the rest of the code base (ruff, if installed)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff:
        subprocess.run([ruff, "check", "--fix", "--quiet", str(path)], check=False)
        subprocess.run([ruff, "format", "--quiet", str(path)], check=False)


if __name__ == "__main__":
    sys.exit(main())

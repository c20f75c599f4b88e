"""The tests pytest collects in the default run, and which its markers skip, by pytest's own
collection in a subprocess (`pytest --collect-only` with tests/safety/collect_plugin.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def collected(root: Path = REPO, *args: str) -> dict[str, str | None]:
    """Node id → None when the default run runs it, else why a marker skips it; a module that fails
    to collect is listed by its path, so a control naming one of its tests is told why it is missing.
    Raises when pytest does not get as far as collecting."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "collected.json"
        env = {**os.environ, "SAFETY_COLLECTED": str(out), "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tests.safety.collect_plugin"]
        command += ["-p", "no:cacheprovider", "--continue-on-collection-errors", *args]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode not in (0, 1) or not out.exists():
            raise AssertionError(f"pytest could not collect the suite (exit {done.returncode}):\n{done.stdout[-3000:]}")
        found: dict[str, str | None] = json.loads(out.read_text())
    return found

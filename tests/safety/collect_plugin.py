"""A pytest plugin for `tests/safety/collection.py`: after collection, writes each collected node id
and whether its markers skip it (skip, skipif, xfail with run=False) to the file SAFETY_COLLECTED
names, as JSON; a module that fails to collect is written under its path with the reason. Loaded
only by that subprocess (`-p tests.safety.collect_plugin`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _pytest.skipping import evaluate_skip_marks, evaluate_xfail_marks

_ERRORS: dict[str, str] = {}


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _ERRORS[report.nodeid] = "the module fails to collect"


def pytest_collection_finish(session: pytest.Session) -> None:
    out = os.environ.get("SAFETY_COLLECTED")
    if not out:
        return
    found: dict[str, str | None] = dict(_ERRORS)
    for item in session.items:
        skip = evaluate_skip_marks(item)
        xfail = evaluate_xfail_marks(item)
        if skip is not None:
            found[item.nodeid] = f"skip marker: {skip.reason or 'no reason given'}"
        elif xfail is not None and not xfail.run:
            found[item.nodeid] = f"xfail marker (not run): {xfail.reason or 'no reason given'}"
        else:
            found[item.nodeid] = None
    Path(out).write_text(json.dumps(found))

"""The search parameters of a FHIR search request, checked against what a resource supports.

Result parameters (`_count`, `_format`, ...) are left to the caller; an unknown parameter is refused
rather than ignored, so a typo never widens a search to every record.
"""

from __future__ import annotations

from collections.abc import Collection

from fastapi import Request

from gateway.errors import Issue, MalformedInput


def parameters(request: Request, supported: Collection[str]) -> list[tuple[str, str]]:
    found = []
    for name, value in request.query_params.multi_items():
        if name.startswith("_"):
            continue
        if name not in supported:
            raise MalformedInput(
                f"search parameter '{name}' is not supported",
                Issue(f"supported: {', '.join(supported)}", name, "not-supported"),
            )
        found.append((name, value))
    return found

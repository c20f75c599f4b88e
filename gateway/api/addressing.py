"""Where the FHIR API is and which version a request names: the base URL for Location and
Content-Location headers, and the version in an If-Match ETag. Below every FHIR router (fhir.py,
tasks.py, audit_events.py, pad.py), so none of them imports another for these.
"""

from __future__ import annotations

from fastapi import Request

from gateway.errors import Issue, MalformedInput


def base_url(request: Request) -> str:
    configured = request.app.state.runtime.settings.api.base_url
    return f"{configured.rstrip('/')}/fhir" if configured else str(request.base_url).rstrip("/") + "/fhir"


def version_from_etag(etag: str | None) -> int | None:
    if etag is None:
        return None
    value = etag.removeprefix("W/").strip('"')
    if not value.isdigit():
        raise MalformedInput('If-Match must be an ETag such as W/"1"', Issue(f"If-Match '{etag}'", "If-Match", "value"))
    return int(value)

"""What every FHIR route says about addresses and versions: the server's base URL (as configured, or
as the request reached it) and the version an `If-Match` ETag names.

The routers of each resource share these, and the CapabilityStatement reads none of them, so this
module imports no router: `fhir`, `tasks` and `audit_events` depend on it, never on each other.
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

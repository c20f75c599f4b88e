"""The routing dry run: the referrals accepted over the last days, routed again through a candidate
ruleset and directory, and every one whose destination would change.

    candidate(NEW_DIR, schemas)   NEW_DIR laid over the schemas in force (a new routing/rules.json, a new
                                  directory/, or both), loaded and checked as start-up would check it
    replay(store, router, since)  each stored ServiceRequest through the candidate router: the
                                  destination it had (service and topic) against the one it would get

Reads the store only: nothing is written, published or sent. Must not: change the configuration in
force (a deployment changes its files and restarts, which records the load: configuration.py).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.errors import GatewayError
from gateway.routing import Router, load_router
from gateway.safety.limits import load_wait_limits
from gateway.store import Store
from gateway.store.routed import Routed, accepted_since


@dataclass(frozen=True)
class Changed:
    referral_id: str
    identifier: str
    created_at: datetime
    before: str  # "service (topic, rule r)" as routed then
    after: str  # as the candidate would route it, or "unroutable: why"


@dataclass(frozen=True)
class DryRun:
    since: datetime
    candidate: str  # the candidate's versions
    replayed: int
    changed: list[Changed]


def candidate(new_dir: Path, schemas_dir: Path) -> Router:
    """The router NEW_DIR makes, with whatever it does not hold taken from `schemas_dir`; ValueError
    (from the loaders) when it does not fit together, as the gateway would refuse it at start-up."""
    if not new_dir.is_dir():
        raise ValueError(f"{new_dir} is not a directory (give one laid out like schemas/: routing/, directory/)")
    with tempfile.TemporaryDirectory(prefix="routing-check-") as tmp:
        merged = Path(tmp) / "schemas"
        shutil.copytree(schemas_dir, merged)
        shutil.copytree(new_dir, merged, dirs_exist_ok=True)
        router = load_router(merged)
        load_wait_limits(merged, router.directory)  # fallbacks must still name services with endpoints
    return router


async def replay(store: Store, router: Router, since: datetime) -> DryRun:
    accepted = await accepted_since(store, since)
    changed = [c for c in (_compare(r, router) for r in accepted) if c is not None]
    versions = f"{router.version}, directory {router.directory.version}"
    return DryRun(since, versions, len(accepted), changed)


def _compare(routed: Routed, router: Router) -> Changed | None:
    before = f"{routed.service or 'service not recorded'} ({routed.topic}, rule {routed.rule})"
    try:
        decision = router.route(ServiceRequest.model_validate_json(routed.resource))
    except GatewayError as error:
        reasons = "; ".join(i.diagnostics for i in error.issues) or error.message
        return Changed(routed.id, routed.identifier, routed.created_at, before, f"unroutable: {reasons}")
    if (decision.service, decision.topic) == (routed.service, routed.topic):
        return None
    after = f"{decision.service} ({decision.topic}, rule {decision.rule})"
    return Changed(routed.id, routed.identifier, routed.created_at, before, after)

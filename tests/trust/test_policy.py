"""The route policy is one table and covers every route: a route added without an entry makes this
test fail (and the guard refuses it at run time). Also: the rules say what they should."""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts

from gateway.app import create_app
from gateway.auth import policy
from gateway.auth.guard import guard
from gateway.auth.principal import SCOPES
from gateway.settings import Settings

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/fhir/metadata"),
    ("GET", "/fhir/MessageDefinition"),  # BaRS discovery: which messages are taken
    ("GET", "/fhir/MessageDefinition/{definition_id}"),
    ("GET", "/pad/static/pad.css"),
    ("POST", "/oauth2/token"),
    ("GET", "/signin"),
    ("POST", "/signin"),
}


def routes() -> list[tuple[str, str, RouteContext]]:
    app = create_app(Settings())
    return [
        (method, str(context.path), context)
        for context in iter_route_contexts(app.routes)
        for method in sorted(context.methods or {"(any)"})
    ]


def effective_dependant(context: RouteContext) -> Dependant | None:
    """The dependant FastAPI runs for a route as included in the app (its app- and router-level
    dependencies merged in). Routers are included lazily, so `context.route` is the route as its
    router declared it, without the app's dependencies: reading that one would miss the guard."""
    dependant = getattr(context, "dependant", None)
    return dependant if isinstance(dependant, Dependant) else None


def test_every_route_of_the_app_has_a_policy_entry() -> None:
    missing = [f"{method} {path}" for method, path, _ in routes() if policy.rule_for(method, path) is None]
    assert not missing, f"routes with no entry in gateway/auth/policy.py (refused until added): {missing}"


def test_every_route_is_guarded_by_the_app_level_dependency() -> None:
    unguarded = []
    for method, path, context in routes():
        dependant = effective_dependant(context)
        calls = [d.call for d in dependant.dependencies] if dependant is not None else []
        if guard not in calls:
            unguarded.append(f"{method} {path}")
    assert not unguarded, f"routes the guard does not run for: {unguarded}"


def test_the_table_names_no_route_the_app_lacks() -> None:
    present = {(method, path) for method, path, _ in routes()}
    assert set(policy.POLICY) - present == set()


def test_only_liveness_discovery_static_and_credential_doors_are_public() -> None:
    public = {key for key, rule in policy.POLICY.items() if rule.public}
    assert public == PUBLIC
    assert all(policy.POLICY[key].why for key in public), "each public route says why"


def test_every_guarded_rule_names_known_scopes() -> None:
    for key, rule in policy.POLICY.items():
        assert rule.public or rule.scopes, key
        assert rule.scopes <= set(SCOPES), key


def test_session_cookies_are_taken_on_web_pages_only() -> None:
    cookie = {path for (_, path), rule in policy.POLICY.items() if rule.cookie}
    assert all(path.startswith(("/pad", "/monitor", "/signout")) for path in cookie), cookie
    assert not any(path.startswith("/fhir") for path in cookie)

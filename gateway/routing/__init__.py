"""Routing: which service and topic a referral goes to, decided by data in schemas/.

    schemas/routing/rules.json      ordered rules: the first match names a service and a topic
    schemas/routing/criteria.json   acceptance criteria services publish: accept, triage or return
    schemas/directory/              the service directory (FHIR Organization, HealthcareService,
                                    Location, Endpoint): every service a rule may name

`Router.route` is pure. It returns a `RouteDecision` naming the rule that matched and why (carried
in the event headers and the referral's history), or raises `UnroutableReferral` saying why not.
"""

from gateway.routing.directory import Directory, load_directory
from gateway.routing.router import RouteDecision, Router, load_router

__all__ = ["Directory", "RouteDecision", "Router", "load_directory", "load_router"]

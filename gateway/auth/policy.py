"""THE route policy: every HTTP route of the gateway and who may call it. One table, read by the
one app-level dependency (guard.py); a route missing here is refused (deny by default), and
tests/trust/test_policy.py fails while any route of the app has no entry.

    public    no credentials: liveness, readiness, discovery, static assets, and the doors where
              credentials are presented (the token endpoint, the sign-in form)
    api       a bearer token holding one of the scopes
    page      the same, or a signed-in person's session cookie (web pages and their form POSTs,
              which must then carry the session's CSRF token)

`interaction` is the FHIR restful-interaction code the audit trail records for a refusal.
Which referrals a caller may see within a scope is the organisation rule (access.py), not this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    scopes: frozenset[str] = frozenset()  # any one of them is enough
    public: bool = False
    cookie: bool = False  # a signed-in person's session cookie is accepted
    interaction: str = "read"
    why: str = ""


def public(why: str, interaction: str = "read") -> Rule:
    return Rule(public=True, interaction=interaction, why=why)


def api(interaction: str, *scopes: str) -> Rule:
    return Rule(scopes=frozenset(scopes), interaction=interaction)


def page(interaction: str, *scopes: str) -> Rule:
    return Rule(scopes=frozenset(scopes), cookie=True, interaction=interaction)


SR_READ, SR_WRITE = "system/ServiceRequest.read", "system/ServiceRequest.write"
TASK_READ, TASK_WRITE = "system/Task.read", "system/Task.write"
QR_WRITE, AUDIT_READ = "system/QuestionnaireResponse.write", "system/AuditEvent.read"
MONITOR_READ, MONITOR_REPLAY, PAD = "monitor.read", "monitor.replay", "pad.submit"
MONITOR_RESUBMIT = "monitor.resubmit"  # edit and resubmit inbound messages (they become referrals)

POLICY: dict[tuple[str, str], Rule] = {
    # operations and discovery
    ("GET", "/healthz"): public("liveness for orchestrators; says nothing but 'up'"),
    ("GET", "/readyz"): public("readiness for orchestrators; no patient data"),
    ("GET", "/fhir/metadata"): public("FHIR and SMART discovery: how to authenticate is read from it"),
    ("GET", "/openapi.json"): api("read", SR_READ, SR_WRITE, TASK_READ, TASK_WRITE, QR_WRITE, MONITOR_READ),
    # credentials are presented here
    ("POST", "/oauth2/token"): public("client credentials are checked by the endpoint itself", "create"),
    ("GET", "/signin"): public("the sign-in form"),
    ("POST", "/signin"): public("the password is checked by the endpoint itself (login CSRF: own token)", "create"),
    ("POST", "/signout"): page("update", PAD, MONITOR_READ, MONITOR_REPLAY, MONITOR_RESUBMIT),
    # FHIR: referrals
    ("POST", "/fhir/ServiceRequest"): api("create", SR_WRITE),
    ("GET", "/fhir/ServiceRequest"): api("search-type", SR_READ),
    ("GET", "/fhir/ServiceRequest/{referral_id}"): api("read", SR_READ),
    ("GET", "/fhir/ServiceRequest/{referral_id}/_history/{version}"): api("vread", SR_READ),
    ("PUT", "/fhir/ServiceRequest/{referral_id}"): api("update", SR_WRITE),
    ("POST", "/fhir/$process-message"): api("operation", SR_WRITE),
    # FHIR: what became of each referral
    ("GET", "/fhir/Task"): api("search-type", TASK_READ),
    ("GET", "/fhir/Task/{task_id}"): api("read", TASK_READ),
    ("GET", "/fhir/Task/{task_id}/_history"): api("history-instance", TASK_READ),
    ("PUT", "/fhir/Task/{task_id}"): api("update", TASK_WRITE),
    ("PATCH", "/fhir/Task/{task_id}"): api("patch", TASK_WRITE),
    # FHIR: the audit trail
    ("GET", "/fhir/AuditEvent"): api("search-type", AUDIT_READ),
    ("GET", "/fhir/AuditEvent/{audit_id}"): api("read", AUDIT_READ),
    # the IAPT prescription pad
    ("GET", "/pad/static/pad.css"): public("a static stylesheet"),
    ("GET", "/pad"): page("read", PAD),
    ("POST", "/pad"): page("create", PAD),
    ("GET", "/pad/self-referral"): page("read", PAD),
    ("POST", "/pad/self-referral"): page("create", PAD),
    ("GET", "/pad/sent/{referral_id}"): page("read", PAD),
    ("POST", "/fhir/QuestionnaireResponse"): api("create", QR_WRITE),
    ("GET", "/fhir/Questionnaire/iapt-prescription-pad"): api("read", QR_WRITE, PAD),
    # the monitor: web pages and their form POSTs (replay and discard need monitor.replay)
    ("GET", "/monitor/static/{name}"): page("read", MONITOR_READ),  # stylesheet and script, for signed-in viewers
    ("GET", "/monitor"): page("read", MONITOR_READ),
    ("GET", "/monitor/trace"): page("read", MONITOR_READ),
    ("GET", "/monitor/topics/{topic}"): page("read", MONITOR_READ),
    ("GET", "/monitor/dead-letters"): page("read", MONITOR_READ),
    ("GET", "/monitor/dead-letters/{dead_letter_id}"): page("read", MONITOR_READ),
    ("POST", "/monitor/dead-letters/replay"): page("update", MONITOR_REPLAY),
    ("POST", "/monitor/dead-letters/replay-window"): page("update", MONITOR_REPLAY),
    ("POST", "/monitor/dead-letters/{dead_letter_id}/discard"): page("update", MONITOR_REPLAY),
    # the inbound message log: read with monitor.read; sending a message again needs monitor.resubmit
    ("GET", "/monitor/inbound"): page("read", MONITOR_READ),
    ("GET", "/monitor/inbound/{message_id}"): page("read", MONITOR_READ),
    ("POST", "/monitor/inbound/resubmit"): page("update", MONITOR_RESUBMIT),
    ("POST", "/monitor/inbound/{message_id}/resubmit"): page("update", MONITOR_RESUBMIT),
    ("GET", "/monitor/api/inbound"): api("read", MONITOR_READ),
    ("GET", "/monitor/api/inbound/{message_id}"): api("read", MONITOR_READ),
    ("POST", "/monitor/api/inbound/resubmit"): api("update", MONITOR_RESUBMIT),
    ("POST", "/monitor/api/inbound/{message_id}/resubmit"): api("update", MONITOR_RESUBMIT),
    # the monitor's JSON API; the overview is also polled by the dashboard page with its session cookie
    ("GET", "/monitor/api/overview"): page("read", MONITOR_READ),
    ("GET", "/monitor/api/trace/{q}"): api("read", MONITOR_READ),
    ("GET", "/monitor/api/topics/{topic}/messages"): api("read", MONITOR_READ),
    ("GET", "/monitor/api/dead-letters"): api("read", MONITOR_READ),
    ("GET", "/monitor/api/dead-letters/{dead_letter_id}"): api("read", MONITOR_READ),
    ("POST", "/monitor/api/dead-letters/replay"): api("update", MONITOR_REPLAY),
    ("POST", "/monitor/api/dead-letters/replay-window"): api("update", MONITOR_REPLAY),
    ("POST", "/monitor/api/dead-letters/{dead_letter_id}/discard"): api("update", MONITOR_REPLAY),
    # Prometheus scrapes with a bearer token holding monitor.read; labels carry no patient data
    ("GET", "/metrics"): api("read", MONITOR_READ),
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule for a route (its path template, as FastAPI declares it); None: not in the table."""
    return POLICY.get((method.upper(), path))

"""FHIR R4 over HTTP to a receiver's FHIR base URL: the ServiceRequest itself (REST), or a BaRS-style
message Bundle to `$process-message` (messaging); and the referral's Task back to a FHIR referrer the
same two ways.

Every copy carries the same identity so the receiver can tell a resend from a new referral: REST uses
conditional create (`If-None-Exist: identifier=system|value`) and conditional update on the referral's
business identifier; messaging uses the event id as Bundle id and `X-Request-Id`. Answers become
`DeliveryFailed` here: no answer, 408, 425, 429 and 5xx may pass (retriable); any other 4xx will not.
Must not: decide to retry, record, route or commit anything.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from fhir.resources.R4B.bundle import Bundle

from adapters.outbound.receipt import Outgoing, Receipt
from gateway.canonical import systems
from gateway.errors import DeliveryFailed

REST = "fhir-rest"
MESSAGING = "fhir-messaging"
FHIR_JSON = "application/fhir+json"
_RETRIABLE_STATUS = {408, 425, 429}
_HEADER_NAMESPACE = uuid.UUID("0d6b2f6e-8f0a-4d2b-b7a9-5c1e3f4a9b22")


async def send_service_request(client: httpx.AsyncClient, base_url: str, outgoing: Outgoing) -> Receipt:
    """POST (new) or conditional PUT (update, cancel) the ServiceRequest, keyed by its business identifier."""
    resource = for_receiver(outgoing.resource)
    search = identifier_search(resource)
    url = f"{base_url.rstrip('/')}/ServiceRequest"
    headers = _headers(outgoing)
    if outgoing.reason == "new":
        response = await _call(client, "POST", url, resource, {**headers, "If-None-Exist": f"identifier={search}"})
    else:
        response = await _call(client, "PUT", url, resource, headers, params={"identifier": search})
    return _receipt(response, duplicate=outgoing.reason == "new" and response.status_code == 200)


async def send_message(client: httpx.AsyncClient, base_url: str, outgoing: Outgoing) -> Receipt:
    """POST a BaRS `servicerequest-request` message Bundle to `$process-message`."""
    bundle = message_bundle(outgoing, base_url)
    response = await _call(client, "POST", f"{base_url.rstrip('/')}/$process-message", bundle, _headers(outgoing))
    return _receipt(response)


async def send_task(client: httpx.AsyncClient, base_url: str, outgoing: Outgoing) -> Receipt:
    """Status back to a FHIR referrer: conditional PUT of the Task on the referral's business identifier."""
    task: dict[str, Any] = json.loads(outgoing.resource)
    task.pop("meta", None)
    url = f"{base_url.rstrip('/')}/Task"
    params = {"identifier": identifier_search(task)}
    return _receipt(await _call(client, "PUT", url, task, _headers(outgoing), params=params))


async def send_task_message(client: httpx.AsyncClient, base_url: str, outgoing: Outgoing) -> Receipt:
    """Status back to a messaging referrer: a BaRS `servicerequest-response` Bundle with the Task."""
    bundle = task_message(outgoing, base_url)
    response = await _call(client, "POST", f"{base_url.rstrip('/')}/$process-message", bundle, _headers(outgoing))
    return _receipt(response)


def task_message(outgoing: Outgoing, destination: str) -> dict[str, Any]:
    """A BaRS response message: MessageHeader (from the Task's owner to its requester) then the Task."""
    task = json.loads(outgoing.resource)
    task_url = f"urn:uuid:{task['id']}"
    header_id = str(uuid.uuid5(_HEADER_NAMESPACE, outgoing.event_id))
    referrer = {"receiver": task["requester"]} if task.get("requester") else {}
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": systems.BARS_MESSAGE_EVENTS, "code": systems.BARS_EVENT_SERVICEREQUEST_RESPONSE},
        "reason": {"coding": [{"system": systems.BARS_MESSAGE_REASON, "code": "update"}]},
        "source": {"endpoint": "urn:referral-gateway"},
        "destination": [{"endpoint": destination, **referrer}],
        "focus": [{"reference": task_url}],
    }
    if task.get("owner"):
        header["sender"] = task["owner"]
    bundle = {
        "resourceType": "Bundle",
        "id": outgoing.event_id,
        "type": "message",
        "timestamp": outgoing.sent_at,
        "entry": [{"fullUrl": f"urn:uuid:{header_id}", "resource": header}, {"fullUrl": task_url, "resource": task}],
    }
    Bundle.model_validate(bundle)
    return bundle


def for_receiver(resource: str) -> dict[str, Any]:
    """The ServiceRequest without our server's id and meta (the receiver's server assigns its own);
    our referral id travels as an identifier so the receiver can name it back to us."""
    sr: dict[str, Any] = json.loads(resource)
    referral_id = sr.pop("id", None)
    sr.pop("meta", None)
    identifiers = sr.setdefault("identifier", [])
    if referral_id and not any(i.get("system") == systems.REFERRAL_ID for i in identifiers):
        identifiers.append({"system": systems.REFERRAL_ID, "value": referral_id})
    return sr


def identifier_search(sr: dict[str, Any]) -> str:
    """`system|value` of the referral's business identifier (its first; ours if it has none)."""
    for ident in sr.get("identifier", []):
        if ident.get("system") and ident.get("value"):
            return f"{ident['system']}|{ident['value']}"
    raise DeliveryFailed("the ServiceRequest has no identifier to deliver it by", retriable=False)


def message_bundle(outgoing: Outgoing, destination: str) -> dict[str, Any]:
    """A BaRS request message: MessageHeader (event, reason, focus) then the ServiceRequest."""
    sr = json.loads(outgoing.resource)
    sr_url = f"urn:uuid:{sr['id']}"
    header_id = str(uuid.uuid5(_HEADER_NAMESPACE, outgoing.event_id))
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": systems.BARS_MESSAGE_EVENTS, "code": systems.BARS_EVENT_SERVICEREQUEST_REQUEST},
        "reason": {"coding": [{"system": systems.BARS_MESSAGE_REASON, "code": outgoing.reason}]},
        "source": {"endpoint": "urn:referral-gateway"},
        "destination": [{"endpoint": destination, **_receiver(sr)}],
        "focus": [{"reference": sr_url}],
    }
    if sr.get("requester"):
        header["sender"] = sr["requester"]
    bundle = {
        "resourceType": "Bundle",
        "id": outgoing.event_id,
        "type": "message",
        "timestamp": outgoing.sent_at,
        "entry": [{"fullUrl": f"urn:uuid:{header_id}", "resource": header}, {"fullUrl": sr_url, "resource": sr}],
    }
    Bundle.model_validate(bundle)  # what leaves is valid FHIR R4
    return bundle


def _receiver(sr: dict[str, Any]) -> dict[str, Any]:
    performers = sr.get("performer") or []
    return {"receiver": performers[0]} if performers else {}


def _headers(outgoing: Outgoing) -> dict[str, str]:
    return {
        "Content-Type": FHIR_JSON,
        "Accept": FHIR_JSON,
        "X-Request-Id": outgoing.event_id,
        "X-Correlation-Id": outgoing.correlation_id,
    }


async def _call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    params: dict[str, str] | None = None,
) -> httpx.Response:
    try:
        return await client.request(method, url, content=json.dumps(body), headers=headers, params=params)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise DeliveryFailed(f"'{url}' is not a FHIR base URL this gateway can call: {exc}", retriable=False) from exc
    except httpx.TimeoutException as exc:
        raise DeliveryFailed(f"{method} {url} timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise DeliveryFailed(f"{method} {url} could not reach the receiver: {exc or type(exc).__name__}") from exc


def _receipt(response: httpx.Response, duplicate: bool = False) -> Receipt:
    status = response.status_code
    where = response.headers.get("location") or response.headers.get("content-location") or ""
    if 200 <= status < 300:
        return Receipt(f"{status} {where}".strip(), duplicate=duplicate)
    issue_code, diagnostics = _first_issue(response)
    if status == 409 and issue_code == "duplicate":
        return Receipt(f"{status} the receiver already had this message", duplicate=True)
    message = f"the receiver answered {status} {response.reason_phrase}: {diagnostics}".rstrip(": ")
    raise DeliveryFailed(message, retriable=status >= 500 or status in _RETRIABLE_STATUS)


def _first_issue(response: httpx.Response) -> tuple[str | None, str]:
    """The first OperationOutcome issue's code and diagnostics, if the body is one."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    issues = body.get("issue") if isinstance(body, dict) else None
    if not issues:
        return None, ""
    first = issues[0]
    text = first.get("diagnostics") or (first.get("details") or {}).get("text") or ""
    return first.get("code"), str(text)[:300]

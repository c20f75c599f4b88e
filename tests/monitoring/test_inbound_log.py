"""The inbound message log through a running gateway (real MLLP, HTTP, broker, SQLite store) whose
service directory points at a demo receiver: every message is logged with its outcome before it is
answered, found again by a search, shown with each issue where it is (the Inbound page and the
`inbound` command), and a refused one edited or resubmitted in bulk reaches its receiver once."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from gateway.canonical import systems
from gateway.cli import main
from gateway.demo_receiver import DemoReceiver
from gateway.inbound_log.arrival import wire_bytes
from gateway.settings import DeliverySettings, Settings, StoreSettings
from gateway.store.inbound import InboundQuery, LoggedMessage
from tests.api.test_task_status import publish
from tests.conftest import ADMIN_ODS, RunningGateway, add_client, token_for
from tests.delivery.receivers import eventually, schemas_for_receiver
from tests.hl7v2.messages import MSK, fresh, sample, with_field
from tests.mllp.conftest import Sender
from tests.pad.pads import physio_fields
from tests.pad.test_pad_api import form_body
from tests.samples import service_request, valid_nhs_number

BAD_NHS_NUMBER = "9434765910"  # 943 476 591 9 with the wrong check digit


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    demo = DemoReceiver()
    await demo.start()
    yield demo
    await demo.stop()


@pytest.fixture
def gateway_settings(gateway_settings: Settings, receiver: DemoReceiver, tmp_path: Path) -> Settings:
    schemas = schemas_for_receiver(tmp_path / "schemas", receiver.http_port, receiver.mllp_port)
    delivery = DeliverySettings(new_group_start="latest", backoff_base_s=0.2, backoff_max_s=1.0, max_attempts=3)
    return gateway_settings.model_copy(update={"schemas_dir": schemas, "delivery": delivery})


@pytest.fixture
async def gateway(running_gateway: RunningGateway) -> RunningGateway:
    await running_gateway.runtime.delivery.joined()
    return running_gateway


async def viewer_client(gateway: RunningGateway) -> httpx.AsyncClient:
    """An operator who may see patient data unmasked and resubmit (the role and the scopes)."""
    secret = await add_client(gateway, "operator", ADMIN_ODS, "monitor.read monitor.resubmit", True)
    await gateway.runtime.auth.registry.remove("client", "operator")
    await gateway.runtime.auth.registry.add(
        "client",
        "operator",
        ods=ADMIN_ODS,
        scopes="monitor.read monitor.resubmit",
        all_organisations=True,
        roles="patient-data-viewer",
        secret=secret,
    )
    token = await token_for(gateway, "operator", secret)
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def pas_message(nhs_number: str, performer: str = "RX1PN") -> str:
    """A UK PAS-style REF^I12: MSH-15 AL, MSH-16 NE (commit ACK always, application ACK never)."""
    text = fresh(sample(MSK).replace("\n", "\r"))
    text = with_field(text, "MSH", 15, "AL")
    text = with_field(text, "MSH", 16, "NE")
    text = with_field(text, "PRD", 7, f"{performer}^ODS", occurrence=2)
    return with_field(text, "PID", 3, f"{nhs_number}^^^NHS^NH")


def control_id(text: str) -> str:
    return text.split("\r")[0].split("|")[9]


async def send(gateway: RunningGateway, *texts: str) -> list[str]:
    sender = await Sender.open(gateway.runtime.mllp.port)
    try:
        return [await sender.send(t) for t in texts]
    finally:
        await sender.close()


async def logged(gateway: RunningGateway, **equals: str) -> list[LoggedMessage]:
    return (await gateway.runtime.store.inbound.search(InboundQuery(equals=equals), 0, 500)).items


def cli(settings: Settings, *argv: str) -> tuple[int, str]:
    """`referral-gateway ARGV…` against the gateway's store and schemas, as a shell would run it."""
    env = {
        "DATA_DIR": str(settings.data_dir),
        "SCHEMAS_DIR": str(settings.schemas_dir),
        "STORE_URL": settings.store_url,
    }
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue() + err.getvalue()


async def test_a_pas_message_with_a_bad_nhs_number_is_logged_refused_with_the_issue_at_pid_3(
    gateway: RunningGateway,
) -> None:
    text = pas_message(BAD_NHS_NUMBER)
    (answer,) = await send(gateway, text)
    assert "MSA|CR|" in answer  # refused, and told so whatever MSH-16 asked

    (row,) = await logged(gateway, control_id=control_id(text))
    assert (row.outcome, row.reason, row.channel, row.sender) == ("refused", "mapping", "hl7v2-mllp", "EMISWeb^A81001")
    assert row.raw == wire_bytes(text) == text.encode()
    assert row.source_address == "127.0.0.1"
    assert [i["expression"] for i in row.issues] == ["PID-3"]

    async with gateway.client() as client:  # the admin: may resubmit, not see patient data
        listed = await client.get("/monitor/inbound", params={"sender": "A81001", "outcome": "refused"})
        shown = await client.get(f"/monitor/inbound/{row.id}")
        by_patient = await client.get("/monitor/inbound", params={"nhs": BAD_NHS_NUMBER})
    assert row.id in by_patient.text and BAD_NHS_NUMBER not in by_patient.text.split('id="total"')[1]
    assert row.id in listed.text and re.search(r'id="total">\d[\d,]* messages? match', listed.text)
    marked = re.search(r"<li class=\"has-issue\"><code>PID.*?</li>", shown.text, re.S)
    assert marked is not None and "<mark>|***</mark>" in marked.group(0)  # PID-3, masked
    assert "PID-3: the NHS number in PID-3" in marked.group(0) and BAD_NHS_NUMBER not in shown.text

    code, out = await asyncio.to_thread(cli, gateway.settings, "inbound", "list", "--control-id", control_id(text))
    assert code == 0 and row.id in out and "refused (mapping)" in out and "1 messages match" in out
    code, out = await asyncio.to_thread(cli, gateway.settings, "inbound", "show", row.id)
    pid = next(line for line in out.splitlines() if line.strip().startswith("PID|"))
    assert code == 0 and ">>|***<<" in pid and BAD_NHS_NUMBER not in out
    assert "^ PID-3: the NHS number in PID-3" in out.split(pid)[1].splitlines()[1]


async def test_an_edited_hl7_message_is_resubmitted_and_reaches_its_receiver_once_with_the_edit_audited(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    text = pas_message(BAD_NHS_NUMBER, performer="NPH01")
    await send(gateway, text)
    (original,) = await logged(gateway, control_id=control_id(text))
    good = text.replace(f"{BAD_NHS_NUMBER}^^^NHS^NH", "9434765919^^^NHS^NH")

    async with await viewer_client(gateway) as operator:
        page = await operator.get(f"/monitor/inbound/{original.id}", params={"unmasked": "true"})
        assert BAD_NHS_NUMBER in page.text  # the role sees the message unmasked, in the edit box too
        edited = good.replace("\r", "\r\n")  # as a browser's text box sends it
        done = await operator.post(f"/monitor/inbound/{original.id}/resubmit", data={"message": edited})
        assert done.status_code == 303, done.text
        again = await operator.post(f"/monitor/inbound/{original.id}/resubmit", data={"message": edited})
    attempts = await logged(gateway, resubmit_of=original.id)
    assert sorted(a.outcome for a in attempts) == ["accepted", "duplicate"]
    first = next(a for a in attempts if a.outcome == "accepted")
    assert first.raw == good.encode() and first.resubmitted_by == "operator"
    assert first.edit_diff is not None and f"-PID|1||{BAD_NHS_NUMBER}" in first.edit_diff
    assert "+PID|1||9434765919" in first.edit_diff
    assert again.headers["location"].startswith("/monitor/inbound/")

    ubrn = good.split("RF1|")[1].split("|")[5]
    await _delivered_once(receiver, ubrn)
    audit = await _audit_descriptions(gateway, "resubmit")
    assert any(original.id in d and "accepted" in d and "edited" in d and "-PID" in d for d in audit)


async def test_a_bulk_resubmit_after_a_directory_change_makes_each_referral_once(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    physiotherapy = "91251008^Physical therapy procedure^SCT"  # routed by its performer alone
    texts = [with_field(pas_message(n, performer="NPH09"), "RF1", 3, physiotherapy) for n in _nhs_numbers(3)]
    await send(gateway, *texts)
    refused = [m for t in texts for m in await logged(gateway, control_id=control_id(t))]
    assert [(m.outcome, m.reason) for m in refused] == [("refused", "routing")] * 3
    _add_performer_to_directory(gateway.settings.schemas_dir, "NPH09", alias_of="NPH01")
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()

    window = ("--since", since.isoformat(), "--until", until, "--sender", "A81001", "--reason", "routing")
    code, out = await asyncio.to_thread(cli, gateway.settings, "inbound", "resubmit", *window, "--by", "ops")
    assert code == 0 and out.count(": accepted -> ServiceRequest/") == 3, out
    code, out = await asyncio.to_thread(cli, gateway.settings, "inbound", "resubmit", *window, "--by", "ops")
    assert code == 0 and out.count(": skipped") == 3 and "accepted" not in out, out

    for text in texts:
        await _delivered_once(receiver, text.split("RF1|")[1].split("|")[5])


async def test_fifty_refused_and_fifty_accepted_across_channels_are_counted_and_found(
    gateway: RunningGateway,
) -> None:
    before = await _figures(gateway)
    hl7_good = [pas_message(n) for n in _nhs_numbers(20)]
    hl7_bad = [pas_message(BAD_NHS_NUMBER) for _ in range(20)]
    await send(gateway, *hl7_good, *hl7_bad)
    async with gateway.client() as client:
        fhir = [await _post_fhir(client, ok) for ok in [True] * 15 + [False] * 15]
        pad = [await _post_pad(client, ok) for ok in [True] * 15 + [False] * 15]
    after = await _figures(gateway)

    def delta(key: str) -> int:
        return after[key] - before[key]

    assert (delta("hl7v2-mllp accepted"), delta("hl7v2-mllp rejected")) == (20, 20)
    assert (delta("fhir-rest accepted"), delta("fhir-rest rejected")) == (15, 15)
    assert (delta("pad accepted"), delta("pad rejected")) == (15, 15)
    assert delta("refused hl7v2-mllp mapping") == 20 and delta("refused fhir-rest ukcore") == 15
    assert delta("refused pad mapping") == 15
    for text in hl7_good + hl7_bad:
        (row,) = await logged(gateway, control_id=control_id(text))
        assert row.outcome == ("accepted" if text in hl7_good else "refused")
    for request_id, ok in fhir + pad:
        (row,) = await logged(gateway, control_id=request_id)
        assert row.outcome == ("accepted" if ok else "refused") and (row.referral_id is not None) == ok


async def _figures(gateway: RunningGateway) -> dict[str, int]:
    """The dashboard's inbound figures, checked against /metrics' counters for the same adapters."""
    async with gateway.client() as client:
        cells = (await client.get("/monitor/api/overview")).json()["cells"]
        metrics = (await client.get("/metrics")).text
    figures = {}
    for adapter in ("hl7v2-mllp", "fhir-rest", "pad"):
        for column, outcome in (("accepted", "accepted"), ("rejected", "refused")):
            shown = int(cells[f"adapter in {adapter} {column}"])
            assert shown == _metric(metrics, "gateway_inbound_messages_total", adapter=adapter, outcome=outcome)
            figures[f"{adapter} {column}"] = shown
        rejected = _metric(metrics, "gateway_referrals_rejected_total", adapter=adapter)
        assert rejected == figures[f"{adapter} rejected"]
        for reason in ("mapping", "ukcore"):
            figures[f"refused {adapter} {reason}"] = int(cells[f"refused {adapter} {reason}"])
            assert figures[f"refused {adapter} {reason}"] == _metric(
                metrics, "gateway_inbound_refused_total", adapter=adapter, reason=reason
            )
    return figures


def _metric(text: str, name: str, **labels: str) -> int:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


async def _post_fhir(client: httpx.AsyncClient, valid: bool) -> tuple[str, bool]:
    number = valid_nhs_number() if valid else BAD_NHS_NUMBER
    sr = service_request(subject={"identifier": {"system": systems.NHS_NUMBER, "value": number}})
    request_id = str(uuid.uuid4())
    headers = {"content-type": "application/fhir+json", "x-request-id": request_id}
    response = await client.post("/fhir/ServiceRequest", content=json.dumps(sr), headers=headers)
    assert response.status_code == (201 if valid else 422), response.text
    return request_id, valid


async def _post_pad(client: httpx.AsyncClient, valid: bool) -> tuple[str, bool]:
    fields: dict[str, Any] = physio_fields(None if valid else {"patient.nhs-number": BAD_NHS_NUMBER})
    request_id = str(uuid.uuid4())
    response = await client.post("/pad", json=fields, headers={"x-request-id": request_id})
    assert response.status_code in ((201,) if valid else (422,)), response.text
    return request_id, valid


def _nhs_numbers(count: int) -> list[str]:
    return [valid_nhs_number() for _ in range(count)]


def _add_performer_to_directory(schemas: Path, ods: str, alias_of: str) -> None:
    """A directory change: organisation `ods` (a new site) is listed, and routed as `alias_of` is."""
    directory = schemas / "directory" / "directory.json"
    data = json.loads(directory.read_text())
    site = copy.deepcopy(next(e for e in data["entry"] if e["resource"]["id"] == alias_of))
    site["fullUrl"] = site["fullUrl"].replace(alias_of, ods)
    site["resource"].update(id=ods, name=f"{site['resource']['name']} (new site)")
    site["resource"]["identifier"] = [{"system": systems.ODS_CODE, "value": ods}]
    data["entry"].append(site)
    directory.write_text(json.dumps(data, indent=2))
    rules = schemas / "routing" / "rules.json"
    text = rules.read_text().replace(f'"performer": ["{alias_of}"]', f'"performer": ["{alias_of}", "{ods}"]')
    rules.write_text(text)


async def _delivered_once(receiver: DemoReceiver, ubrn: str) -> None:
    def hits() -> list[str]:
        return [h.outcome for h in receiver.ledger.hits if ubrn in h.identity]

    await eventually(lambda: hits() == ["created"], what=f"referral {ubrn} delivered")
    await asyncio.sleep(1.0)  # and nothing more arrives
    assert hits() == ["created"]


async def _audit_descriptions(gateway: RunningGateway, subtype: str) -> list[str]:
    async with gateway.client() as client:
        bundle = (await client.get("/fhir/AuditEvent", params={"_count": "200"})).json()
    events = [e["resource"] for e in bundle.get("entry", [])]
    return [
        str(e.get("outcomeDesc", "")) for e in events if any(s.get("code") == subtype for s in e.get("subtype", []))
    ]


async def test_a_request_refused_before_its_route_read_it_is_logged_with_its_body(gateway: RunningGateway) -> None:
    body = json.dumps(service_request()).encode()
    request_id = str(uuid.uuid4())
    async with gateway.anonymous_client() as client:
        headers = {"content-type": "application/fhir+json", "x-request-id": request_id}
        refused = await client.post("/fhir/ServiceRequest", content=body, headers=headers)
    assert refused.status_code == 401
    (row,) = await logged(gateway, control_id=request_id)
    assert (row.outcome, row.reason, row.sender, row.raw) == ("refused", "authorisation", "unauthenticated", body)
    assert row.destination == "POST /fhir/ServiceRequest"


async def test_a_refused_fhir_referral_is_found_by_the_json_api_edited_and_resubmitted(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        request_id, _ = await _post_fhir(client, valid=False)
        found = (await client.get("/monitor/api/inbound", params={"control_id": request_id})).json()
        (summary,) = found["messages"]
        shown = (await client.get(f"/monitor/api/inbound/{summary['id']}")).json()
    assert found["total"] == 1 and summary["outcome"] == "refused" and summary["reason"] == "ukcore"
    marked = [line for line in shown["lines"] if line["issues"]]
    assert any("ServiceRequest.subject.identifier" in i for line in marked for i in line["issues"])
    assert BAD_NHS_NUMBER not in json.dumps(shown)  # masked for a caller without the role

    original = await gateway.runtime.store.inbound.get(summary["id"])
    assert original is not None
    fixed = original.raw.decode().replace(BAD_NHS_NUMBER, _nhs_numbers(1)[0])
    async with await viewer_client(gateway) as operator:
        done = await operator.post(f"/monitor/api/inbound/{original.id}/resubmit", json={"message": fixed})
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "accepted" and done.json()["referral_id"]
    async with gateway.client() as client:
        read = await client.get(f"/fhir/ServiceRequest/{done.json()['referral_id']}")
    assert read.status_code == 200


async def test_a_task_update_by_fhir_is_logged_on_its_own_channel(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        request_id, _ = await _post_fhir(client, valid=True)
        (created,) = await logged(gateway, control_id=request_id)
        tasks = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{created.referral_id}"})).json()
        task_id = tasks["entry"][0]["resource"]["id"]
        ops = json.dumps([{"op": "replace", "path": "/status", "value": "received"}])
        patch_id = str(uuid.uuid4())
        headers = {"content-type": "application/json-patch+json", "x-request-id": patch_id}
        moved = await client.patch(f"/fhir/Task/{task_id}", content=ops, headers=headers)
    assert moved.status_code == 200, moved.text
    (row,) = await logged(gateway, control_id=patch_id)
    assert (row.channel, row.outcome, row.destination, row.raw) == (
        "fhir-task",
        "accepted",
        f"PATCH /fhir/Task/{task_id}",
        ops.encode(),
    )


async def test_task_updates_on_the_status_topic_are_logged_accepted_and_refused(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        request_id, _ = await _post_fhir(client, valid=True)
        (created,) = await logged(gateway, control_id=request_id)
        bundle = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{created.referral_id}"})).json()
    task = bundle["entry"][0]["resource"]
    servers, topic = gateway.settings.kafka.servers, "referrals.status-updates"
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    for status, ce_id in (("received", good), ("teleported", bad)):
        headers = {"ce_source": "urn:receiver:RX1PN", "ce_id": ce_id}
        await asyncio.to_thread(publish, servers, topic, "key", {**task, "status": status}, headers)

    async def both() -> bool:
        return len(await logged(gateway, channel="status-topic", control_id=good)) == 1 and bool(
            await logged(gateway, channel="status-topic", control_id=bad)
        )

    await eventually(both, timeout=30, what="both updates logged")
    (moved,) = await logged(gateway, control_id=good)
    (refused,) = await logged(gateway, control_id=bad)
    assert (moved.outcome, moved.sender) == ("accepted", "urn:receiver:RX1PN")
    assert refused.outcome == "refused" and refused.source_address is not None
    assert refused.source_address.startswith(f"{topic}/") and b"teleported" in refused.raw


async def test_a_refused_pad_form_is_shown_by_field_and_resubmitted_edited_once(gateway: RunningGateway) -> None:
    token = str(uuid.uuid4())
    posted = form_body(physio_fields({"patient.nhs-number": BAD_NHS_NUMBER}), token)
    async with gateway.client() as client:
        refused = await client.post("/pad", **posted)
    assert refused.status_code == 422
    (original,) = [m for m in await logged(gateway, channel="pad", outcome="refused") if token in m.raw.decode()]
    assert original.raw == posted["content"].encode() and original.reason == "mapping"
    async with gateway.client() as client:
        shown = (await client.get(f"/monitor/api/inbound/{original.id}")).json()
    nhs_line = next(line for line in shown["lines"] if line["text"].startswith("patient.nhs-number"))
    assert nhs_line["text"] == "patient.nhs-number = ***" and nhs_line["issues"]

    fixed = original.raw.decode().replace(BAD_NHS_NUMBER, valid_nhs_number())
    async with await viewer_client(gateway) as operator:
        first = (await operator.post(f"/monitor/api/inbound/{original.id}/resubmit", json={"message": fixed})).json()
        again = (await operator.post(f"/monitor/api/inbound/{original.id}/resubmit", json={"message": fixed})).json()
    assert first["outcome"] == "accepted" and again["outcome"] == "duplicate"
    assert first["referral_id"] == again["referral_id"]  # the form's submission token: one referral

"""The engineers' commands (`referral-gateway topics`, `lag`, `trace`, `dlq …`, `tail`) against a gateway
running as its own process, on a broker of its own, with the demo receiver (`referral-gateway
demo-receiver`) as every receiver; and that gateway's whole log, after a full referral flow, holds no
NHS number and no patient name.

The flow, once for the module: an HL7 v2 REF^I12 over MLLP and a FHIR ServiceRequest (each with a
patient name) are delivered, their Tasks move (FHIR PATCH, RRI^I12) and each change goes back to the
GP; then the receiver fails and three referrals are dead-lettered, and one is replayed by the JSON API.
The commands run in this process (`gateway.cli.main`) with the gateway's environment.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from kafka import KafkaConsumer

from gateway.canonical import systems
from gateway.cli import main
from tests.conftest import free_port, start_tansu
from tests.delivery.receivers import eventually, schemas_for_receiver
from tests.delivery.test_closed_loop import FHIR_JSON, PATCH, rri, send_mllp
from tests.hl7v2.messages import IAPT, fresh, sample, with_field
from tests.kafka_reader import read_events
from tests.processes import gateway_env, local_client, start_gateway, wait_ready
from tests.samples import service_request, valid_nhs_number

GP = "A81001"  # the referrer: the directory sends its status back over MLLP (to the demo receiver)
HL7_PATIENT = ("Wilhelmina", "Brackenbury")
FHIR_PATIENT = ("Ottoline", "Quillfeather")
FAILING_PATIENTS = [("Peregrina", "Fothergill"), ("Ambrose", "Winterbottom"), ("Clemency", "Ashgrove")]
REFUSED_PATIENTS = [("Florizel", "Haverstock"), ("Euphemia", "Tregothnan")]  # with a wrong check digit


@dataclass
class Flow:
    env: dict[str, str]
    log: Path
    servers: str
    gateway: httpx.Client  # the development partner's token
    receiver: httpx.Client  # the demo receiver's /_demo routes
    hl7_referral: str  # the referral ids
    fhir_referral: str
    control_id: str  # MSH-10 of the REF^I12
    nhs_numbers: list[str]
    names: list[str]
    dead_letters: list[str]  # the ones left open, oldest first
    replayed: str  # the one replayed by the JSON API


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli(flow: Flow, *argv: str) -> Run:
    """`referral-gateway ARGV…` with the gateway's environment; what a shell would see of it."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with mock.patch.dict(os.environ, flow.env, clear=True), redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:  # as the interpreter turns it into an exit status
            if isinstance(exc.code, str):
                err.write(exc.code + "\n")
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return Run(code, out.getvalue(), err.getvalue())


def until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """`eventually`, for these synchronous tests: the check runs in a thread with no event loop
    (it may run a command, which starts its own)."""
    asyncio.run(eventually(lambda: asyncio.to_thread(check), timeout, what))


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def named_referral(given: str, family: str) -> dict[str, Any]:
    """A GP's referral whose patient is a contained Patient with a name and a birth date."""
    sr = service_request()
    nhs = sr["subject"]["identifier"]["value"]
    patient = {
        "resourceType": "Patient",
        "id": "patient",
        "identifier": [{"system": systems.NHS_NUMBER, "value": nhs}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": "1961-02-03",
    }
    return {**sr, "contained": [patient], "subject": {"reference": "#patient", "display": f"{given} {family}"}}


def named_ref_i12(given: str, family: str) -> str:
    text = with_field(fresh(sample(IAPT)), "MSH", 4, GP)
    text = with_field(text, "PRD", 7, f"{GP}^ODS~G8234567^GMP")
    return with_field(text, "PID", 5, f"{family}^{given}^^^Mrs")


def post(client: httpx.Client, sr: dict[str, Any]) -> dict[str, Any]:
    created = client.post("/fhir/ServiceRequest", content=json.dumps(sr), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def task_of(client: httpx.Client, referral_id: str) -> str:
    found = client.get("/fhir/Task", params={"focus": f"ServiceRequest/{referral_id}"}).json()
    return str(found["entry"][0]["resource"]["id"])


def received(receiver: httpx.Client) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = receiver.get("/_demo/received").json()
    return got


def open_dead_letters(client: httpx.Client, referral_ids: set[str]) -> list[dict[str, Any]]:
    letters = client.get("/monitor/api/dead-letters", params={"state": "open"}).json()["dead_letters"]
    return sorted((d for d in letters if d["referral_id"] in referral_ids), key=lambda d: d["at"])


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    home = tmp_path_factory.mktemp("cli")
    broker_port, api_port, mllp_port, http_port, receiver_mllp = (free_port() for _ in range(5))
    schemas_for_receiver(home / "schemas", http_port, receiver_mllp)
    servers = f"127.0.0.1:{broker_port}"
    env = gateway_env(
        home / "data",
        api_port,
        mllp_port,
        kafka=servers,
        SCHEMAS_DIR=str(home / "schemas"),
        DELIVERY_NEW_GROUP_START="earliest",  # the broker is this module's: nothing of others' to skip
        DELIVERY_MAX_ATTEMPTS="2",
        DELIVERY_BACKOFF_BASE_S="0.1",
        DELIVERY_BACKOFF_MAX_S="0.2",
    )
    broker = start_tansu(broker_port)
    with (home / "receiver.log").open("wb") as out:
        command = [sys.executable, "-m", "gateway", "demo-receiver", "--no-move"]
        command += ["--http-port", str(http_port), "--mllp-port", str(receiver_mllp)]
        demo = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    gateway = start_gateway(env, home / "gateway.log")
    base_url = f"http://127.0.0.1:{api_port}"
    try:
        wait_ready(gateway, base_url)
        until(lambda: answers(f"http://127.0.0.1:{http_port}/_demo/received"), "the demo receiver answering")
        receiver = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10)
        with local_client(home / "data", base_url) as client, receiver:
            yield run_flow(env, home / "gateway.log", servers, client, receiver)
    finally:
        for proc in (gateway, demo, broker):
            proc.terminate()
        for proc in (gateway, demo, broker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_flow(env: dict[str, str], log: Path, servers: str, client: httpx.Client, receiver: httpx.Client) -> Flow:
    mllp = int(env["MLLP_PORT"])
    text = named_ref_i12(*HL7_PATIENT)
    control_id = text.split("\r")[0].split("|")[9]
    ((code, _, _),) = send_mllp(mllp, text)
    assert code == "AA"
    sr = post(client, named_referral(*FHIR_PATIENT))
    hl7_referral = client.get(f"/monitor/api/trace/{control_id}").json()["referrals"][0]["referral_id"]
    until(lambda: len(received(receiver)) == 2, "both referrals delivered")
    patched = client.patch(
        f"/fhir/Task/{task_of(client, hl7_referral)}",
        content=json.dumps([{"op": "replace", "path": "/status", "value": "received"}]),
        headers=PATCH,
    )
    assert patched.status_code == 200, patched.text
    ((code, _, _),) = send_mllp(mllp, rri(sr, "received"))  # the MSK service moves its Task in HL7 v2
    assert code == "AA"
    until(lambda: len(receiver.get("/_demo/statuses").json()) == 2, "both Task changes back at the GP")

    failing, (replayed, *left) = dead_letters(client, receiver)
    nhs_numbers = [text.split("PID|1||")[1].split("^")[0], sr["subject"]["identifier"]["value"]]
    for nhs in nhs_numbers:  # engineers look referrals up by NHS number: it is in these URLs
        assert client.get("/fhir/ServiceRequest", params={"patient": nhs}).json()["total"] == 1
        assert client.get(f"/monitor/api/trace/{nhs}").status_code == 200
    nhs_numbers += [*failing, *refused(mllp, client)]
    names = [n for person in [HL7_PATIENT, FHIR_PATIENT, *FAILING_PATIENTS, *REFUSED_PATIENTS] for n in person]
    return Flow(
        env, log, servers, client, receiver, hl7_referral, sr["id"], control_id, nhs_numbers, names, left, replayed
    )


def dead_letters(client: httpx.Client, receiver: httpx.Client) -> tuple[list[str], list[str]]:
    """Three referrals dead-lettered while the receiver fails, the first replayed (by the JSON API) once
    it is fixed: their NHS numbers, and the dead letters' ids, oldest first."""
    receiver.put("/_demo/behaviour", json={"http_status": 503}).raise_for_status()
    failing = [post(client, named_referral(*p)) for p in FAILING_PATIENTS]
    ids = {f["id"] for f in failing}
    until(lambda: len(open_dead_letters(client, ids)) == 3, "three referrals dead-lettered")
    receiver.put("/_demo/behaviour", json={}).raise_for_status()
    letters = [d["id"] for d in open_dead_letters(client, ids)]
    replayed = client.post("/monitor/api/dead-letters/replay", json={"ids": letters[:1]})
    assert replayed.status_code == 200, replayed.text
    until(lambda: len(received(receiver)) == 3, "the replayed referral delivered")
    return [f["subject"]["identifier"]["value"] for f in failing], letters


def refused(mllp: int, client: httpx.Client) -> list[str]:
    """A REF^I12 and a ServiceRequest refused for a wrong NHS number check digit; the numbers sent."""
    numbers = [wrong_check_digit(valid_nhs_number()) for _ in REFUSED_PATIENTS]
    text = with_field(named_ref_i12(*REFUSED_PATIENTS[0]), "PID", 3, f"{numbers[0]}^^^NHS^NH")
    ((code, _, _),) = send_mllp(mllp, text)
    sr = named_referral(*REFUSED_PATIENTS[1])
    sr["contained"][0]["identifier"][0]["value"] = numbers[1]
    invalid = client.post("/fhir/ServiceRequest", content=json.dumps(sr), headers=FHIR_JSON)
    assert (code, invalid.status_code) == ("AE", 422), invalid.text
    return numbers


def wrong_check_digit(nhs: str) -> str:
    return nhs[:9] + str((int(nhs[9]) + 1) % 10)


def shown_anywhere(text: str, flow: Flow) -> list[str]:
    """The NHS numbers (also written 3 3 4) and patient names of the flow that appear in `text`."""
    found = [n for n in flow.nhs_numbers if re.search(rf"{n[:3]}[ -]?{n[3:6]}[ -]?{n[6:]}", text)]
    return found + [name for name in flow.names if name.lower() in text.lower()]


def test_topics_lists_each_topic_with_its_end_offsets(flow: Flow) -> None:
    run = cli(flow, "topics", "--json")
    assert run.code == 0, run.err
    topics = {t["topic"]: t for t in run.lines()}
    assert {"referrals.iapt", "referrals.msk-pain", "referrals.status", "referrals.deadletter"} <= set(topics)
    assert sum(topics["referrals.iapt"]["end_offsets"].values()) == 1  # the REF^I12
    assert sum(topics["referrals.status"]["end_offsets"].values()) >= 2  # a Task change of each
    assert len(topics["referrals.iapt"]["end_offsets"]) == topics["referrals.iapt"]["partitions"]
    plain = cli(flow, "topics")
    assert plain.code == 0 and re.search(r"referrals\.iapt +\d+ partitions +1 written", plain.out), plain.out


def test_lag_shows_the_delivery_group_caught_up(flow: Flow) -> None:
    group = f"{flow.env['KAFKA_CONSUMER_GROUP_PREFIX']}-delivery"

    def caught_up() -> bool:
        run = cli(flow, "lag", "--json")
        lags = {(g["group"], g["topic"]): g for g in run.lines()}
        iapt = lags.get((group, "referrals.iapt"))
        return iapt is not None and iapt["lag"] == 0 and any(p["committed"] == 1 for p in iapt["partitions"])

    until(caught_up, "the delivery group committed past the REF^I12")
    plain = cli(flow, "lag")
    assert plain.code == 0 and re.search(rf"{group} +referrals\.iapt +lag +0 ", plain.out), plain.out


def test_trace_by_nhs_number_prints_every_hop_masked(flow: Flow) -> None:
    hl7_nhs = flow.nhs_numbers[0]
    run = cli(flow, "trace", hl7_nhs)
    assert run.code == 0, run.err
    assert f"referral {flow.hl7_referral}" in run.out and "NHS number **********" in run.out
    assert "received by hl7v2-mllp" in run.out
    for step in ("received", "validated", "routed", "published", "delivered", "status"):
        assert re.search(rf"\+ *[\d.]+s +{step} ", run.out), f"no {step} hop in:\n{run.out}"
    assert shown_anywhere(run.out, flow) == []
    (shown,) = cli(flow, "trace", flow.control_id, "--json").lines()
    assert shown["referral_id"] == flow.hl7_referral and shown["task_status"] == "received"


def test_dlq_list_and_show_say_why_with_the_event_masked(flow: Flow) -> None:
    listed = cli(flow, "dlq", "list")
    assert listed.code == 0, listed.err
    for letter in flow.dead_letters:
        (line,) = [x for x in listed.out.splitlines() if x.startswith(letter)]
        assert re.search(r"open +msk-pain +2 attempts +failed 2 of 2 attempts", line), line
    assert flow.replayed not in listed.out, "the replayed one is no longer open"
    everything = {d["id"]: d for d in cli(flow, "dlq", "list", "--state", "all", "--json").lines()}
    assert everything[flow.replayed]["state"] == "replayed"

    shown = cli(flow, "dlq", "show", flow.dead_letters[0])
    assert shown.code == 0, shown.err
    letter = json.loads(shown.out)
    assert letter["masked"] is True and letter["key"] == "**********" and "503" in letter["details"]
    assert letter["value"]["resourceType"] == "ServiceRequest"
    assert shown_anywhere(shown.out, flow) == []


def test_dlq_replay_queues_it_and_the_receiver_gets_it(flow: Flow) -> None:
    before = len(received(flow.receiver))
    letter = flow.dead_letters[0]
    run = cli(flow, "dlq", "replay", letter, "--by", "test engineer")
    assert run.code == 0, run.err
    assert f"{letter} -> msk-pain: queued" in run.out and "1 replay queued for delivery" in run.out
    until(lambda: len(received(flow.receiver)) == before + 1, "the replay delivered")
    again = cli(flow, "dlq", "replay", letter)
    assert again.code == 0 and "queued before" in again.out, "a second replay sends nothing more"

    def delivered() -> bool:
        return bool(json.loads(cli(flow, "dlq", "show", letter).out)["delivery_status"] == "delivered")

    until(delivered, "the dead letter's delivery recorded as delivered")
    assert len(received(flow.receiver)) == before + 1


def test_dlq_discard_records_the_reason_and_it_cannot_be_replayed(flow: Flow) -> None:
    letter = flow.dead_letters[1]
    run = cli(flow, "dlq", "discard", letter, "--reason", "sent again by the GP under a new UBRN", "--by", "tester")
    assert run.code == 0 and run.out.strip() == f"{letter}: discarded", run.err
    shown = json.loads(cli(flow, "dlq", "show", letter).out)
    assert shown["state"] == "discarded"
    assert [(a["kind"], a["by"], a["reason"]) for a in shown["actions"]] == [
        ("discarded", "tester", "sent again by the GP under a new UBRN")
    ]
    assert letter not in cli(flow, "dlq", "list").out
    refused = cli(flow, "dlq", "replay", letter)
    assert refused.code == 1 and "was discarded; it cannot be replayed" in refused.err


def test_tail_prints_each_event_with_patient_identifiers_masked(flow: Flow) -> None:
    (raw,) = read_events(flow.servers, "referrals.msk-pain", 1, 10, lambda e: flow.fhir_referral in str(e.headers))
    nhs = flow.nhs_numbers[1]
    assert shown_anywhere(raw.key + json.dumps(raw.value), flow) == [nhs, *FHIR_PATIENT], "the event names them"
    ends = {t["topic"]: sum(t["end_offsets"].values()) for t in cli(flow, "topics", "--json").lines()}
    for topic in ("referrals.msk-pain", "referrals.iapt", "referrals.status", "referrals.deadletter"):
        run = cli(flow, "tail", topic, "--from-beginning", "--max", str(ends[topic]))
        assert run.code == 0, run.err
        events = run.lines()
        assert len(events) == ends[topic]
        assert {e["key"] for e in events} == {"**********"}
        assert shown_anywhere(run.out, flow) == [], f"{topic} shows patient identifiers"
    (hl7,) = cli(flow, "tail", "referrals.iapt", "--from-beginning", "--max", "1").lines()
    assert hl7["headers"]["ce_subject"] == f"ServiceRequest/{flow.hl7_referral}"
    assert hl7["value"]["subject"]["identifier"]["value"] == "**********"
    refused = cli(flow, "tail", "referrals.iapt", "--unmasked", "--max", "1")
    assert refused.code == 2 and "not allowed" in refused.err


def test_bad_input_exits_non_zero_with_a_message(flow: Flow) -> None:
    unknown = f"referrals.{uuid.uuid4().hex[:8]}"
    tail = cli(flow, "tail", unknown, "--max", "1")
    assert tail.code == 1 and f"the broker has no topic '{unknown}'" in tail.err
    consumer = KafkaConsumer(bootstrap_servers=flow.servers)
    try:
        assert unknown not in consumer.topics(), "asking about a topic must not create it"
    finally:
        consumer.close()
    nobody = str(uuid.uuid4())
    for argv in (("dlq", "show", nobody), ("dlq", "replay", nobody), ("dlq", "discard", nobody, "--reason", "x")):
        run = cli(flow, *argv)
        assert run.code == 1 and f"no dead letter {nobody} is kept here" in run.err, (argv, run)
    trace = cli(flow, "trace", "no-such-referral")
    assert trace.code == 1 and "no referral has that id" in trace.err
    blank = cli(flow, "dlq", "discard", flow.dead_letters[-1], "--reason", " ")
    assert blank.code == 1 and "say why it is discarded" in blank.err


def test_the_gateways_log_holds_no_nhs_number_or_patient_name(flow: Flow) -> None:
    log = flow.log.read_text()
    for referral in (flow.control_id, flow.hl7_referral, flow.fhir_referral):
        assert referral in log, "the log covers the flow (it logs ids)"
    assert shown_anywhere(log, flow) == []

"""Property-based fuzzing of every door that takes input from outside: the HL7 mapping (pure), the
MLLP listener, the FHIR endpoints and the pad (over real sockets to a running gateway). Whatever
comes in: no crash, no 500, a clear error (GatewayError, OperationOutcome, ACK AE/AR), and the
process still answers the next good request.

The default suite tries a small sample (a few hundred cases); `make fuzz` sets FUZZ_EXAMPLES (cases
per socket property; the pure mapping gets four times as many) to try tens of thousands.
Each property prints how many cases it tried (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from tests import samples
from tests.conftest import RunningGateway
from tests.hl7v2.messages import MSK, fresh, referral, sample

ON_SQLITE = pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
    database=None,
)
SEGMENT_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)


def mutated_hl7() -> st.SearchStrategy[str]:
    """The MSK sample with one field of one segment replaced, a segment dropped, or noise appended."""
    base = sample(MSK).replace("\n", "\r").rstrip("\r").split("\r")

    def mutate(choice: tuple[int, int, str, int]) -> str:
        segment, field, value, how = choice
        lines = list(base)
        index = segment % len(lines)
        fields = lines[index].split("|")
        if how == 0:
            fields[field % len(fields)] = value
            lines[index] = "|".join(fields)
        elif how == 1 and index > 0:
            del lines[index]
        else:
            lines.append(value)
        return fresh("\r".join(lines))

    return st.tuples(st.integers(0, 50), st.integers(1, 30), SEGMENT_TEXT, st.integers(0, 2)).map(mutate)


def tried(name: str, count: int) -> None:
    print(f"\nfuzz {name}: {count} cases tried, failures 0")


def test_hl7_mapping_raises_only_gateway_errors() -> None:
    count = 0

    @settings(FUZZ, max_examples=EXAMPLES * 4)  # pure and fast: four times the socket properties' share
    @given(st.one_of(mutated_hl7(), SEGMENT_TEXT))
    def mapping(text: str) -> None:
        nonlocal count
        count += 1
        try:
            referral(text)
        except GatewayError as error:
            assert error.message

    mapping()
    tried("HL7 mapping", count)


def mllp_exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def frame(text: str) -> bytes:
    return b"\x0b" + text.encode() + b"\x1c\r"


async def run_in_thread(prop: Callable[[], None]) -> None:
    await asyncio.to_thread(prop)


@ON_SQLITE
async def test_mllp_listener_answers_every_frame_and_stays_up(running_gateway: RunningGateway) -> None:
    port = running_gateway.runtime.mllp.port
    count = 0

    @FUZZ
    @given(
        st.one_of(mutated_hl7().map(frame), st.binary(max_size=300), st.binary(max_size=80).map(lambda b: b"\x0b" + b))
    )
    def listener(payload: bytes) -> None:
        nonlocal count
        count += 1
        answer = mllp_exchange(port, payload)
        if answer:
            assert answer.startswith(b"\x0b") and b"MSA|" in answer, answer[:200]

    await run_in_thread(listener)
    good = await asyncio.to_thread(mllp_exchange, port, frame(fresh(sample(MSK).replace("\n", "\r"))))
    assert b"MSA|AA|" in good
    tried("MLLP listener", count)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def mutated_service_request() -> st.SearchStrategy[dict[str, Any]]:
    base = samples.service_request()  # drawn once: strategies must not draw randomness of their own
    keys = sorted(base)

    def mutate(choice: tuple[int, Any, bool]) -> dict[str, Any]:
        index, value, drop = choice
        changed = copy.deepcopy(base)
        key = keys[index % len(keys)]
        if drop:
            del changed[key]
        else:
            changed[key] = value
        return changed

    return st.tuples(st.integers(0, 100), JSON_VALUES, st.booleans()).map(mutate)


def assert_clear_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
        assert response.json()["resourceType"] == "OperationOutcome"


@ON_SQLITE
async def test_fhir_endpoints_answer_bad_input_with_4xx_outcomes(running_gateway: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {running_gateway.token}", "content-type": "application/fhir+json"}
    routes = ["/fhir/ServiceRequest", "/fhir/$process-message", "/fhir/QuestionnaireResponse"]
    count = 0

    @FUZZ
    @given(
        st.sampled_from(routes),
        st.one_of(
            mutated_service_request().map(lambda d: json.dumps(d).encode()),
            JSON_VALUES.map(lambda v: json.dumps(v).encode()),
            st.binary(max_size=200),
        ),
        st.text(max_size=12),
    )
    @example("/fhir/ServiceRequest", json.dumps(samples.service_request(subject=None)).encode(), "")  # once a 500
    def endpoints(path: str, body: bytes, query: str) -> None:
        nonlocal count
        count += 1
        with httpx.Client(base_url=running_gateway.base_url, headers=headers, timeout=30) as client:
            extra = {"X-Request-Id": str(uuid.uuid4())} if "process" in path else {}
            assert_clear_answer(client.post(path, content=body, headers=extra))
            assert_clear_answer(client.get("/fhir/ServiceRequest", params={"identifier": query}))

    await run_in_thread(endpoints)
    async with running_gateway.client() as client:
        assert (await client.post("/fhir/ServiceRequest", json=samples.service_request())).status_code == 201
    tried("FHIR endpoints", count)


@ON_SQLITE
async def test_the_pad_answers_any_form_without_a_500(running_gateway: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {running_gateway.token}", "accept": "text/html"}
    count = 0
    fields = st.sampled_from(["nhs_number", "given", "family", "birth_date", "reason", "priority", "phq9", "x"])

    @FUZZ
    @given(st.sampled_from(["/pad", "/pad/self-referral"]), st.dictionaries(fields, SEGMENT_TEXT, max_size=8))
    def pad(path: str, form: dict[str, str]) -> None:
        nonlocal count
        count += 1
        with httpx.Client(base_url=running_gateway.base_url, headers=headers, timeout=30) as client:
            response = client.post(path, data=form)
            assert response.status_code < 500, response.text[:500]

    await run_in_thread(pad)
    tried("pad", count)

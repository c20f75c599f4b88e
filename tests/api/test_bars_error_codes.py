"""Every error the FHIR surfaces return keeps its BaRS http-error-code: the code is a class attribute
of each error in gateway/errors.py, fitting its HTTP status, and it reaches the OperationOutcome."""

from __future__ import annotations

import json

import pytest

from gateway import errors
from gateway.api.outcome import BARS_ERROR_CODES
from tests.conftest import RunningGateway
from tests.samples import service_request

#: The BaRS code names each HTTP status may carry (BaRS failure scenarios).
FITTING = {
    400: {"BAD_REQUEST"},
    401: {"UNAUTHORIZED"},
    403: {"FORBIDDEN"},
    404: {"NOT_FOUND"},
    405: {"METHOD_NOT_ALLOWED"},
    409: {"CONFLICT"},
    412: {"PRECONDITION_FAILED"},
    415: {"BAD_REQUEST"},  # BaRS: a feature or format the receiver does not support
    422: {"UNPROCESSABLE_ENTITY"},
    429: {"TOO_MANY_REQUESTS"},
    500: {"SERVER_ERROR"},
    502: {"BAD_GATEWAY"},
    503: {"SERVICE_UNAVAILABLE"},
}


def every_error() -> list[type[errors.GatewayError]]:
    found, todo = [], [errors.GatewayError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return sorted(found, key=lambda k: k.__name__)


@pytest.mark.parametrize("kind", every_error(), ids=lambda k: k.__name__)
def test_each_error_class_carries_a_bars_code_fitting_its_status(kind: type[errors.GatewayError]) -> None:
    prefix, _, name = kind.bars_code.partition("_")
    assert prefix in ("SEND", "REC") and name in FITTING[kind.http_status]


async def test_the_surfaces_render_each_error_with_its_bars_code(running_gateway: RunningGateway) -> None:
    fhir_json = {"content-type": "application/fhir+json"}
    async with running_gateway.anonymous_client() as anonymous, running_gateway.client() as client:
        answers = {
            401: await anonymous.post("/fhir/ServiceRequest", json=service_request()),
            404: await client.get("/fhir/NoSuchThing"),
            415: await client.post("/fhir/ServiceRequest", content=b"x", headers={"content-type": "text/plain"}),
            422: await client.post(
                "/fhir/ServiceRequest", content=json.dumps(service_request(subject=None)), headers=fhir_json
            ),
        }
    codes = {status: r.json()["issue"][0]["details"]["coding"][0] for status, r in answers.items()}
    assert {status: r.status_code for status, r in answers.items()} == {s: s for s in answers}
    assert {s: c["code"] for s, c in codes.items()} == {
        401: "SEND_UNAUTHORIZED",
        404: "REC_NOT_FOUND",
        415: "REC_BAD_REQUEST",
        422: "REC_UNPROCESSABLE_ENTITY",
    }
    assert {c["system"] for c in codes.values()} == {BARS_ERROR_CODES}

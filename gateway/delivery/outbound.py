"""Choosing the outbound adapter: a receiver's destination (from the service directory) names the
format it takes and where; `Outbound.send` hands the event to the adapter for that format.

    fhir-rest       POST / conditional PUT of the ServiceRequest to the receiver's FHIR base URL
    fhir-messaging  a BaRS message Bundle to the receiver's `$process-message`
    hl7v2-mllp      REF^I12 over MLLP to host:port (one connection per receiver, kept open), delivered
                    when the ACK says AA
    kafka           nothing to send: the receiver reads the topic itself
    mesh            the payload its workflow takes to its MESH mailbox, tracked until downloaded

A status event (a Task change, back to the referrer) goes as the Task: conditional PUT (fhir-rest), a
BaRS response message (fhir-messaging), RRI^I12 (hl7v2-mllp), the same over MESH, or nothing (kafka).

Must not: retry, record or commit (the spine and the consumer do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from adapters.hl7v2.tables import Hl7Tables
from adapters.outbound import fhir_http, hl7v2_mllp, mesh
from adapters.outbound.receipt import Outgoing, Receipt
from gateway.errors import DeliveryFailed
from gateway.settings import DeliverySettings

KAFKA = "kafka"
FORMATS = (fhir_http.REST, fhir_http.MESSAGING, hl7v2_mllp.FORMAT, KAFKA, mesh.FORMAT)


@dataclass(frozen=True)
class Destination:
    receiver: str  # the directory's service id
    format: str  # one of FORMATS
    address: str  # FHIR base URL, MLLP host:port, the topic the receiver reads, or a MESH mailbox
    workflow: str | None = None  # MESH: the Mex-WorkflowID the receiver takes this format on
    payload: str | None = None  # MESH: bars-json, bars-xml or hl7v2


class Destinations(Protocol):
    """Where each receiver takes its referrals (the service directory)."""

    def destination(self, receiver: str) -> Destination: ...


class MeshChannel(Protocol):
    """The gateway's MESH outbox (gateway/mesh/outbox.py), when MESH is configured."""

    async def send(self, destination: Destination, outgoing: Outgoing) -> Receipt: ...


class Outbound:
    def __init__(self, settings: DeliverySettings, hl7: Hl7Tables, mesh: MeshChannel | None = None) -> None:
        self._settings = settings
        self._hl7 = hl7  # the code tables of the settings' SCHEMAS_DIR, for REF^I12 and RRI^I12
        self._mesh = mesh
        self._http: httpx.AsyncClient | None = None
        self._mllp = hl7v2_mllp.MllpClient(
            settings.mllp_connect_timeout_s, settings.mllp_timeout_s, settings.mllp_max_ack_bytes
        )  # one connection per MLLP receiver, kept open

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._settings.http_timeout_s, follow_redirects=False)

    async def stop(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        await self._mllp.close()

    async def send(self, destination: Destination, outgoing: Outgoing) -> Receipt:
        if outgoing.is_status:
            return await self._send_status(destination, outgoing)
        match destination.format:
            case fhir_http.REST:
                return await fhir_http.send_service_request(self._client(), destination.address, outgoing)
            case fhir_http.MESSAGING:
                return await fhir_http.send_message(self._client(), destination.address, outgoing)
            case hl7v2_mllp.FORMAT:
                return await hl7v2_mllp.send_ref_i12(self._mllp, destination.address, outgoing, self._hl7)
            case "kafka":
                return Receipt(f"nothing to send: the receiver reads {destination.address or 'the topic'} itself")
            case mesh.FORMAT:
                return await self._mesh_channel().send(destination, outgoing)
        raise DeliveryFailed(f"no outbound adapter speaks '{destination.format}'", retriable=False)

    async def _send_status(self, destination: Destination, outgoing: Outgoing) -> Receipt:
        """A Task change back to the referrer, in the format its endpoint takes."""
        match destination.format:
            case fhir_http.REST:
                return await fhir_http.send_task(self._client(), destination.address, outgoing)
            case fhir_http.MESSAGING:
                return await fhir_http.send_task_message(self._client(), destination.address, outgoing)
            case hl7v2_mllp.FORMAT:
                return await hl7v2_mllp.send_rri_i12(self._mllp, destination.address, outgoing, self._hl7)
            case "kafka":
                topic = destination.address or "the status topic"
                return Receipt(f"nothing to send: the referrer reads {topic} itself")
            case mesh.FORMAT:
                return await self._mesh_channel().send(destination, outgoing)
        raise DeliveryFailed(f"no outbound adapter speaks '{destination.format}'", retriable=False)

    def _mesh_channel(self) -> MeshChannel:
        if self._mesh is None:
            raise DeliveryFailed("the directory names a MESH endpoint, but MESH is not configured (MESH_URL)")
        return self._mesh

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise DeliveryFailed("outbound HTTP is not started")
        return self._http

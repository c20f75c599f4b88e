"""Choosing the outbound adapter: a receiver's destination (from the service directory) names the
format it takes and where; `Outbound.send` hands the event to the adapter for that format.

    fhir-rest       POST / conditional PUT of the ServiceRequest to the receiver's FHIR base URL
    fhir-messaging  a BaRS message Bundle to the receiver's `$process-message`
    hl7v2-mllp      REF^I12 over MLLP to host:port, delivered when the ACK says AA
    kafka           nothing to send: the receiver reads the topic itself
    mesh            the payload its workflow takes to its MESH mailbox, tracked until downloaded

A status event (a Task change, back to the referrer) goes as the Task: conditional PUT (fhir-rest), a
BaRS response message (fhir-messaging), RRI^I12 (hl7v2-mllp), the same over MESH, or nothing (kafka).

At most `in_flight_per_receiver` sends go to one receiver at once; the rest wait their turn. Each
receiver has its own HTTP client (HTTP/1.1 keep-alive, as many connections as sends at once) and its
MLLP connections (`mllp_connections_per_receiver`, one by default), kept open between deliveries and
closed on stop.

Must not: retry, record or commit (the spine and the consumer do).
"""

from __future__ import annotations

import asyncio
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
        self._started = False
        self._http: dict[str, httpx.AsyncClient] = {}  # per receiver
        self._turns: dict[str, asyncio.Semaphore] = {}  # per receiver: sends at once
        self._mllp = hl7v2_mllp.MllpClient(
            settings.mllp_connect_timeout_s,
            settings.mllp_timeout_s,
            settings.mllp_max_ack_bytes,
            connections=min(settings.mllp_connections_per_receiver, settings.in_flight_per_receiver),
        )

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False
        clients, self._http = list(self._http.values()), {}
        for client in clients:
            await client.aclose()
        await self._mllp.close()

    async def send(self, destination: Destination, outgoing: Outgoing) -> Receipt:
        turn = self._turns.setdefault(destination.receiver, asyncio.Semaphore(self._settings.in_flight_per_receiver))
        async with turn:
            return await self._send(destination, outgoing)

    async def _send(self, destination: Destination, outgoing: Outgoing) -> Receipt:
        if outgoing.is_status:
            return await self._send_status(destination, outgoing)
        match destination.format:
            case fhir_http.REST:
                return await fhir_http.send_service_request(self._client(destination), destination.address, outgoing)
            case fhir_http.MESSAGING:
                return await fhir_http.send_message(self._client(destination), destination.address, outgoing)
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
                return await fhir_http.send_task(self._client(destination), destination.address, outgoing)
            case fhir_http.MESSAGING:
                return await fhir_http.send_task_message(self._client(destination), destination.address, outgoing)
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

    def _client(self, destination: Destination) -> httpx.AsyncClient:
        """The receiver's HTTP client, made at its first delivery: its connections stay open between
        deliveries (keep-alive), as many as may be sent to it at once."""
        if not self._started:
            raise DeliveryFailed("outbound HTTP is not started")
        client = self._http.get(destination.receiver)
        if client is None:
            size = self._settings.in_flight_per_receiver
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            client = httpx.AsyncClient(timeout=self._settings.http_timeout_s, follow_redirects=False, limits=limits)
            self._http[destination.receiver] = client
        return client

"""MESH as an outbound channel: send one event to a receiver's (or referrer's) mailbox and follow it
until MESH says the recipient downloaded it, or could not.

    recipient: the directory's mailbox, or MESH's endpoint look-up by ODS code and workflow
    → sent before for this event? follow that message : encode (adapters/outbound/mesh) and send,
      Mex-LocalID = event id → record the MESH message id
    → track every `track_interval_s`: acknowledged → delivered; undeliverable / error → DeliveryFailed
      (retriable: the next attempt sends again); not yet within `track_timeout_s` → NotYetTaken
      (the next attempt follows the same message, never sends a second one, and is not counted:
      only MESH's own verdict, expired or undeliverable, leads towards the dead letter)

The delivery spine's retry rules and dead letter apply to whatever this raises, as for every other
adapter. Must not: decide to retry or dead-letter, or commit a delivery (gateway/delivery does).
"""

from __future__ import annotations

import asyncio
import logging
import time

from adapters.hl7v2.tables import Hl7Tables
from adapters.outbound import mesh as adapter
from adapters.outbound.receipt import Outgoing, Receipt
from gateway.delivery.outbound import Destination
from gateway.errors import DeliveryFailed, NotYetTaken
from gateway.mesh.client import MeshMailboxClient
from gateway.observability import mesh_metrics as metrics
from gateway.settings import MeshSettings
from gateway.store.mesh_sent import MeshSentLog

log = logging.getLogger(__name__)
LOOKUP_PREFIX = "ods:"


class MeshSender:
    def __init__(self, settings: MeshSettings, client: MeshMailboxClient, sent: MeshSentLog, hl7: Hl7Tables) -> None:
        self._settings = settings
        self._hl7 = hl7  # the code tables REF^I12 and RRI^I12 files are written with
        self._client = client  # the gateway's sending mailbox
        self._sent = sent

    @property
    def mailbox(self) -> str:
        return self._client.mailbox

    async def send(self, destination: Destination, outgoing: Outgoing) -> Receipt:
        started = time.perf_counter()
        workflow = destination.workflow
        if not workflow:
            why = f"the directory gives {destination.receiver}'s MESH endpoint no workflow id"
            raise DeliveryFailed(why, retriable=False)
        recipient = await self._recipient(destination.address, workflow)
        earlier = await self._sent.find(outgoing.event_id, recipient)
        if earlier is not None and earlier.status not in adapter.FAILED:
            message_id = earlier.message_id
            log.info("event %s: following MESH message %s to %s", outgoing.event_id, message_id, recipient)
        else:
            message_id = await self._send(destination, outgoing, recipient, workflow)
        receipt = await self._track(outgoing.event_id, recipient, message_id)
        metrics.message(self.mailbox, "out", "downloaded", time.perf_counter() - started)
        return receipt

    async def _recipient(self, address: str, workflow: str) -> str:
        """A mailbox id, or `ods:CODE`: the mailbox MESH's endpoint look-up gives for that workflow."""
        if not address.startswith(LOOKUP_PREFIX):
            return address
        ods = address.removeprefix(LOOKUP_PREFIX)
        found = await self._client.lookup(ods, workflow)
        if not found:
            raise DeliveryFailed(f"MESH knows no mailbox of {ods} for workflow {workflow}", retriable=False)
        return found[0]

    async def _send(self, destination: Destination, outgoing: Outgoing, recipient: str, workflow: str) -> str:
        file = adapter.encode(outgoing, destination.payload or "bars-json", recipient, self._hl7)
        message_id = await self._client.send(
            recipient,
            file.body,
            workflow_id=workflow,
            local_id=outgoing.event_id,
            filename=file.filename,
            content_type=file.content_type,
        )
        referral = adapter.referral_id(outgoing)
        await self._sent.sent(outgoing.event_id, recipient, message_id, self.mailbox, workflow, referral)
        metrics.message(self.mailbox, "out", "sent")
        log.info("event %s sent to MESH %s as %s (%s)", outgoing.event_id, recipient, message_id, workflow)
        return message_id

    async def _track(self, event_id: str, recipient: str, message_id: str) -> Receipt:
        deadline = time.monotonic() + self._settings.track_timeout_s
        last = "accepted"
        while True:
            tracking = await self._client.track(message_id)
            status = str(tracking.get("status") or "").lower()
            if status and status != last:
                await self._sent.tracked(event_id, recipient, status)
                last = status
            try:
                receipt = adapter.tracked(tracking, recipient)
            except DeliveryFailed:
                metrics.message(self.mailbox, "out", status or "failed")
                raise
            if receipt is not None:
                return receipt
            if time.monotonic() >= deadline:
                raise NotYetTaken(
                    f"MESH message {message_id} not yet downloaded by {recipient} "
                    f"within {self._settings.track_timeout_s:g}s; the next attempt follows it again"
                )
            await asyncio.sleep(self._settings.track_interval_s)

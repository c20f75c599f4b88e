"""One of the gateway's MESH mailboxes, through NHS Digital's `mesh-client`, for asyncio callers.

mesh-client does the MESH API's work: the NHSMESH HMAC token on every request, mutual TLS, the
handshake, inbox listing, retrieval with chunks reassembled and Content-Encoding undone, acknowledgement,
chunked (and gzip) sending, tracking and endpoint look-up. It is synchronous (requests), so each call
runs in a worker thread. Library errors become gateway errors here: MESH not answering, or answering
5xx, is `MeshUnavailable` (retriable); a 4xx names what was wrong. Must not: decide what a message
means, or keep anything beyond the HTTP session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import mesh_client
import requests

from gateway.errors import DeliveryFailed, ReceiverError
from gateway.settings import MeshMailbox, MeshSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class MeshUnavailable(ReceiverError):
    """MESH did not answer, or answered with a server error: nothing was done, try again."""

    http_status = 503


@dataclass(frozen=True)
class Received:
    """One message from a MESH inbox, read whole (mesh-client joins its chunks)."""

    message_id: str
    sender: str  # Mex-From: the sending mailbox
    workflow_id: str
    message_type: str  # DATA, or REPORT (MESH's own non-delivery reports)
    body: bytes
    content_type: str | None
    local_id: str | None
    subject: str | None
    linked_message_id: str | None  # a REPORT: the message it is about
    status_description: str | None
    chunks: int


class MeshMailboxClient:
    def __init__(self, settings: MeshSettings, mailbox: MeshMailbox) -> None:
        assert settings.url is not None
        self.mailbox = mailbox.id
        self._settings = settings
        cert = (str(mailbox.cert_file), str(mailbox.key_file)) if mailbox.cert_file and mailbox.key_file else None
        verify: str | bool = str(settings.ca_file) if settings.ca_file else settings.verify_tls
        key = settings.shared_key.get_secret_value().encode() if settings.shared_key else None
        self._client = mesh_client.MeshClient(
            settings.url,
            mailbox.id,
            mailbox.password.get_secret_value(),
            shared_key=key,
            cert=cert,
            verify=verify,
            max_chunk_size=settings.chunk_size_bytes,
            max_retries=0,  # the gateway's own loops retry; a hidden retry could send a message twice
            timeout=settings.timeout_s,
            application_name="referral-gateway",
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def handshake(self) -> None:
        await self._call("handshake", self._client.handshake)

    async def inbox(self) -> list[str]:
        return await self._call("list", self._client.list_messages)

    async def retrieve(self, message_id: str) -> Received:
        return await self._call("retrieve", self._read, message_id)

    async def acknowledge(self, message_id: str) -> None:
        await self._call("acknowledge", self._client.acknowledge_message, message_id)

    async def send(
        self,
        recipient: str,
        body: bytes,
        *,
        workflow_id: str,
        local_id: str,
        content_type: str,
        filename: str,
        subject: str | None = None,
    ) -> str:
        """Sends `body` (in chunks when larger than the chunk size); returns MESH's message id."""

        optional: dict[str, Any] = {"subject": subject} if subject else {}

        def send() -> str:
            return self._client.send_message(
                recipient,
                body,
                workflow_id=workflow_id,
                local_id=local_id,
                content_type=content_type,
                filename=filename,
                **optional,
            )

        return await self._call("send", send)

    async def track(self, message_id: str) -> dict[str, Any]:
        return dict(await self._call("track", self._client.track_message, message_id))

    async def lookup(self, ods_code: str, workflow_id: str) -> list[str]:
        """The mailboxes an organisation receives a workflow in."""
        found = await self._call("lookup", self._client.lookup_endpoint, ods_code, workflow_id)
        return [str(r["mailbox_id"]) for r in found.get("results", [])]

    def _read(self, message_id: str) -> Received:
        message = self._client.retrieve_message(message_id)
        try:
            body = message.read()
        finally:
            message.close()  # type: ignore[no-untyped-call]
        chunks = str(message.mex_header("chunk-range") or "1:1").partition(":")[2]
        return Received(
            message_id=message_id,
            sender=str(message.sender or ""),
            workflow_id=str(message.workflow_id or ""),
            message_type=str(message.message_type or "DATA").upper(),
            body=body,
            content_type=message.content_type,
            local_id=message.local_id,
            subject=message.subject,
            linked_message_id=message.mex_header("linkedmsgid"),
            status_description=message.mex_header("statusdescription"),
            chunks=int(chunks) if chunks.isdigit() else 1,
        )

    async def _call(self, what: str, call: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(call, *args)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in (408, 425, 429):
                raise MeshUnavailable(f"MESH {what} for {self.mailbox} answered {status}") from exc
            raise DeliveryFailed(f"MESH {what} for {self.mailbox} refused: {status}", retriable=False) from exc
        except mesh_client.MeshError as exc:
            raise DeliveryFailed(f"MESH {what} for {self.mailbox} refused: {exc.args[0]}", retriable=False) from exc
        except (requests.RequestException, OSError) as exc:
            raise MeshUnavailable(f"MESH {what} for {self.mailbox} failed: {type(exc).__name__}") from exc

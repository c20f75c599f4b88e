"""`InboundLog.receiving(arrival)`: the one call a channel surface makes per message.

Inside it, the intake finds the arrival (`arrival.current()`) and commits its row with the referral;
on the way out, whatever did not go through that commit (a refusal, the gateway's failure, a Task
moved) is appended to the log, before the surface answers. Every outcome is counted here, so a
refusal before the intake is counted as surely as one inside it:

    gateway_inbound_messages_total{adapter,outcome}   accepted, duplicate, refused, failed
    gateway_inbound_refused_total{adapter,reason,sender}  the reason classes of arrival.py, the sender's
                                                      organisation (MSH-4, the caller's ODS code)
    gateway_referrals_rejected_total{adapter,error}   every refusal, by error class

With the log off (`INBOUND_ENABLED=false`) nothing is written, and every outcome is still counted.
A log that cannot be written does not stop the answer (the sender is told what happened either way);
it is logged as an error. Must not: decide an outcome, or change what the surface answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.errors import GatewayError, StoreUnavailable
from gateway.inbound_log import arrival as arrivals
from gateway.inbound_log.arrival import REFUSED, Arrival
from gateway.observability import metrics
from gateway.store.inbound import InboundMessages

log = logging.getLogger(__name__)


class InboundLog:
    def __init__(self, messages: InboundMessages | None, enabled: bool = True) -> None:
        self._messages = messages if enabled else None

    @property
    def enabled(self) -> bool:
        return self._messages is not None

    @asynccontextmanager
    async def receiving(self, arrival: Arrival) -> AsyncIterator[Arrival]:
        """Log `arrival` with its outcome by the end of the block (an error raised in it is noted as
        the refusal, and raised on)."""
        token = arrivals._current.set(arrival if self.enabled else None)
        try:
            yield arrival
        except GatewayError as exc:
            arrival.refuse(exc)
            await self.settle(arrival)
            raise
        except Exception:
            arrival.refuse(GatewayError("internal error"))
            await self.settle(arrival)
            raise
        else:
            await self.settle(arrival)
        finally:
            arrivals._current.reset(token)

    async def settle(self, arrival: Arrival) -> None:
        """Count the outcome, and append the row unless the referral's commit holds it already (once)."""
        if arrival.counted:
            return
        arrival.counted = True
        outcome = arrival.final_outcome()
        metrics.inbound(arrival.channel, outcome)
        if outcome == REFUSED and arrival.error is not None:
            organisation = arrival.sender.split("^")[-1]  # MSH-3^MSH-4: the facility
            metrics.refused(arrival.channel, arrival.final_reason(), type(arrival.error).__name__, organisation)
        if arrival.logged or self._messages is None:
            return
        try:
            await self._messages.record(arrival.final_row())
        except StoreUnavailable as exc:
            log.error("inbound %s %s (%s) not logged: %s", arrival.channel, arrival.id, outcome, exc.message)
            return
        arrival.logged = True

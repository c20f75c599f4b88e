"""The wait watcher: a component that, every `watcher.interval_s`, looks at each referral whose Task
sits at a watched status and raises a breach when it has waited longer than its receiving service
allows for its priority (schemas/directory/wait-limits.json, counted on schemas/calendar).

    Task at `requested` since 09:10, urgent, service iapt-duty (2 working hours) → due 11:10
      11:10 passed, Task unmoved → breach: stored, on referrals.status, in the trace, as metrics,
                                    and, where the service names a fallback, a copy of the referral
                                    to the fallback, marked as an escalation (once per referral)
      the Task moves              → the breach clears: stored, on referrals.status, in the trace

A breach and everything it sends is one commit (gateway/store/breaches.py), keyed so that a second
pass or a second gateway process raises nothing twice. Idempotent `start()`/`stop()`; `check(at)`
is one pass, what the job runs and what tests call with a clock of their own.
Must not: move a Task or send anything itself (the relay and delivery do, from the outbox).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gateway.errors import StoreUnavailable
from gateway.observability import metrics
from gateway.safety import notices
from gateway.safety.calendar import WorkingCalendar
from gateway.safety.limits import Limit, WaitLimits
from gateway.settings import WatcherSettings
from gateway.store import Store
from gateway.store.breaches import Breach, Breaches, Waiting
from gateway.store.store import OutboxEvent

log = logging.getLogger(__name__)
_PAGE = 1000  # Tasks a pass reads at once
HOLIDAYS_WARNING_DAYS = 90  # warn at start-up when the bank holidays listed end sooner than this
_BREACH_NAMESPACE = uuid.UUID("5b0e8a8e-7c1d-4f0a-9a63-2d8f6c1e4b17")
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    raised: tuple[str, ...] = ()  # breach ids
    escalated: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()


class WaitWatcher:
    def __init__(
        self,
        store: Store,
        limits: WaitLimits,
        calendar: WorkingCalendar,
        wake_relay: Callable[[], None],
        settings: WatcherSettings,
        status_topic: str,
        clock: Clock | None = None,
    ) -> None:
        self.breaches = Breaches(store)
        self.limits = limits
        self.calendar = calendar
        self._wake_relay = wake_relay
        self._settings = settings
        self._status_topic = status_topic  # settings.topics.status: breaches go where Task events go
        self.clock: Clock = clock or (lambda: datetime.now(UTC))  # tests set their own
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None and self._settings.enabled:
            if self.calendar.runs_out_within(self.clock().date(), HOLIDAYS_WARNING_DAYS):
                log.warning(
                    "the bank holidays in schemas/calendar end on %s: add the next year's before then",
                    self.calendar.holidays_until,
                )
            self._task = asyncio.create_task(self._run(), name="wait-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def check(self, at: datetime | None = None) -> Pass:
        """One pass: raise what is due, clear what moved, set the open-breach gauge."""
        at = at or self.clock()
        open_now = await self.breaches.open()
        opened = {(b.task_id, b.since) for b in open_now}
        in_breach = {b.task_id for b in open_now}
        raised: list[Breach] = []
        current: set[tuple[str, datetime, str]] = set()  # where the Tasks in breach stand now
        async for page in self._waiting():
            fresh = [item for item in page if (item.task_id, item.since) not in opened]
            raised += [b for item in fresh if (b := await self._if_due(item, at)) is not None]
            current |= {(w.task_id, w.since, w.status) for w in page if w.task_id in in_breach}
        moved = [b for b in open_now if (b.task_id, b.since, b.status) not in current]
        cleared = [b.id for b in moved if await self._clear(b, at)]
        metrics.wait_breaches_open(await self.breaches.counts())
        if raised or cleared:
            self._wake_relay()
        escalated = tuple(b.id for b in raised if b.escalated_to)
        return Pass(tuple(b.id for b in raised), escalated, tuple(cleared))

    async def _waiting(self) -> AsyncIterator[list[Waiting]]:
        """Every Task at a watched status, a page at a time: a pass holds one page of the open
        referrals, not all of them (a whole waiting list of Tasks, each with its JSON, every minute)."""
        after = None
        while True:
            page = await self.breaches.waiting(self.limits.watched_statuses(), after=after, limit=_PAGE)
            if page:
                yield page
            if len(page) < _PAGE:
                return
            after = page[-1].task_id

    async def _if_due(self, item: Waiting, at: datetime) -> Breach | None:
        """The breach raised for `item`, if it is due; one referral's failure is logged and the pass
        goes on, so a bad row never stops the watching of every other referral."""
        breach = self._due(item, at)
        if breach is None:
            return None
        try:
            return await self._raise(breach, item)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("wait watcher: the breach of referral %s could not be raised", item.referral_id)
            return None

    def _due(self, item: Waiting, at: datetime) -> Breach | None:
        """The breach `item` is in at `at`, or None while it is within its limit (or not watched)."""
        if item.service is None:
            return None
        limit = self.limits.limit(item.service, item.priority, item.status)
        if limit is None:
            return None
        due = limit.due(item.since, self.calendar)
        return _breach(item, limit, due, at) if at >= due else None

    async def _raise(self, breach: Breach, item: Waiting) -> Breach | None:
        referral = await self.breaches.referral(breach.referral_id)
        if referral is None:
            return None
        resource, topic, key, correlation_id = referral
        fallback = self.limits.fallback(breach.service, breach.priority)
        if fallback is not None and not await self.breaches.escalated_before(breach.referral_id):
            breach = replace(breach, escalated_to=fallback)
        out: list[OutboxEvent] = [notices.breach_event(breach, item.task, key, correlation_id, self._status_topic)]
        steps = [("wait-breached", _step(breach))]
        if breach.escalated_to:
            escalation = notices.escalation_event(breach, resource, topic, key, correlation_id)
            out.append(escalation)
            steps.append(
                ("escalated", {"to": breach.escalated_to, "from": breach.service, "event_id": escalation.event_id})
            )
        if not await self.breaches.raise_breach(breach, out, steps):
            return None  # raised by another pass or process first
        metrics.wait_breached(breach.service, breach.priority, breach.status)
        log.warning(
            "referral %s waited at %s longer than %s (%s, %s)%s",
            breach.referral_id,
            breach.status,
            breach.wait_limit,
            breach.service,
            breach.priority,
            f"; escalated to {breach.escalated_to}" if breach.escalated_to else "",
        )
        return breach

    async def _clear(self, breach: Breach, at: datetime) -> bool:
        referral = await self.breaches.referral(breach.referral_id)
        _, _, key, correlation_id = referral or ("", "", "", breach.referral_id)
        task = await self.breaches.task(breach.task_id)
        event = notices.cleared_event(breach, task or "{}", key, correlation_id, at, self._status_topic)
        waited = self.calendar.between(breach.since, at)
        step = {
            **_step(breach),
            "cleared_at": at.isoformat(),
            "working_hours_waited": round(waited.total_seconds() / 3600, 2),
        }
        done = await self.breaches.clear(breach, at, [event], [("wait-breach-cleared", step)])
        if done:
            log.info("referral %s: the wait breach at %s cleared (the Task moved)", breach.referral_id, breach.status)
        return done

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except StoreUnavailable as exc:
                log.warning("wait watcher: the store cannot be read now: %s", exc)
            except Exception:  # a bad row must not stop the watching of every other referral
                log.exception("wait watcher: the pass failed")
            await asyncio.sleep(self._settings.interval_s)


def _breach(item: Waiting, limit: Limit, due: datetime, at: datetime) -> Breach:
    assert item.service is not None
    ident = str(uuid.uuid5(_BREACH_NAMESPACE, f"{item.task_id}|{item.since.isoformat()}"))
    return Breach(
        ident,
        item.referral_id,
        item.task_id,
        item.service,
        item.priority,
        item.status,
        item.since,
        due,
        limit.text,
        at,
        None,
    )


def _step(breach: Breach) -> dict[str, object]:
    return {
        "service": breach.service,
        "priority": breach.priority,
        "status": breach.status,
        "limit": breach.wait_limit,
        "since": breach.since.isoformat(),
        "due": breach.due_at.isoformat(),
        "breach_id": breach.id,
    }

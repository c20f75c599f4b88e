"""The inbound log in the store, on SQLite and PostgreSQL: an accepted message's row is committed by
the referral's own group commit with what it became, a refused one by the log's; searches are paged
with the total; the log refuses UPDATE and keeps what retention does not prune."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.errors import InvalidReferral, Issue, StoreUnavailable
from gateway.inbound_log.arrival import Arrival
from gateway.inbound_log.log import InboundLog
from gateway.intake import Intake
from gateway.monitoring import trace
from gateway.monitoring.retention import Pruner
from gateway.routing import load_router
from gateway.settings import SCHEMAS_DIR, RetentionSettings
from gateway.store import Store
from gateway.store.inbound import InboundQuery
from tests.hl7v2.messages import IAPT, fresh, referral, sample, with_field
from tests.samples import valid_nhs_number


def intake(store: Store) -> Intake:
    return Intake(store, load_router(SCHEMAS_DIR), on_commit=lambda: None)


async def take(log: InboundLog, intake: Intake, text: str) -> Arrival:
    arrival = Arrival("hl7v2-mllp", text.encode(), sender="EMISWeb^A81001", control_id=text.split("|")[9])
    async with log.receiving(arrival):
        await intake.accept(referral(text))
    return arrival


async def test_an_accepted_message_is_logged_by_the_referral_commit_with_the_referral_it_became(
    each_store: Store,
) -> None:
    log, taking = InboundLog(each_store.inbound), intake(each_store)
    texts = [fresh(sample(IAPT)) for _ in range(30)]
    arrivals = await asyncio.gather(*(take(log, taking, t) for t in texts))  # one group commit or a few
    again = await take(log, taking, texts[0])  # a resend
    page = await each_store.inbound.search(InboundQuery(sender="A81001"), 0, 10)
    assert page.total == 31 and len(page.items) == 10 and page.next_offset == 10
    for arrival in arrivals:
        row = await each_store.inbound.get(arrival.id)
        assert row is not None and row.outcome == "accepted" and row.referral_id == arrival.referral_id
        assert (await each_store.get(str(row.referral_id))) is not None
    duplicate = await each_store.inbound.get(again.id)
    assert duplicate is not None and duplicate.outcome == "duplicate"
    assert duplicate.referral_id == arrivals[0].referral_id


async def test_a_refusal_is_logged_with_every_issue_and_its_reason(each_store: Store) -> None:
    log = InboundLog(each_store.inbound)
    arrival = Arrival("fhir-rest", b'{"resourceType": "ServiceRequest"}', sender="A81001", control_id="r-1")
    issues = (Issue("no subject", "ServiceRequest.subject", "required"), Issue("no intent", "ServiceRequest.intent"))
    with pytest.raises(InvalidReferral):
        async with log.receiving(arrival):
            arrival.in_intake = True
            raise InvalidReferral("not UK Core", *issues)
    (row,) = (await each_store.inbound.search(InboundQuery(equals={"control_id": "r-1"}))).items
    assert (row.outcome, row.reason, row.raw) == ("refused", "ukcore", b'{"resourceType": "ServiceRequest"}')
    assert [i["expression"] for i in row.issues] == ["ServiceRequest.subject", "ServiceRequest.intent"]


async def test_the_log_refuses_an_update_and_retention_prunes_only_what_is_old(each_store: Store) -> None:
    log = InboundLog(each_store.inbound)
    old = Arrival("pad", b"a=1", received_at=datetime.now(UTC) - timedelta(days=100))
    new = Arrival("pad", b"a=2")
    for arrival in (old, new):
        async with log.receiving(arrival):
            pass
    with pytest.raises((DBAPIError, StoreUnavailable)):
        await each_store.write(lambda conn: conn.execute(text("UPDATE inbound_messages SET outcome = 'accepted'")))
    pruned = await Pruner(each_store, RetentionSettings(inbound_days=90), "referrals.deadletter").prune()
    assert pruned.inbound == 1
    assert await each_store.inbound.get(old.id) is None and await each_store.inbound.get(new.id) is not None


async def test_a_trace_search_matching_5001_referrals_says_5001_and_pages(store: Store) -> None:
    taking = intake(store)
    one_patient = valid_nhs_number()
    texts = [with_field(fresh(sample(IAPT)), "PID", 3, f"{one_patient}^^^NHS^NH") for _ in range(5001)]
    await asyncio.gather(*(taking.accept(referral(t)) for t in texts))
    first = await trace.find(store, one_patient)
    assert first.total == 5001 and len(first.items) == trace.PAGE_SIZE
    last = await trace.find(store, one_patient, offset=5000)
    assert len(last.items) == 1 and last.items[0].id not in {f.id for f in first.items}
    assert last.next_offset is None and last.previous_offset == 4980


async def test_a_message_refused_before_the_intake_is_found_by_the_nhs_number_it_carries(each_store: Store) -> None:
    log = InboundLog(each_store.inbound)
    arrival = Arrival("hl7v2-mllp", b"MSH|...\rPID|1||9434765910^^^NHS^NH\r", control_id="bad-nhs")
    with pytest.raises(InvalidReferral):
        async with log.receiving(arrival):
            raise InvalidReferral("the NHS number is not valid", Issue("check digit", "PID-3"))
    found = await each_store.inbound.search(InboundQuery(equals={"nhs_number": "9434765910"}))
    assert [m.control_id for m in found.items] == ["bad-nhs"] and found.total == 1
    assert (await each_store.inbound.search(InboundQuery(equals={"nhs_number": "9434765919"}))).total == 0

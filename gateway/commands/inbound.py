"""`inbound list|show|resubmit`: the inbound message log from the store. `list` searches it (paged,
with the total), `show` prints one message a segment or element a line with each issue marked where
it is (masked unless allowed), `resubmit` sends a refused message again, edited (`--file`) or as it
came, or every refused message of a sender or a reason in a window, through the same intake as the
running gateway (its relay publishes what is accepted)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.hl7v2 import tables as hl7_tables
from gateway.audit.trail import AuditTrail
from gateway.auth.senders import SenderCheck, SenderPolicy
from gateway.commands.common import clock, opened_store, operator, print_json, when
from gateway.errors import Issue, MalformedInput, NotFound
from gateway.inbound_log.arrival import OUTCOMES, REASONS
from gateway.inbound_log.log import InboundLog
from gateway.inbound_log.resubmit import Resubmission, Resubmitter
from gateway.intake import Intake
from gateway.mllp.handler import ReferralHandler
from gateway.monitoring import access, inbound
from gateway.monitoring.inbound import Shown
from gateway.observability.masking import scrub_text
from gateway.routing import load_router
from gateway.settings import Settings
from gateway.store.inbound import LoggedMessage


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser("inbound", help="the inbound message log: list, show, resubmit")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="inbound messages, newest first, with how many match")
    _criteria(listing)
    listing.add_argument("--channel", help="hl7v2-mllp, fhir-rest, fhir-messaging, pad, fhir-task, status-topic")
    listing.add_argument("--outcome", choices=OUTCOMES)
    listing.add_argument("--control-id", help="MSH-10, X-Request-Id")
    listing.add_argument("--referral", help="the referral it became (or duplicated)")
    listing.add_argument("--nhs", help="the patient's NHS number")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per message")
    listing.set_defaults(func=_list)
    show = actions.add_parser("show", help="one message, each issue marked where it is (masked)")
    show.add_argument("id")
    show.add_argument("--unmasked", action="store_true", help="show patient identifiers (only where allowed)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    resubmit = actions.add_parser("resubmit", help="send a refused message again, or every one in a window")
    resubmit.add_argument("id", nargs="?", help="the message to send again")
    resubmit.add_argument("--file", type=Path, help="the edited message to send instead of the original")
    _criteria(resubmit)
    resubmit.add_argument("--by", help="who to record as resubmitting (default: cli:<user>)")
    resubmit.set_defaults(func=_resubmit)


def _criteria(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="received at or after (ISO 8601; UTC when no zone)")
    parser.add_argument("--until", help="received before (ISO 8601)")
    parser.add_argument("--sender", help="an ODS code, or MSH-3^MSH-4")
    parser.add_argument("--reason", choices=REASONS, help="the refusal's reason class")


def _list(args: argparse.Namespace, settings: Settings) -> int:
    query = inbound.query(
        since=when(args.since),
        until=when(args.until),
        sender=args.sender or "",
        nhs=args.nhs or "",
        channel=args.channel or "",
        outcome=args.outcome or "",
        reason=args.reason or "",
        control_id=args.control_id or "",
        referral_id=args.referral or "",
    )

    async def run() -> tuple[list[LoggedMessage], int]:
        async with opened_store(settings) as store:
            page = await store.inbound.search(query, max(args.offset, 0), max(args.limit, 1))
        return page.items, page.total

    messages, total = asyncio.run(run())
    for m in messages:
        if args.json:
            print_json(_summary(m))
        else:
            outcome = f"{m.outcome} ({m.reason})" if m.reason else m.outcome
            print(f"{m.id}  {clock(m.received_at)}  {m.channel:14} {m.sender:24} {m.control_id or '-':20} {outcome}")
    shown = f"{args.offset + 1}-{args.offset + len(messages)}" if messages else "none"
    print(f"{total} messages match; {shown} shown", file=sys.stderr if args.json else sys.stdout)
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    if args.unmasked and not access.may_unmask(settings.monitor):
        print("referral-gateway: unmasked output is not allowed here (MONITOR_UNMASKED_ALLOWED)", file=sys.stderr)
        return 2

    async def run() -> LoggedMessage | None:
        async with opened_store(settings) as store:
            return await store.inbound.get(args.id)

    message = asyncio.run(run())
    if message is None:
        raise NotFound(f"no inbound message {args.id} is logged here")
    view = inbound.show(message, args.unmasked)
    if args.json:
        lines = [{"text": line.text, "issues": list(line.issues)} for line in view.lines]
        print(json.dumps({**_summary(message, args.unmasked), "lines": lines, "unplaced": list(view.unplaced)}))
        return 0
    _print(message, view, args.unmasked)
    return 0


def _print(m: LoggedMessage, view: Shown, unmasked: bool) -> None:
    facts = _summary(m, unmasked)
    print(f"inbound message {m.id}{'' if unmasked else ' (masked)'}")
    for label in ("received_at", "channel", "sender", "source_address", "destination", "control_id", "outcome"):
        print(f"  {label:15} {facts[label] or '-'}")
    for label in ("reason", "referral_id", "nhs_number", "resubmit_of", "resubmitted_by"):
        if facts[label]:
            print(f"  {label:15} {facts[label]}")
    print()
    for line in view.lines:
        print("  " + "".join(f">>{p.text}<<" if p.marked else p.text for p in line.parts))
        for note in line.issues:
            print(f"      ^ {note}")
    for note in view.unplaced:
        print(f"  ! {note}")


def _resubmit(args: argparse.Namespace, settings: Settings) -> int:
    windowed = args.since or args.until or args.sender or args.reason
    if bool(args.id) == bool(windowed):
        raise MalformedInput(
            "name a message, or give --since, --until and --sender or --reason",
            Issue("nothing or both", "id", "required"),
        )
    edited = args.file.read_bytes() if args.file else None

    async def run() -> list[Resubmission]:
        async with _resubmitter(settings) as resubmitter:
            if args.id:
                return [await resubmitter.resubmit(args.id, operator(args.by), edited)]
            since, until = when(args.since), when(args.until)
            if since is None or until is None:
                raise MalformedInput("a window needs --since and --until", Issue("missing", "since", "required"))
            query = inbound.query(since=since, until=until, sender=args.sender or "", reason=args.reason or "")
            return await resubmitter.bulk(query, operator(args.by))

    done = asyncio.run(run())
    for d in done:
        became = f" -> ServiceRequest/{d.referral_id}" if d.referral_id else ""
        print(f"{d.original} -> {d.attempt or '-'}: {d.outcome}{became}")
        for issue in d.issues:
            print(f"      {issue.expression or 'message'}: {issue.diagnostics}")
    print(f"{len(done)} resubmitted" if done else "no refused message matched")
    return 0


@asynccontextmanager
async def _resubmitter(settings: Settings) -> AsyncIterator[Resubmitter]:
    """The gateway's own intake and HL7 surface over the configured store, for the command's length."""
    async with opened_store(settings) as store:
        audit = AuditTrail(store, lambda: None, settings.store.batch_max, topic=settings.topics.audit)
        await audit.start()
        try:
            log = InboundLog(store.inbound)
            intake = Intake(store, load_router(settings.schemas_dir), lambda: None, audit=audit)
            hl7 = hl7_tables.load(settings.schemas_dir)
            senders = SenderCheck(SenderPolicy(settings.mllp.senders), audit)
            handler = ReferralHandler(
                intake, hl7, senders, organisations=settings.mllp.sender_organisations, inbound=log
            )
            pad = (settings.pad, settings.schemas_dir)
            yield Resubmitter(log, store.inbound, intake, handler, pad, audit, settings.inbound.bulk_max)
        finally:
            await audit.stop()


def _summary(m: LoggedMessage, unmasked: bool = False) -> dict[str, object]:
    return {
        "id": m.id,
        "received_at": m.received_at.isoformat(),
        "channel": m.channel,
        "sender": m.sender,
        "source_address": m.source_address,
        "destination": m.destination,
        "control_id": m.control_id,
        "outcome": m.outcome,
        "reason": m.reason,
        "referral_id": m.referral_id,
        "nhs_number": inbound.masked_nhs_number(m, unmasked),
        "issues": [
            {**i, "diagnostics": i.get("diagnostics") if unmasked else scrub_text(str(i.get("diagnostics")))}
            for i in m.issues
        ],
        "resubmit_of": m.resubmit_of,
        "resubmitted_by": m.resubmitted_by,
    }

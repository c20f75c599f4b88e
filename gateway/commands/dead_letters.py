"""`dlq list|show|replay|discard`: dead letters from the store, and what to do with them once the
cause is fixed. A replay is queued in the outbox; the running gateway's relay publishes it and its
delivery takes it from there (replaying twice queues it once)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from gateway.commands.common import clock, opened_store, operator, print_json, when
from gateway.errors import Issue, MalformedInput
from gateway.monitoring import access
from gateway.monitoring.dead_letter_json import dead_letter_json, replay_summary
from gateway.monitoring.dead_letters import STATES, DeadLetter, DeadLetters, Replayed
from gateway.routing import load_directory
from gateway.settings import Settings
from gateway.store import Store


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, discard")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead letters, newest first")
    listing.add_argument("--receiver", help="only this receiver's (directory service id)")
    listing.add_argument("--state", choices=[*STATES, "all"], default="open")
    listing.add_argument("--since", help="given up at or after (ISO 8601; UTC when no zone)")
    listing.add_argument("--until", help="given up before (ISO 8601)")
    listing.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    listing.set_defaults(func=_list)
    show = actions.add_parser("show", help="one dead letter: why, its history, and the event (masked)")
    show.add_argument("id")
    show.add_argument("--unmasked", action="store_true", help="show patient identifiers (only where allowed)")
    show.set_defaults(func=_show)
    replay = actions.add_parser("replay", help="replay dead letters, or every open one of a receiver in a window")
    replay.add_argument("ids", nargs="*", metavar="ID")
    replay.add_argument("--to", action="append", metavar="RECEIVER", help="replay to this receiver (repeatable)")
    replay.add_argument("--receiver", help="with --since and --until: every open dead letter of this receiver")
    replay.add_argument("--since")
    replay.add_argument("--until")
    replay.add_argument("--by", help="who to record as replaying (default: cli:<user>)")
    replay.set_defaults(func=_replay)
    discard = actions.add_parser("discard", help="discard a dead letter, saying why (recorded)")
    discard.add_argument("id")
    discard.add_argument("--reason", required=True)
    discard.add_argument("--by", help="who to record as discarding (default: cli:<user>)")
    discard.set_defaults(func=_discard)


def _dead_letters(settings: Settings, store: Store) -> DeadLetters:
    directory = load_directory(settings.schemas_dir)
    return DeadLetters(store, settings.delivery.dead_letter_topic, known_receiver=directory.__contains__)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> list[DeadLetter]:
        async with opened_store(settings) as store:
            state = None if args.state == "all" else args.state
            return await _dead_letters(settings, store).search(args.receiver, state, when(args.since), when(args.until))

    letters = asyncio.run(run())
    for d in letters:
        if args.json:
            print_json(dead_letter_json(d, unmasked=False, with_message=False))
        else:
            print(f"{d.id}  {clock(d.at)}  {d.state:9} {d.receiver or '-':28} {d.attempts:>3} attempts  {d.reason}")
    if not letters and not args.json:
        print("no dead letters")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    if args.unmasked and not access.may_unmask(settings.monitor):
        print("referral-gateway: unmasked output is not allowed here (MONITOR_UNMASKED_ALLOWED)", file=sys.stderr)
        return 2

    async def run() -> DeadLetter:
        async with opened_store(settings) as store:
            return await _dead_letters(settings, store).get(args.id)

    print(json.dumps(dead_letter_json(asyncio.run(run()), args.unmasked), indent=2, default=str))
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    windowed = args.receiver or args.since or args.until
    if bool(args.ids) == bool(windowed):
        raise MalformedInput(
            "name dead letters, or give --receiver, --since and --until", Issue("nothing or both", "ids", "required")
        )

    async def run() -> list[Replayed]:
        async with opened_store(settings) as store:
            letters = _dead_letters(settings, store)
            if args.ids:
                return await letters.replay(args.ids, operator(args.by), args.to)
            since, until = when(args.since), when(args.until)
            if since is None or until is None:
                raise MalformedInput("a window needs --since and --until", Issue("missing", "since", "required"))
            return await letters.replay_window(args.receiver, since, until, operator(args.by))

    done = asyncio.run(run())
    for r in done:
        print(f"{r.dead_letter} -> {r.receiver or 'its topic'}: {'queued' if r.queued else 'queued before'}")
    print(replay_summary(done) + "; the gateway's relay publishes it")
    return 0


def _discard(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> DeadLetter:
        async with opened_store(settings) as store:
            return await _dead_letters(settings, store).discard(args.id, args.reason, operator(args.by))

    letter = asyncio.run(run())
    print(f"{letter.id}: {letter.state}")
    return 0

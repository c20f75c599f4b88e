"""`referral-gateway partners add|list|remove` and `referral-gateway users add|list|remove`: setting up
who may call the gateway, against the store the settings name (migrated first, like `serve`).

A partner's client secret is generated and printed once (only its hash is kept); a person's password
is typed twice (or read from stdin with --password-stdin) and never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable

import httpx

from gateway.auth.bootstrap import CREDENTIALS_FILE
from gateway.auth.principal import ROLES, SCOPES
from gateway.auth.registry import Registry
from gateway.errors import GatewayError, NotFound, Unauthenticated
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.credentials import Credential, Kind

Command = Callable[[argparse.Namespace, Registry], Awaitable[int]]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    nouns: tuple[tuple[str, Kind], ...] = (("partners", "client"), ("users", "person"))
    for noun, kind in nouns:
        group = sub.add_parser(noun, help=f"set up {noun}: add, list, remove").add_subparsers(
            dest="action", required=True, metavar="ACTION"
        )
        _add_parser(group, kind)
        group.add_parser("list", help=f"list the {noun}").set_defaults(func=_runner(_list), kind=kind)
        remove = group.add_parser("remove", help="remove one (its tokens stop working within seconds)")
        remove.add_argument("id")
        remove.set_defaults(func=_runner(_remove), kind=kind)
    _add_token_command(sub)


def _add_token_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    token = sub.add_parser("token", help="print an access token for the development partner of a local first run")
    token.set_defaults(func=_token)


def _token(_: argparse.Namespace, settings: Settings) -> int:
    """Client credentials from DATA_DIR/local-dev-client.json, exchanged at the running gateway's
    token endpoint, as any partner's system would."""
    path = settings.data_dir / CREDENTIALS_FILE
    if not path.exists():
        raise NotFound(f"{path} does not exist: it is written by the first `referral-gateway serve` on loopback")
    credentials = json.loads(path.read_text())
    try:
        response = httpx.post(
            credentials["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(credentials["client_id"], credentials["client_secret"]),
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise GatewayError(f"the gateway at {credentials['token_url']} does not answer: {exc}") from exc
    if response.status_code != 200:
        raise Unauthenticated(f"the token endpoint refused the development partner: {response.text}")
    print(response.json()["access_token"])
    return 0


def _add_parser(group: argparse._SubParsersAction, kind: Kind) -> None:  # type: ignore[type-arg]
    what = "a partner's system (OAuth2 client)" if kind == "client" else "a person who signs in to the web pages"
    add = group.add_parser("add", help=f"add {what}")
    add.add_argument("id", help="client id" if kind == "client" else "user name")
    add.add_argument("--ods", required=True, help="the organisation's ODS code")
    add.add_argument("--scope", required=True, help=f"space-separated, from: {' '.join(SCOPES)}")
    add.add_argument("--name", default="", help="a description")
    add.add_argument("--all-organisations", action="store_true", help="may see every organisation's referrals")
    add.add_argument("--role", action="append", default=[], choices=ROLES, help="a role (may be repeated)")
    add.add_argument("--json", action="store_true", help="print the result as JSON")
    if kind == "person":
        add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=_runner(_add), kind=kind)


def _runner(command: Command) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        return asyncio.run(_with_registry(command, args, settings))

    return run


async def _with_registry(command: Command, args: argparse.Namespace, settings: Settings) -> int:
    store = Store(settings.store_url, schema=settings.store.db_schema)
    await store.start()
    try:
        return await command(args, Registry(store, 0))
    finally:
        await store.stop()


async def _add(args: argparse.Namespace, registry: Registry) -> int:
    password = _password(args) if args.kind == "person" else None
    secret = await registry.add(
        args.kind,
        args.id,
        ods=args.ods,
        scopes=args.scope,
        name=args.name,
        all_organisations=args.all_organisations,
        roles=" ".join(args.role),
        secret=password,
    )
    if args.kind == "person":
        print(json.dumps({"username": args.id}) if args.json else f"added user {args.id}")
        return 0
    if args.json:
        print(json.dumps({"client_id": args.id, "client_secret": secret}))
    else:
        print(f"added partner client {args.id}\nclient_secret: {secret}\n(shown once: only its hash is kept)")
    return 0


async def _list(args: argparse.Namespace, registry: Registry) -> int:
    for c in await registry.credentials.all(args.kind):
        print(_line(c))
    return 0


async def _remove(args: argparse.Namespace, registry: Registry) -> int:
    if await registry.remove(args.kind, args.id):
        print(f"removed {args.id}")
        return 0
    print(f"referral-gateway: {args.id} is not known", file=sys.stderr)
    return 1


def _line(c: Credential) -> str:
    reach = "all organisations" if c.all_organisations else c.ods
    roles = f"  roles: {c.roles}" if c.roles else ""
    return f"{c.id:24} {c.ods:10} {reach:18} {c.scopes}{roles}  ({c.name}, added {c.created_at:%Y-%m-%d})"


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("referral-gateway: the passwords differ")
    if len(password) < 12:
        raise SystemExit("referral-gateway: a password needs at least 12 characters")
    return password

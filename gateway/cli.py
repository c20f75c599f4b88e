"""The `referral-gateway` command: `serve` the gateway, and tools for integration engineers.

The integration engineers' commands (topics, lag, tail, trace, dlq) live in gateway/commands/; `serve`
logs JSON lines (gateway/observability/log_context.py), the other commands plain text.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from gateway import commands
from gateway.app import create_app
from gateway.auth import cli as auth_cli
from gateway.auth.bootstrap import CREDENTIALS_FILE
from gateway.commands import workers
from gateway.demo_receiver import DemoReceiver
from gateway.demo_receiver.mover import TaskMover
from gateway.errors import GatewayError
from gateway.observability import log_context
from gateway.settings import Settings

log = logging.getLogger("gateway")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"referral-gateway: the configuration is not valid:\n{exc}")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("httpx", "aiokafka"):  # the commands' own output is what a user reads
        logging.getLogger(chatty).setLevel(logging.WARNING)
    command: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        sys.exit(command(args, settings))
    except GatewayError as exc:
        sys.exit(f"referral-gateway: {exc.message}")
    except KeyboardInterrupt:
        sys.exit(130)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="referral-gateway", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the gateway (starts the embedded broker when no KAFKA_BOOTSTRAP_SERVERS)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the HTTP and MLLP ports (SO_REUSEPORT); more than 1 needs PostgreSQL",
    )
    serve.set_defaults(func=_serve)
    commands.add_commands(sub)
    auth_cli.add_commands(sub)
    demo = sub.add_parser("demo-receiver", help="run a demo receiving service (FHIR over HTTP, HL7 v2 over MLLP)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--http-port", type=int, default=8090, help="FHIR base URL: http://HOST:PORT/fhir")
    demo.add_argument("--mllp-port", type=int, default=2576)
    demo.add_argument("--record", type=Path, help="also append each referral received to this JSON Lines file")
    demo.add_argument("--gateway", help="the gateway whose Tasks it moves along (default: API_PUBLIC_URL)")
    demo.add_argument(
        "--credentials", type=Path, help="client credentials (default: DATA_DIR/local-dev-client.json of a first run)"
    )
    demo.add_argument("--pause", type=float, default=2.0, help="seconds between moving a Task from step to step")
    demo.add_argument("--no-move", action="store_true", help="only take referrals; never move their Tasks")
    demo.set_defaults(func=_demo_receiver)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers != 1:
        try:
            return workers.serve(settings, args.workers)
        except workers.Refused as exc:
            print(f"referral-gateway: {exc}", file=sys.stderr)
            return 2
    log_context.configure(settings.log_level)
    try:
        sockets = [_shared_socket(settings.api.host, settings.api.port)] if settings.api.reuse_port else None
    except OSError as exc:
        print(f"referral-gateway: cannot listen on {settings.api.host}:{settings.api.port}: {exc}", file=sys.stderr)
        return 1
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    _settle_garbage_collector()
    asyncio.run(server.serve(sockets=sockets))
    if not server.started:
        print("referral-gateway: the gateway did not start; see the errors above", file=sys.stderr)
        return 1
    return 0


def _shared_socket(host: str, port: int) -> socket.socket:
    """The HTTP port bound with SO_REUSEPORT: each worker of `serve --workers` binds its own."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


_GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (CPython's default: 700)


def _settle_garbage_collector() -> None:
    """Once per serving process, when the app is built: what that made (modules, models, schemas,
    routes) lives as long as the process, so it is frozen and full collections stop walking it.
    Young collections are made rarer too: what a referral makes is freed by reference counting,
    nearly all of it. Together worth a quarter more HL7 v2 messages a second (README, Performance)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _demo_receiver(args: argparse.Namespace, settings: Settings) -> int:
    credentials = args.credentials or settings.data_dir / CREDENTIALS_FILE
    mover = None if args.no_move else TaskMover(args.gateway or settings.api.public_url, credentials, args.pause)
    if mover is not None and not credentials.exists():
        log.warning("no %s yet: start `referral-gateway serve` first, or Tasks will not move", credentials)
    receiver = DemoReceiver(args.host, args.http_port, args.mllp_port, args.record, mover)
    asyncio.run(receiver.run())
    return 0

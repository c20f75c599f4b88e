"""The first run on a laptop: `referral-gateway serve` with no partners and no users creates a
development partner (every scope, every organisation) and a development user for the web pages,
writes their secrets to DATA_DIR/local-dev-client.json (mode 0600) and says how to get a token.

Only when `AUTH_LOCAL_PARTNER` is on (the default) and the API listens on a loopback address: a
gateway reachable from elsewhere never makes credentials for itself. Replicas starting together on
one store make them once: the first writes its data directory's file. Must not: run when any partner
or user exists.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from pathlib import Path

from gateway.auth.principal import SCOPES
from gateway.auth.registry import Registry
from gateway.errors import Conflict
from gateway.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID = "local-dev"
USER = "dev"
ODS = "LOCALDEV"
CREDENTIALS_FILE = "local-dev-client.json"
PEOPLE_SCOPES = "pad.submit monitor.read monitor.replay monitor.resubmit"


async def local_partner(registry: Registry, settings: Settings) -> bool:
    """Create the development partner and user if this is a first run on a laptop; True if it did."""
    if not settings.auth.local_partner or not _loopback(settings.api.host):
        return False
    if await registry.credentials.count():
        return False
    try:
        secret = await registry.add(
            "client", CLIENT_ID, ods=ODS, scopes=" ".join(SCOPES), name="Local development", all_organisations=True
        )
        password = await registry.add(
            "person", USER, ods=ODS, scopes=PEOPLE_SCOPES, name="Local developer", all_organisations=True
        )
    except Conflict:  # replicas starting together on one store: another one made them first
        log.info("the development partner was made by another gateway process on this store")
        return False
    path = _write(settings.data_dir / CREDENTIALS_FILE, secret, password, settings.api.public_url)
    _announce(path, settings.api.public_url)
    return True


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write(path: Path, secret: str, password: str, base_url: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "token_url": f"{base_url}/oauth2/token",
        "username": USER,
        "password": password,
        "signin_url": f"{base_url}/signin",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out, indent=2)
    return path


def _announce(path: Path, base_url: str) -> None:
    print(
        f"\nNo partners were set up: created the development partner '{CLIENT_ID}' (every scope, every\n"
        f"organisation) and the user '{USER}' for the web pages. Their secrets are in {path}.\n"
        "Get a token:\n"
        f'  SECRET=$(python3 -c \'import json; print(json.load(open("{path}"))["client_secret"])\')\n'
        f'  curl -s -u "{CLIENT_ID}:$SECRET" -d grant_type=client_credentials {base_url}/oauth2/token\n'
        "Set up real partners with `referral-gateway partners add`.\n",
        flush=True,
    )

"""The key that signs access tokens and session cookies (HS256).

From settings (`AUTH_SIGNING_KEY`, a SecretStr) when configured; otherwise generated once into
`DATA_DIR/signing.key`, created with mode 0600 and refused if anyone but its owner may read it.
Must not: log the key or write it anywhere else.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from gateway.errors import GatewayError
from gateway.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE = "signing.key"


def signing_key(settings: Settings) -> bytes:
    configured = settings.auth.signing_key
    if configured is not None:
        return configured.get_secret_value().encode()
    return _from_file(settings.data_dir / KEY_FILE)


def _from_file(path: Path) -> bytes:
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise GatewayError(f"{path} may be read by others (mode {mode:o}): chmod 600 it, or set AUTH_SIGNING_KEY")
    key = path.read_text().strip()
    if len(key) < 32:
        raise GatewayError(f"{path} holds a key shorter than 32 characters")
    return key.encode()


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first: use theirs
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    log.info("generated a token signing key in %s", path)

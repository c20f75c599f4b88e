"""Client secrets and people's passwords, kept only as salted scrypt hashes.

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>

Each secret has its own random salt; checking recomputes the hash with the stored parameters and
compares in constant time (hmac.compare_digest). `verify` never raises on a malformed stored hash:
it answers False. Must not: log or return a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# RFC 7914 / OWASP: N=2^14, r=8, p=1 is about 16 MiB and tens of milliseconds per check.
N, R, P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
_MAX_MEM = 64 * 1024 * 1024


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(secret, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = _scrypt(secret, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


def burn_time(secret: str) -> None:
    """Do the work of a check for an unknown name, so timing does not tell which names exist."""
    verify(secret, _DUMMY)


def new_secret() -> str:
    """A client secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEM, dklen=_HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_DUMMY = hash_secret(secrets.token_urlsafe(16))

"""Signed session cookies and CSRF tokens for the web UI (stdlib HMAC-SHA256, no server state).

A session cookie is ``base64url(json).base64url(hmac)``; its payload names the person (the
token's actor), the sha256 of the token they signed in with (so a revoked token ends the
session on its next request) and an expiry the server checks. A CSRF token is an HMAC of the
session's random nonce, so it is tied to one session and needs no storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "mmgov_session"
PRESESSION_COOKIE = "mmgov_signin"
"""Before sign-in: a random nonce whose HMAC the sign-in form carries (login CSRF)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class WebSession:
    """What a valid session cookie says: who, with which token, until when."""

    token_sha256: str
    nonce: str
    expires_at: float


class SessionSigner:
    """Signs and checks session cookies and CSRF tokens with one secret key."""

    def __init__(self, key: bytes, *, max_age: int) -> None:
        if len(key) < 16:
            raise ValueError("the session key must be at least 16 bytes")
        self._key = key
        self.max_age = max_age

    def _mac(self, purpose: str, data: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\0{data}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    def issue(self, token_secret: str, *, now: float | None = None) -> tuple[str, WebSession]:
        """Return a new cookie value for a person who signed in with ``token_secret``."""
        issued = time.time() if now is None else now
        session = WebSession(
            token_sha256=hashlib.sha256(token_secret.encode()).hexdigest(),
            nonce=secrets.token_urlsafe(16),
            expires_at=issued + self.max_age,
        )
        payload = _b64(json.dumps(
            {"t": session.token_sha256, "n": session.nonce, "e": int(session.expires_at)},
            separators=(",", ":"),
        ).encode())
        return f"{payload}.{self._mac('session', payload)}", session

    def read(self, cookie: str | None, *, now: float | None = None) -> WebSession | None:
        """Return the session a cookie carries, or None when absent, forged or expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = WebSession(str(data["t"]), str(data["n"]), float(data["e"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.expires_at <= (time.time() if now is None else now):
            return None
        return session

    def csrf_token(self, nonce: str) -> str:
        """Return the CSRF token of the session (or sign-in form) with ``nonce``."""
        return self._mac("csrf", nonce)

    def check_csrf(self, nonce: str | None, given: str | None) -> bool:
        """Return whether ``given`` is the CSRF token of ``nonce``."""
        if not nonce or not given:
            return False
        return hmac.compare_digest(given, self.csrf_token(nonce))


def new_key() -> str:
    """Return a random session key (what `mmgov serve` uses when none is configured)."""
    return secrets.token_urlsafe(32)


__all__ = [
    "PRESESSION_COOKIE",
    "SESSION_COOKIE",
    "SessionSigner",
    "WebSession",
    "new_key",
]

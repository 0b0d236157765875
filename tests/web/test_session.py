"""Session cookies and CSRF tokens: signed, expiring, tied to one session."""

from __future__ import annotations

import hashlib

import pytest

from registry.web.session import SessionSigner


@pytest.fixture
def signer() -> SessionSigner:
    """A signer with a fixed key and a one-hour lifetime."""
    return SessionSigner(b"k" * 32, max_age=3600)


class TestSessionSigner:
    def test_round_trip(self, signer: SessionSigner):
        """A fresh cookie reads back as the token's digest, its nonce and expiry."""
        cookie, issued = signer.issue("mmgov_secret", now=1000.0)
        read = signer.read(cookie, now=1001.0)
        assert read == issued
        assert read.token_sha256 == hashlib.sha256(b"mmgov_secret").hexdigest()
        assert read.expires_at == 4600.0

    def test_secret_not_in_cookie(self, signer: SessionSigner):
        """The cookie carries the token's digest, never the token."""
        cookie, _ = signer.issue("mmgov_secret")
        assert "mmgov_secret" not in cookie

    def test_expired(self, signer: SessionSigner):
        """A cookie past its expiry reads as no session."""
        cookie, _ = signer.issue("mmgov_secret", now=1000.0)
        assert signer.read(cookie, now=4600.0) is None

    @pytest.mark.parametrize("mangle", [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: "x" + c,
        lambda c: c.split(".")[0],
        lambda c: c + ".x",
        lambda c: "",
    ])
    def test_forged(self, signer: SessionSigner, mangle):
        """A cookie whose payload or MAC was changed reads as no session."""
        cookie, _ = signer.issue("mmgov_secret")
        assert signer.read(mangle(cookie)) is None

    def test_other_key(self, signer: SessionSigner):
        """A cookie signed with another key reads as no session."""
        cookie, _ = SessionSigner(b"o" * 32, max_age=3600).issue("mmgov_secret")
        assert signer.read(cookie) is None

    def test_csrf_tied_to_nonce(self, signer: SessionSigner):
        """A session's CSRF token checks for its nonce only."""
        _, one = signer.issue("a")
        _, two = signer.issue("a")
        token = signer.csrf_token(one.nonce)
        assert signer.check_csrf(one.nonce, token)
        assert not signer.check_csrf(two.nonce, token)
        assert not signer.check_csrf(one.nonce, "")
        assert not signer.check_csrf(None, token)

    def test_short_key_refused(self):
        """A key under 16 bytes is refused."""
        with pytest.raises(ValueError, match="16 bytes"):
            SessionSigner(b"short", max_age=60)

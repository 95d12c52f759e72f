"""The personal link to the self-service page in every message.

A token, not personal data, goes in the URL: ``<payload>.<signature>`` in URL-safe
base64, the payload ``creditor|debtor|expiry day|nonce`` and the signature an HMAC-SHA256
with the creditor's signing secret. It cannot be forged without the secret, is valid for
one creditor and one debtor, and expires. The portal (issue 9) verifies it with
``verify``; revocation is its list of nonces.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac


class TokenError(ValueError):
    """A token that is malformed, forged, for someone else, or expired."""


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sign(secret: bytes, creditor: str, debtor: str, expires: dt.date, nonce: str) -> str:
    if len(secret) < 32:
        raise ValueError("the signing secret must be at least 32 bytes")
    payload = f"{creditor}|{debtor}|{expires.isoformat()}|{nonce}".encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def creditor_of(token: str) -> str:
    """Whose key to check the token with (unverified: ``verify`` decides)."""
    try:
        return _unb64(token.split(".")[0]).decode().split("|")[0]
    except (ValueError, TypeError, IndexError):
        raise TokenError("malformed token") from None


def verify(secret: bytes, token: str, creditor: str, today: dt.date) -> tuple[str, str]:
    """(debtor, nonce) of a valid token for this creditor; ``TokenError`` otherwise."""
    try:
        p64, m64 = token.split(".")
        payload, mac = _unb64(p64), _unb64(m64)
    except (ValueError, TypeError):
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
        raise TokenError("bad signature")
    try:
        cred, debtor, expires, nonce = payload.decode().split("|")
        until = dt.date.fromisoformat(expires)
    except ValueError:
        raise TokenError("malformed token") from None
    if cred != creditor:
        raise TokenError("token for another creditor")
    if today > until:
        raise TokenError("token expired")
    return debtor, nonce


__all__ = ["TokenError", "creditor_of", "sign", "verify"]

"""Provider webhooks, verified before anything is stored.

- **SendGrid Event Webhook** (signed): ECDSA over ``timestamp + raw body`` with the
  creditor's verification key (``X-Twilio-Email-Event-Webhook-Signature``, base64 DER;
  ``...-Timestamp``). Events are stored under their ``sg_event_id`` (a repeat is
  ignored); ``custom_args`` come back as top-level fields, ours is ``vangnet_message_id``.
- **MessageBird status reports**: ``MessageBird-Signature-JWT``, HS256 with the signing
  key, claims ``url_hash`` (SHA-256 of the full URL) and ``payload_hash`` (SHA-256 of the
  body, when there is one), within ``nbf``/``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: SendGrid event names -> the contact events vangnet's planner and signals read
SENDGRID_EVENTS = {
    "processed": "processed",
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "dropped": "dropped",
    "deferred": "deferred",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
}
MESSAGEBIRD_STATUS = {
    "delivered": "delivered",
    "delivery_failed": "failed",
    "expired": "failed",
    "sent": "sent",
    "buffered": "buffered",
}
MAX_SKEW_SECONDS = 600


class SignatureError(Exception):
    pass


def verify_sendgrid(public_key_b64: str, signature_b64: str, timestamp: str, body: bytes) -> None:
    if not signature_b64 or not timestamp:
        raise SignatureError("unsigned")
    try:
        if abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
            raise SignatureError("timestamp outside the allowed window")
        key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(
            base64.b64decode(signature_b64),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError, TypeError, AssertionError):
        raise SignatureError("bad signature") from None


def verify_messagebird(signing_key: str, token: str, url: str, body: bytes) -> dict[str, Any]:
    import jwt

    if not token:
        raise SignatureError("unsigned")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key,
            algorithms=["HS256"],
            options={"require": ["iss", "nbf", "exp"]},
            leeway=1,
        )
    except jwt.PyJWTError as exc:
        raise SignatureError(f"bad token: {type(exc).__name__}") from None
    if claims.get("iss") != "MessageBird":
        raise SignatureError("not issued by MessageBird")
    if claims.get("url_hash") != hashlib.sha256(url.encode()).hexdigest():
        raise SignatureError("the token is for another URL")
    if body:
        if claims.get("payload_hash") != hashlib.sha256(body).hexdigest():
            raise SignatureError("the token is for another body")
    elif "payload_hash" in claims:
        raise SignatureError("the token expects a body")
    return claims


__all__ = [
    "MESSAGEBIRD_STATUS",
    "SENDGRID_EVENTS",
    "SignatureError",
    "verify_messagebird",
    "verify_sendgrid",
]

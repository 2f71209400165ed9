"""Signatures Meta puts on what it sends us.

- Webhook POSTs carry ``X-Hub-Signature-256: sha256=<hex>``: HMAC-SHA256 of the raw body bytes
  keyed with the app secret (meta-api.md section 2).
- Deauthorize and data-deletion callbacks carry a ``signed_request`` form field:
  ``<base64url signature>.<base64url JSON payload>`` (meta-api.md section 7).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

SIGNATURE_PREFIX = "sha256="
SIGNED_REQUEST_ALGORITHM = "HMAC-SHA256"


class SignedRequestError(ValueError):
    """A ``signed_request`` that is malformed, unsigned by us, or uses another algorithm."""


def _hmac_sha256(key: str, data: bytes) -> bytes:
    return hmac.new(key.encode("utf-8"), data, hashlib.sha256).digest()


def sign_body(body: bytes, secret: str) -> str:
    """Return the ``X-Hub-Signature-256`` value Meta would send for ``body``."""
    return SIGNATURE_PREFIX + _hmac_sha256(secret, body).hex()


def verify_signature(body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """Check a webhook's ``X-Hub-Signature-256`` header against the raw body bytes.

    Several secrets are accepted because Instagram-Login apps may sign with the Instagram app
    secret rather than the Meta app secret (meta-api.md marks this unsure).
    """
    if not header:
        return False
    prefix, _, received_hex = header.strip().partition("=")
    if prefix.lower() != "sha256" or not received_hex:
        return False
    try:
        received = bytes.fromhex(received_hex)
    except ValueError:
        return False
    matched = False
    for secret in secrets:
        if not secret:
            continue
        # Compare every secret (no early exit) so timing does not reveal which one matched.
        if hmac.compare_digest(_hmac_sha256(secret, body), received):
            matched = True
    return matched


def _b64url_decode(part: str) -> bytes:
    # Meta strips the "=" padding; put it back before decoding.
    padded = part + "=" * (-len(part) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# A signed_request's issued_at may be this far ahead of our clock (clock skew) and no more.
ISSUED_AT_FUTURE_TOLERANCE_SECONDS = 60


def parse_signed_request(
    signed_request: str,
    secret: str | Iterable[str],
    *,
    max_age_seconds: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify and decode a ``signed_request`` from a deauthorize or data-deletion callback.

    ``secret`` is the app secret, or several (Meta app secret and Instagram app secret): the
    request is accepted when it is signed with any of them, as webhook signatures are.
    With ``max_age_seconds`` the payload's ``issued_at`` (Unix seconds) must be that recent
    (against ``now``, default the clock): a captured request replayed later is refused.
    Raises ``SignedRequestError`` with a sentence saying what is wrong.
    """
    keys = [secret] if isinstance(secret, str) else list(secret)
    keys = [k for k in keys if k]
    if not keys:
        raise SignedRequestError(
            "No app secret is configured, so the signed_request cannot be checked."
        )
    if not isinstance(signed_request, str) or not signed_request.strip():
        raise SignedRequestError("The signed_request is empty.")
    encoded_sig, sep, encoded_payload = signed_request.strip().partition(".")
    if not sep or not encoded_sig or not encoded_payload:
        raise SignedRequestError("The signed_request is not in the form <signature>.<payload>.")
    try:
        signature = _b64url_decode(encoded_sig)
        payload_bytes = _b64url_decode(encoded_payload)
    except (binascii.Error, ValueError) as exc:
        raise SignedRequestError("The signed_request is not valid base64url.") from exc
    try:
        payload = json.loads(payload_bytes)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignedRequestError("The signed_request payload is not valid JSON.") from exc
    if not isinstance(payload, dict):
        raise SignedRequestError("The signed_request payload is not a JSON object.")
    algorithm = str(payload.get("algorithm", "")).upper()
    if algorithm != SIGNED_REQUEST_ALGORITHM:
        raise SignedRequestError(
            f"The signed_request uses algorithm {payload.get('algorithm')!r}; "
            f"only {SIGNED_REQUEST_ALGORITHM} is accepted."
        )
    # The signature covers the payload exactly as sent (its base64url text), not decoded JSON.
    signed = encoded_payload.encode("ascii")
    matched = False
    for key in keys:
        # Compare every secret (no early exit) so timing does not reveal which one matched.
        if hmac.compare_digest(_hmac_sha256(key, signed), signature):
            matched = True
    if not matched:
        raise SignedRequestError(
            "The signed_request signature does not match the app secret; "
            "check that the configured app secret is the one of the app Meta calls for."
        )
    if max_age_seconds is not None:
        _check_fresh(payload, max_age_seconds, time.time() if now is None else now)
    return payload


def _check_fresh(payload: dict[str, Any], max_age_seconds: float, now: float) -> None:
    issued_at = payload.get("issued_at")
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        raise SignedRequestError("The signed_request has no issued_at time.")
    age = now - issued_at
    if age > max_age_seconds:
        raise SignedRequestError(
            f"The signed_request was issued {age:.0f} s ago; only those issued in the last "
            f"{max_age_seconds:.0f} s are accepted (an old one may be a captured request "
            "replayed)."
        )
    if age < -ISSUED_AT_FUTURE_TOLERANCE_SECONDS:
        raise SignedRequestError(
            "The signed_request's issued_at is in the future; check the server's clock."
        )


def make_signed_request(payload: dict[str, Any], secret: str) -> str:
    """Build a ``signed_request`` the way Meta does (for tests and the Graph stand-in)."""
    body = dict(payload)
    body.setdefault("algorithm", SIGNED_REQUEST_ALGORITHM)
    encoded_payload = _b64url_encode(
        json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    )
    signature = _hmac_sha256(secret, encoded_payload.encode("ascii"))
    return f"{_b64url_encode(signature)}.{encoded_payload}"

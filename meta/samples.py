"""Realistic webhook bodies in Meta's documented shapes, for demos, tests and benchmarks."""

import itertools
import json
import time

from meta.signatures import sign_body

_counter = itertools.count(1)


def _unique_id(prefix: str) -> str:
    # Numeric like Meta's ids, unique within a process and across runs.
    return f"{prefix}{int(time.time() * 1000) % 10**12:012d}{next(_counter):05d}"


def comment_body(
    *,
    account_id: str,
    text: str,
    from_id: str = "848067418322071",
    from_username: str = "curious.reader",
    media_id: str = "18050310947722369",
    comment_id: str | None = None,
    parent_id: str | None = None,
    occurred_at: float | None = None,
    field: str = "comments",
) -> dict:
    """A `comments` change, like the real payload in meta-api.md section 2.2."""
    value: dict = {
        "from": {"id": from_id, "username": from_username},
        "media": {"id": media_id, "media_product_type": "FEED"},
        "id": comment_id or _unique_id("178"),
        "text": text,
    }
    if parent_id:
        value["parent_id"] = parent_id
    return {
        "object": "instagram",
        "entry": [
            {
                "id": account_id,
                "time": int(occurred_at if occurred_at is not None else time.time()),
                "changes": [{"field": field, "value": value}],
            }
        ],
    }


def message_body(
    *,
    account_id: str,
    sender_id: str,
    text: str = "",
    mid: str | None = None,
    occurred_at: float | None = None,
    message: dict | None = None,
) -> dict:
    """A `messaging` item carrying a direct message (section 2.3)."""
    timestamp_ms = int((occurred_at if occurred_at is not None else time.time()) * 1000)
    return {
        "object": "instagram",
        "entry": [
            {
                "id": account_id,
                "time": timestamp_ms,
                "messaging": [
                    {
                        "sender": {"id": sender_id},
                        "recipient": {"id": account_id},
                        "timestamp": timestamp_ms,
                        "message": message or {"mid": mid or _unique_id("aWdf"), "text": text},
                    }
                ],
            }
        ],
    }


def signed(body: dict, secret: str) -> tuple[bytes, dict[str, str]]:
    """Serialise a body and the headers Meta would send with it."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_body(raw, secret),
    }

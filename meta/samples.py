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


def messaging_item_body(*, account_id: str, item: dict, occurred_at: float | None = None) -> dict:
    """Any ``messaging[]`` item (section 2.3) in its envelope, with sender time filled in."""
    timestamp_ms = int((occurred_at if occurred_at is not None else time.time()) * 1000)
    item = {"recipient": {"id": account_id}, "timestamp": timestamp_ms, **item}
    return {
        "object": "instagram",
        "entry": [{"id": account_id, "time": timestamp_ms, "messaging": [item]}],
    }


def story_reply_body(*, account_id: str, sender_id: str, text: str, **kwargs) -> dict:
    """A message replying to one of the account's stories (``reply_to.story``)."""
    message = {
        "mid": _unique_id("aWdf"),
        "text": text,
        "reply_to": {"story": {"id": _unique_id("179"), "url": "https://lookaside.test/story.jpg"}},
    }
    return message_body(account_id=account_id, sender_id=sender_id, message=message, **kwargs)


def story_mention_body(*, account_id: str, sender_id: str, **kwargs) -> dict:
    """A story mentioning the account: an attachment of type story_mention, no text."""
    message = {
        "mid": _unique_id("aWdf"),
        "attachments": [
            {"type": "story_mention", "payload": {"url": "https://lookaside.test/mention.jpg"}}
        ],
    }
    return message_body(account_id=account_id, sender_id=sender_id, message=message, **kwargs)


def quick_reply_body(*, account_id: str, sender_id: str, title: str, payload: str, **kwargs):
    """A quick-reply tap: the button's title as text, its payload under quick_reply."""
    message = {"mid": _unique_id("aWdf"), "text": title, "quick_reply": {"payload": payload}}
    return message_body(account_id=account_id, sender_id=sender_id, message=message, **kwargs)


def postback_body(*, account_id: str, sender_id: str, title: str, payload: str, **kwargs):
    """A postback button tap (field messaging_postbacks)."""
    item = {
        "sender": {"id": sender_id},
        "postback": {"mid": _unique_id("aWdf"), "title": title, "payload": payload},
    }
    return messaging_item_body(account_id=account_id, item=item, **kwargs)


def echo_body(*, account_id: str, recipient_id: str, text: str, **kwargs) -> dict:
    """The account's own message coming back (sender and recipient swapped)."""
    body = messaging_item_body(
        account_id=account_id,
        item={
            "sender": {"id": account_id},
            "message": {"mid": _unique_id("aWdf"), "text": text, "is_echo": True},
        },
        **kwargs,
    )
    body["entry"][0]["messaging"][0]["recipient"] = {"id": recipient_id}
    return body


def deleted_body(*, account_id: str, sender_id: str, **kwargs) -> dict:
    message = {"mid": _unique_id("aWdf"), "is_deleted": True}
    return message_body(account_id=account_id, sender_id=sender_id, message=message, **kwargs)


def reaction_body(*, account_id: str, sender_id: str, **kwargs) -> dict:
    reaction = {"mid": _unique_id("aWdf"), "action": "react", "reaction": "love", "emoji": "❤️"}
    item = {"sender": {"id": sender_id}, "reaction": reaction}
    return messaging_item_body(account_id=account_id, item=item, **kwargs)


def read_body(*, account_id: str, sender_id: str, **kwargs) -> dict:
    item = {"sender": {"id": sender_id}, "read": {"mid": _unique_id("aWdf")}}
    return messaging_item_body(account_id=account_id, item=item, **kwargs)


def referral_body(*, account_id: str, sender_id: str, ref: str = "spring", **kwargs) -> dict:
    item = {
        "sender": {"id": sender_id},
        "referral": {"ref": ref, "source": "IGME_LINK", "type": "OPEN_THREAD"},
    }
    return messaging_item_body(account_id=account_id, item=item, **kwargs)


def live_comment_body(*, account_id: str, text: str, **kwargs) -> dict:
    """A comment on a live broadcast (field live_comments)."""
    body = comment_body(account_id=account_id, text=text, field="live_comments", **kwargs)
    body["entry"][0]["changes"][0]["value"]["media"]["media_product_type"] = "LIVE"
    return body

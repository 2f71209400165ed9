"""Webhook bodies into typed events (meta-api.md section 2).

The envelope is checked strictly (a body that is not Meta's shape raises ``PayloadError``), but
items inside an entry are read tolerantly: one odd item becomes an ``UnknownEvent`` with a note
instead of failing the whole batch, because Meta retries failed deliveries for 36 hours and a
batch can carry up to 1,000 updates for many accounts.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Values of the envelope's "object": Instagram for both login kinds, "page" for Messenger-style
# deliveries to page-linked apps.
ACCEPTED_OBJECTS = frozenset({"instagram", "page"})
COMMENT_FIELDS = frozenset({"comments", "live_comments"})
MENTIONS_FIELD = "mentions"
# Meta sends seconds in comment payloads and milliseconds in messaging payloads.
MILLISECONDS_ABOVE = 10**11


class PayloadError(ValueError):
    """The body is not a Meta webhook envelope we can read."""


class MessagingKind(enum.StrEnum):
    MESSAGE = "message"
    STORY_REPLY = "story_reply"
    STORY_MENTION = "story_mention"
    QUICK_REPLY = "quick_reply"
    POSTBACK = "postback"
    REACTION = "reaction"
    READ = "read"
    REFERRAL = "referral"
    ECHO = "echo"
    DELETED = "deleted"
    UNSUPPORTED = "unsupported"


# What (re)opens the 24-hour window (meta-api.md section 4): anything the person does to write
# to the account. An unsupported message is still the person writing, so it counts.
OPENS_WINDOW_KINDS = frozenset(
    {
        MessagingKind.MESSAGE,
        MessagingKind.STORY_REPLY,
        MessagingKind.STORY_MENTION,
        MessagingKind.QUICK_REPLY,
        MessagingKind.POSTBACK,
        MessagingKind.REFERRAL,
        MessagingKind.UNSUPPORTED,
    }
)


def to_datetime(value: int | float | str) -> datetime:
    """Meta's epoch time (seconds or milliseconds) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise PayloadError(f"Expected an epoch time, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"Expected an epoch time, got {value!r}.") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise PayloadError(f"Expected an epoch time, got {value!r}.")
    if abs(number) > MILLISECONDS_ABOVE:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadError(f"Epoch time {value!r} is out of range.") from exc


def graph_time(raw: object) -> datetime | None:
    """A Graph API ISO time (``2026-11-25T10:00:00+0000``, as on media and comments' own
    ``timestamp``) as an aware datetime; None when it is missing or unreadable."""
    if not isinstance(raw, str) or not raw:
        return None
    # Meta writes the offset without a colon; older Pythons want one.
    if len(raw) > 5 and raw[-5] in "+-" and raw[-3] != ":":
        raw = f"{raw[:-2]}:{raw[-2:]}"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class CommentEvent:
    account_id: str
    occurred_at: datetime
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    field: str = "comments"
    comment_id: str
    text: str = ""
    from_id: str = ""
    from_username: str = ""
    media_id: str = ""
    media_product_type: str = ""
    parent_id: str = ""
    ad_id: str = ""

    @property
    def is_reply(self) -> bool:
        """A reply to another comment (only top-level comments can take public replies)."""
        return bool(self.parent_id)

    @property
    def from_account(self) -> bool:
        """Written by the account itself (e.g. our own public reply coming back).

        Only compares with the entry id; with Instagram Login the account can also be known by
        another id, which the caller must check too.
        """
        return bool(self.from_id) and self.from_id == self.account_id


@dataclass(frozen=True, kw_only=True)
class MentionEvent:
    account_id: str
    occurred_at: datetime
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    media_id: str = ""
    comment_id: str = ""


@dataclass(frozen=True, kw_only=True)
class MessagingEvent:
    account_id: str
    occurred_at: datetime
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    kind: MessagingKind
    sender_id: str = ""
    recipient_id: str = ""
    mid: str = ""
    text: str = ""
    payload: str = ""
    attachments: tuple[dict[str, Any], ...] = ()
    story_id: str = ""
    story_url: str = ""
    reply_to_mid: str = ""
    referral: dict[str, Any] | None = None
    standby: bool = False

    @property
    def opens_window(self) -> bool:
        return self.kind in OPENS_WINDOW_KINDS

    @property
    def is_echo(self) -> bool:
        """Sent by the account itself (through us or the Instagram app): never a trigger."""
        return self.kind is MessagingKind.ECHO


@dataclass(frozen=True, kw_only=True)
class UnknownEvent:
    account_id: str
    occurred_at: datetime
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    field: str = ""
    note: str = ""


Event = CommentEvent | MentionEvent | MessagingEvent | UnknownEvent


# -- helpers ----------------------------------------------------------------------------------


# NUL cannot be stored in PostgreSQL text, a lone surrogate cannot be encoded as UTF-8: both
# arrive as JSON escapes ("\\u0000", "\\ud800") in bodies that are otherwise valid.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Meta's ids are digits (mids: base64); anything longer, or with control characters, is not one.
MAX_ID_LENGTH = 64
_NOT_AN_ID = re.compile("[\x00-\x20\x7f\ud800-\udfff]")
MAX_USERNAME_LENGTH = 64


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    """Text from the payload, safe to store: NUL and lone surrogates become U+FFFD."""
    # Ids are strings in Meta's payloads, but test events and old examples use numbers.
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**MAX_ID_LENGTH:
        return ""  # str() of a huge integer is slow (and past 4,300 digits refused)
    return _UNSTORABLE.sub("\ufffd", str(value))


def _id(value: Any) -> str:
    """An id, or "" when the value cannot be one (then the item says what is missing)."""
    if isinstance(value, bool | float):
        return ""
    text = _str(value)
    if len(text) > MAX_ID_LENGTH or _NOT_AN_ID.search(text) or "\ufffd" in text:
        return ""
    return text


def _username(value: Any) -> str:
    text = _str(value)
    return text if len(text) <= MAX_USERNAME_LENGTH else ""


def _occurred_at(*candidates: Any) -> datetime:
    for candidate in candidates:
        if candidate is None or candidate == "":
            continue
        try:
            return to_datetime(candidate)
        except PayloadError:
            continue
    # No usable time from Meta (seen in hand-made test events): the receipt time is the best
    # we have, and it keeps one odd item from failing the batch.
    return datetime.now(UTC)


def _entries(body: object) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise PayloadError(f"A webhook body must be a JSON object, got {type(body).__name__}.")
    obj = body.get("object")
    if not isinstance(obj, str) or obj not in ACCEPTED_OBJECTS:
        shown = _str(obj)[:40] if isinstance(obj, str) else type(obj).__name__
        raise PayloadError(
            f"Webhook object {shown!r} is not one we handle (expected 'instagram' or 'page')."
        )
    entries = body.get("entry")
    if entries is None:
        raise PayloadError("The webhook body has no 'entry' list.")
    if not isinstance(entries, list):
        raise PayloadError(f"The webhook 'entry' must be a list, got {type(entries).__name__}.")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PayloadError(
                f"Webhook entry {index} must be a JSON object, got {type(entry).__name__}."
            )
    return entries


# -- changes[] --------------------------------------------------------------------------------


def _parse_change(account_id: str, entry_time: Any, change: Any) -> Event:
    if not isinstance(change, dict):
        return UnknownEvent(
            account_id=account_id,
            occurred_at=_occurred_at(entry_time),
            raw={"change": change},
            field="changes",
            note="A changes[] item is not a JSON object.",
        )
    field_name = _str(change.get("field"))[:64]
    value = change.get("value")
    occurred_at = _occurred_at(entry_time)
    if not isinstance(value, dict):
        return UnknownEvent(
            account_id=account_id,
            occurred_at=occurred_at,
            raw=change,
            field=field_name,
            note=f"The {field_name or 'unnamed'} change has no 'value' object.",
        )

    if field_name in COMMENT_FIELDS:
        # Read "id", fall back to "comment_id" (one Facebook-Login example in the docs).
        comment_id = _id(value.get("id")) or _id(value.get("comment_id"))
        if not comment_id:
            return UnknownEvent(
                account_id=account_id,
                occurred_at=occurred_at,
                raw=value,
                field=field_name,
                note=f"A {field_name} change without a usable comment id.",
            )
        sender = _dict(value.get("from"))
        media = _dict(value.get("media"))
        return CommentEvent(
            account_id=account_id,
            occurred_at=occurred_at,
            raw=value,
            field=field_name,
            comment_id=comment_id,
            text=_str(value.get("text")),
            from_id=_id(sender.get("id")),
            from_username=_username(sender.get("username")),
            media_id=_id(media.get("id")),
            media_product_type=_str(media.get("media_product_type"))[:32],
            parent_id=_id(value.get("parent_id")),
            ad_id=_id(media.get("ad_id")),
        )

    if field_name == MENTIONS_FIELD:
        return MentionEvent(
            account_id=account_id,
            occurred_at=occurred_at,
            raw=value,
            media_id=_id(value.get("media_id")),
            comment_id=_id(value.get("comment_id")),
        )

    if account_id == "0":
        note = f"Dashboard test event for field {field_name!r}; nothing to act on."
    else:
        note = f"Change field {field_name!r} is not handled."
    return UnknownEvent(
        account_id=account_id, occurred_at=occurred_at, raw=value, field=field_name, note=note
    )


# -- messaging[] / standby[] ------------------------------------------------------------------


def _message_kind(
    message: Mapping[str, Any], attachments: tuple[dict[str, Any], ...]
) -> MessagingKind:
    # Order matters: an echo or an unsent message is never a trigger, whatever else it carries.
    if message.get("is_echo"):
        return MessagingKind.ECHO
    if message.get("is_deleted"):
        return MessagingKind.DELETED
    if message.get("is_unsupported"):
        return MessagingKind.UNSUPPORTED
    if any(item.get("type") == "story_mention" for item in attachments):
        return MessagingKind.STORY_MENTION
    if _dict(_dict(message.get("reply_to")).get("story")):
        return MessagingKind.STORY_REPLY
    if isinstance(message.get("quick_reply"), dict):
        return MessagingKind.QUICK_REPLY
    return MessagingKind.MESSAGE


def _parse_messaging(
    account_id: str, entry_time: Any, item: Any, *, standby: bool
) -> MessagingEvent | UnknownEvent:
    source = "standby" if standby else "messaging"
    if not isinstance(item, dict):
        return UnknownEvent(
            account_id=account_id,
            occurred_at=_occurred_at(entry_time),
            raw={"item": item},
            field=source,
            note=f"A {source}[] item is not a JSON object.",
        )
    occurred_at = _occurred_at(item.get("timestamp"), entry_time)
    common: dict[str, Any] = {
        "account_id": account_id,
        "occurred_at": occurred_at,
        "raw": item,
        "sender_id": _id(_dict(item.get("sender")).get("id")),
        "recipient_id": _id(_dict(item.get("recipient")).get("id")),
        "standby": standby,
    }

    message = item.get("message")
    if isinstance(message, dict):
        attachments = tuple(a for a in _list(message.get("attachments")) if isinstance(a, dict))
        kind = _message_kind(message, attachments)
        reply_to = _dict(message.get("reply_to"))
        story = _dict(reply_to.get("story"))
        story_id, story_url = _id(story.get("id")), _str(story.get("url"))
        if kind is MessagingKind.STORY_MENTION:
            mention = next(a for a in attachments if a.get("type") == "story_mention")
            story_url = _str(_dict(mention.get("payload")).get("url"))
        referral = message.get("referral")
        return MessagingEvent(
            **common,
            kind=kind,
            mid=_str(message.get("mid"))[:200],
            text=_str(message.get("text")),
            payload=_str(_dict(message.get("quick_reply")).get("payload")),
            attachments=attachments,
            story_id=story_id,
            story_url=story_url,
            reply_to_mid=_str(reply_to.get("mid"))[:200],
            referral=referral if isinstance(referral, dict) else None,
        )

    postback = item.get("postback")
    if isinstance(postback, dict):
        referral = postback.get("referral")
        return MessagingEvent(
            **common,
            kind=MessagingKind.POSTBACK,
            mid=_str(postback.get("mid"))[:200],
            text=_str(postback.get("title")),
            payload=_str(postback.get("payload")),
            referral=referral if isinstance(referral, dict) else None,
        )

    reaction = item.get("reaction")
    if isinstance(reaction, dict):
        mid = _str(reaction.get("mid"))[:200]
        return MessagingEvent(**common, kind=MessagingKind.REACTION, mid=mid)

    read = item.get("read")
    if isinstance(read, dict):
        return MessagingEvent(**common, kind=MessagingKind.READ, mid=_str(read.get("mid"))[:200])

    referral = item.get("referral")
    if isinstance(referral, dict):
        return MessagingEvent(**common, kind=MessagingKind.REFERRAL, referral=referral)

    known = sorted(_str(key)[:40] for key in set(item) - {"sender", "recipient", "timestamp"})[:20]
    return UnknownEvent(
        account_id=account_id,
        occurred_at=occurred_at,
        raw=item,
        field=source,
        note=f"A {source}[] item of a kind we do not handle (keys: {', '.join(known) or 'none'}).",
    )


# -- public -----------------------------------------------------------------------------------


def _iter_entry(entry: dict[str, Any]) -> Iterator[Event]:
    account_id = _id(entry.get("id"))
    entry_time = entry.get("time")
    seen_any = False
    for key in ("changes", "messaging", "standby"):
        items = entry.get(key)
        if items is None:
            continue
        seen_any = True
        if not isinstance(items, list):
            yield UnknownEvent(
                account_id=account_id,
                occurred_at=_occurred_at(entry_time),
                raw=entry,
                field=key,
                note=f"The entry's '{key}' is not a list.",
            )
            continue
        for item in items:
            if key == "changes":
                yield _parse_change(account_id, entry_time, item)
            else:
                yield _parse_messaging(account_id, entry_time, item, standby=key == "standby")
    if not seen_any:
        yield UnknownEvent(
            account_id=account_id,
            occurred_at=_occurred_at(entry_time),
            raw=entry,
            field="",
            note="The entry has no changes, messaging or standby list.",
        )


def parse_webhook(body: object) -> list[Event]:
    """Every event in a webhook body (the parsed JSON), in delivery order.

    Raises ``PayloadError`` when the envelope itself is broken.
    """
    return [event for entry in _entries(body) for event in _iter_entry(entry)]


def entry_account_id(entry: object) -> str:
    """The account an entry names (``entry.id``), "" when it cannot be an id."""
    return _id(entry.get("id")) if isinstance(entry, dict) else ""


def iter_entry_account_ids(body: object) -> set[str]:
    """The account ids (``entry[].id``) a webhook body is about, for tagging a stored event.

    Never raises: intake calls it before the body is parsed, and a broken envelope must still be
    stored (and reported by ``parse_webhook`` later) rather than fail the webhook request.
    """
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        return set()
    return {
        account_id
        for entry in body["entry"]
        if isinstance(entry, dict) and (account_id := _id(entry.get("id")))
    }

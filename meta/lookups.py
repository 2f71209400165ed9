"""Asking Meta what became of a send whose answer was lost (meta-api.md sections 3 and 5).

A DM is looked for in its conversation through the Conversations API: the conversation with
the person (``GET /{ig-user-id or page-id}/conversations?platform=instagram&user_id=IGSID``),
its messages (``GET /{conversation-id}?fields=messages``: ids and times, newest first; only
the 20 most recent can be read) and each recent message's details (``GET /{message-id}
?fields=id,created_time,from,to,message``). A public reply is looked for among the comment's
replies (``GET /{comment-id}/replies?fields=id,text,timestamp,from``).

Each answer is one of three: found (it went out: its id and time), not found (Meta shows the
whole period since the call and it is not there: it never went out), or cannot tell (a call
failed, the conversation is missing or busier than Meta lets us read). Every call first takes
a place in the caller's budget (``acquire``; False when none comes soon: cannot tell), and a
read that failed on the way is tried again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from meta.client import GraphClient, GraphResult

# Meta's clock and ours differ a little; and a request is stamped when Meta handles it.
CLOCK_TOLERANCE = timedelta(seconds=60)
# Meta lets an app read the details of a conversation's 20 most recent messages only.
READABLE_MESSAGES = 20
# Message details read per check at most (each is a call against the 2/s budget).
MAX_DETAIL_READS = 6
READ_TRIES = 3


@dataclass(frozen=True)
class Lookup:
    found: bool | None  # None: Meta could not tell us
    item_id: str = ""
    at: datetime | None = None
    checked: str = ""  # what was asked and seen, in a sentence for the operator
    calls: tuple[GraphResult, ...] = field(default_factory=tuple)


def parse_time(value: Any) -> datetime | None:
    """Meta's times: ISO 8601 ("2026-11-25T10:00:00+0000") or Unix seconds (documented)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    raw = value.strip()
    if len(raw) > 5 and raw[-5] in "+-" and raw[-3] != ":":
        raw = f"{raw[:-2]}:{raw[-2:]}"
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Reader:
    def __init__(self, client: GraphClient, acquire: Callable[[], bool]) -> None:
        self.client, self.acquire = client, acquire
        self.calls: list[GraphResult] = []
        self.out_of_budget = False

    def get(self, path: str, params: dict[str, Any]) -> dict | None:
        for _ in range(READ_TRIES):
            if not self.acquire():
                self.out_of_budget = True
                return None
            result = self.client.get(path, params)
            self.calls.append(result)
            if result.ok and isinstance(result.data, dict):
                return result.data
            if not result.retryable:
                return None
        return None

    def failure(self) -> str:
        if self.out_of_budget:
            return "the account's Conversations API budget had no room; asked again later"
        last = self.calls[-1] if self.calls else None
        if last is None:
            return "no call was made"
        return f"{last.request_summary}: {last.message or f'HTTP {last.http_status}'}"


def _from_us(sender: Any, our_ids: set[str], our_username: str) -> bool:
    if not isinstance(sender, dict):
        return False
    return str(sender.get("id") or "") in our_ids or (
        bool(our_username) and sender.get("username") == our_username
    )


def find_sent_message(
    client: GraphClient,
    *,
    owner_id: str,
    user_id: str,
    text: str | None,
    since: datetime,
    our_ids: Iterable[str],
    our_username: str = "",
    exclude_ids: Iterable[str] = (),
    acquire: Callable[[], bool] = lambda: True,
) -> Lookup:
    """Did a message from us (with this text, when given) reach the person since `since`?"""
    reader = _Reader(client, acquire)
    ours, excluded = {str(i) for i in our_ids if i}, set(exclude_ids)
    earliest = since - CLOCK_TOLERANCE

    def cannot_tell(why: str) -> Lookup:
        return Lookup(None, checked=why, calls=tuple(reader.calls))

    found = reader.get(f"/{owner_id}/conversations", {"platform": "instagram", "user_id": user_id})
    if found is None:
        return cannot_tell(f"The conversation could not be read ({reader.failure()}).")
    conversations = [c for c in found.get("data") or [] if isinstance(c, dict) and c.get("id")]
    if not conversations:
        return cannot_tell("Meta shows no conversation with this person.")
    conversation_id = str(conversations[0]["id"])
    thread = reader.get(f"/{conversation_id}", {"fields": "messages"})
    if thread is None:
        return cannot_tell(f"The conversation's messages could not be read ({reader.failure()}).")
    listed = [m for m in (thread.get("messages") or {}).get("data") or [] if isinstance(m, dict)]
    recent = [m for m in listed[:READABLE_MESSAGES] if m.get("id")]
    candidates = [
        m
        for m in recent
        if str(m["id"]) not in excluded
        and ((t := parse_time(m.get("created_time"))) is None or t >= earliest)
    ]
    if len(candidates) > MAX_DETAIL_READS:
        return cannot_tell("The conversation is too busy to read every message since the send.")
    for message in candidates:
        details = reader.get(f"/{message['id']}", {"fields": "id,created_time,from,to,message"})
        if details is None:
            return cannot_tell(f"A message's details could not be read ({reader.failure()}).")
        if not _from_us(details.get("from"), ours, our_username):
            continue
        if text is not None and details.get("message") != text:
            continue
        at = parse_time(details.get("created_time"))
        return Lookup(
            True,
            item_id=str(details.get("id") or message["id"]),
            at=at,
            checked=(
                f"Found in the conversation with the person: message {message['id']}"
                + (f" sent {at:%Y-%m-%d %H:%M:%S} UTC." if at else ".")
            ),
            calls=tuple(reader.calls),
        )
    oldest = parse_time(recent[-1].get("created_time")) if recent else None
    complete = len(listed) < READABLE_MESSAGES or (oldest is not None and oldest < earliest)
    if not complete:
        return cannot_tell("More messages came since the send than Meta lets us read.")
    return Lookup(
        False,
        checked=(
            f"Not in the conversation: none of its {len(recent)} recent message(s) since "
            f"{earliest:%H:%M:%S} UTC is ours with this text."
        ),
        calls=tuple(reader.calls),
    )


def find_comment_reply(
    client: GraphClient,
    *,
    comment_id: str,
    text: str,
    since: datetime,
    our_ids: Iterable[str],
    our_username: str = "",
    acquire: Callable[[], bool] = lambda: True,
) -> Lookup:
    """Is our public reply (this text, since `since`) among the comment's replies?"""
    reader = _Reader(client, acquire)
    ours, earliest = {str(i) for i in our_ids if i}, since - CLOCK_TOLERANCE
    page = reader.get(f"/{comment_id}/replies", {"fields": "id,text,timestamp,from"})
    if page is None:
        return Lookup(
            None,
            checked=f"The comment's replies could not be read ({reader.failure()}).",
            calls=tuple(reader.calls),
        )
    replies = [r for r in page.get("data") or [] if isinstance(r, dict)]
    for reply in replies:
        at = parse_time(reply.get("timestamp"))
        if reply.get("text") != text or (at is not None and at < earliest):
            continue
        if reply.get("from") is not None and not _from_us(reply["from"], ours, our_username):
            continue
        return Lookup(
            True,
            item_id=str(reply.get("id") or ""),
            at=at,
            checked=f"Found among the comment's replies: reply {reply.get('id')}.",
            calls=tuple(reader.calls),
        )
    if (page.get("paging") or {}).get("next"):
        return Lookup(
            None,
            checked="The comment has more replies than one page; ours was not on the first.",
            calls=tuple(reader.calls),
        )
    return Lookup(
        False,
        checked=f"Not among the comment's {len(replies)} replies.",
        calls=tuple(reader.calls),
    )

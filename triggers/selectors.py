"""Reads for triggers, including which trigger answers a text."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import BigIntegerField, CharField, OuterRef, Value
from django.db.models.functions import Cast, Concat, Extract

from accounts.models import InstagramAccount
from triggers.matching import Candidate, Match, TriggerIndex
from triggers.models import (
    FiresOn,
    MatchMode,
    Trigger,
    TriggerEvent,
    trigger_fires_on,
    trigger_option,
)

# Among triggers of equal priority, the more specific mode wins.
_MODE_SPECIFICITY = {
    MatchMode.EXACT: 4,
    MatchMode.CONTAINS: 3,
    MatchMode.FUZZY: 2,
    MatchMode.INTENT: 1,
    MatchMode.ANY: 0,
}
# Compiled indexes kept per process (account x event), rebuilt when a trigger changes.
_INDEX_CACHE_SIZE = 256


@dataclass(frozen=True)
class Decision:
    trigger: Trigger
    match: Match

    @property
    def mode(self) -> str:
        return self.trigger.match


@dataclass(frozen=True)
class CommentContext:
    """What kind of comment is answered: comment triggers opt in to replies and live comments."""

    media_id: str = ""
    is_reply: bool = False
    is_live: bool = False


@dataclass
class TriggerSet:
    """An account's enabled triggers for one event, with their compiled matching index."""

    triggers: dict[int, Trigger]
    index: TriggerIndex
    version: tuple = field(default=())


_cache: OrderedDict[tuple[int, str], TriggerSet] = OrderedDict()
_cache_lock = threading.Lock()


def _candidate(trigger: Trigger) -> Candidate:
    return Candidate(
        key=trigger.pk,
        mode=trigger.match,
        keywords=tuple(trigger.keywords or ()),
        examples=tuple(trigger.examples or ()),
        fuzzy_threshold=trigger_option(trigger, "fuzzy_threshold"),
        intent_threshold=trigger_option(trigger, "intent_threshold"),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def trigger_versions_subquery() -> ArraySubquery:
    """For an account queryset's ``annotate``: its enabled triggers' versions as
    "event:id:updated_at in microseconds" strings, so processing reads them with the
    account instead of asking per event (``trigger_set`` uses them when present)."""
    updated = Cast(
        Extract("updated_at", "epoch") * Value(1_000_000), output_field=BigIntegerField()
    )
    tag = Concat(
        "event",
        Value(":"),
        Cast("pk", CharField()),
        Value(":"),
        Cast(updated, CharField()),
        output_field=CharField(),
    )
    enabled = Trigger.objects.filter(account_id=OuterRef("pk"), enabled=True).order_by("pk")
    return ArraySubquery(enabled.annotate(tag=tag).values("tag"))


def _version(account: InstagramAccount, event: str, enabled) -> tuple:
    read = getattr(account, "trigger_versions", None)
    if read is not None:
        version = []
        for item in read:
            item_event, pk, updated = item.split(":")
            if item_event == event:
                version.append((int(pk), int(updated)))
        return tuple(version)
    return tuple(
        (pk, _microseconds(updated))
        for pk, updated in enabled.order_by("pk").values_list("pk", "updated_at")
    )


def trigger_set(*, account: InstagramAccount, event: str) -> TriggerSet:
    """The account's enabled triggers for the event; the index is reused until one changes."""
    enabled = Trigger.objects.filter(account=account, event=event, enabled=True)
    version = _version(account, event, enabled)
    key = (account.pk, event)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.version == version:
            _cache.move_to_end(key)
            return cached
    triggers = {trigger.pk: trigger for trigger in enabled.select_related("account")}
    built = TriggerSet(
        triggers=triggers,
        index=TriggerIndex(
            _candidate(trigger)
            for trigger in triggers.values()
            if trigger_fires_on(trigger) == FiresOn.MATCH
        ),
        version=version,
    )
    with _cache_lock:
        _cache[key] = built
        _cache.move_to_end(key)
        while len(_cache) > _INDEX_CACHE_SIZE:
            _cache.popitem(last=False)
    return built


def _specificity(trigger: Trigger, match: Match) -> tuple:
    return (
        trigger.priority,
        bool(trigger.media_ids),
        _MODE_SPECIFICITY.get(trigger.match, 0),
        match.score,
        len(match.keyword),
        -trigger.pk,
    )


def comment_scope_allows(trigger: Trigger, context: CommentContext) -> bool:
    """Whether a comment trigger listens on this comment (post, replies, live)."""
    if context.is_reply and not trigger_option(trigger, "include_replies", False):
        return False
    if context.is_live and not trigger_option(trigger, "include_live", False):
        return False
    if trigger.media_ids:
        return context.media_id in trigger.media_ids
    # "The next post I publish" listens on no post until that post is known.
    return trigger_option(trigger, "scope") != "next_post"


def triggers_matching(
    *,
    account: InstagramAccount,
    event: str,
    text: str,
    comment: CommentContext | None = None,
) -> list[Decision]:
    """Every trigger that would answer, the one that does first."""
    found = trigger_set(account=account, event=event)
    decisions = []
    for key, match in found.index.matches(text).items():
        trigger = found.triggers[key]
        if event == TriggerEvent.COMMENT and not comment_scope_allows(
            trigger, comment or CommentContext()
        ):
            continue
        decisions.append(Decision(trigger, match))
    decisions.sort(
        key=lambda decision: _specificity(decision.trigger, decision.match), reverse=True
    )
    return decisions


def trigger_choose(
    *,
    account: InstagramAccount,
    event: str,
    text: str,
    media_id: str = "",
    comment: CommentContext | None = None,
) -> Decision | None:
    """The one trigger that answers: highest priority, then the most specific match."""
    if event == TriggerEvent.COMMENT and comment is None:
        comment = CommentContext(media_id=media_id)
    decisions = triggers_matching(account=account, event=event, text=text, comment=comment)
    return decisions[0] if decisions else None


def trigger_fallback(
    *, account: InstagramAccount, event: str, first_message: bool
) -> Trigger | None:
    """When no trigger matched: the welcome for a first message, else the default reply."""
    found = trigger_set(account=account, event=event)
    wanted = [FiresOn.FIRST_MESSAGE, FiresOn.NO_MATCH] if first_message else [FiresOn.NO_MATCH]
    for fires_on in wanted:
        fitting = [t for t in found.triggers.values() if trigger_fires_on(t) == fires_on]
        if fitting:
            return max(fitting, key=lambda trigger: (trigger.priority, -trigger.pk))
    return None


def next_post_triggers(*, account: InstagramAccount) -> list[Trigger]:
    """Comment triggers waiting for the account's next post."""
    found = trigger_set(account=account, event=TriggerEvent.COMMENT)
    return [
        trigger
        for trigger in found.triggers.values()
        if not trigger.media_ids and trigger_option(trigger, "scope") == "next_post"
    ]


@dataclass
class Preview:
    """What would answer a text on one account: the winner first, then the others that match."""

    account: InstagramAccount
    decisions: list[Decision]
    fallback: Trigger | None
    note: str = ""
    near_misses: list = field(default_factory=list)

    @property
    def winner(self) -> Trigger | None:
        return self.decisions[0].trigger if self.decisions else self.fallback


def triggers_preview(
    *,
    accounts: list[InstagramAccount],
    event: str,
    text: str,
    media_id: str = "",
    first_message: bool = False,
) -> list[Preview]:
    """For the admin's "test a text" page: which trigger would fire, per account, and why."""
    from triggers import intent

    previews = []
    for account in accounts:
        comment = CommentContext(media_id=media_id) if event == TriggerEvent.COMMENT else None
        decisions = triggers_matching(account=account, event=event, text=text, comment=comment)
        fallback = None
        if not decisions and event == TriggerEvent.DM:
            fallback = trigger_fallback(account=account, event=event, first_message=first_message)
        note = ""
        uses_intent = any(
            trigger.match == MatchMode.INTENT
            for trigger in trigger_set(account=account, event=event).triggers.values()
        )
        if uses_intent and not intent.intent_available():
            note = f"Intent triggers cannot match here: {intent.intent_unavailable_reason()}"
        previews.append(Preview(account, decisions, fallback, note))
    return previews


class _IntentAccounts:
    """Instagram ids of accounts with an enabled intent trigger, read at most every few seconds.

    Asked for every webhook (intake routing), so it must not cost a query each time: the set is
    kept per process and read again once `INTENT_ROUTING_REFRESH_SECONDS` have passed, or at
    once after a trigger was saved or deleted in this process (`forget()`, from a signal).
    Another process sees a change within the interval; until then an event may go to `events`,
    where a worker without the model still answers it (loading the model on first use).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: frozenset[str] = frozenset()
        self._read_at: float | None = None

    def ids(self) -> frozenset[str]:
        from django.conf import settings

        now = time.monotonic()
        with self._lock:
            fresh = self._read_at is not None and (
                now - self._read_at < settings.INTENT_ROUTING_REFRESH_SECONDS
            )
            if fresh:
                return self._ids
        rows = (
            Trigger.objects.filter(match=MatchMode.INTENT, enabled=True)
            .values_list("account__ig_user_id", "account__ig_alt_id")
            .distinct()
        )
        ids = frozenset(instagram_id for row in rows for instagram_id in row if instagram_id)
        with self._lock:
            self._ids, self._read_at = ids, now
        return ids

    def forget(self) -> None:
        with self._lock:
            self._read_at = None


_intent_accounts = _IntentAccounts()


def intent_account_ids() -> frozenset[str]:
    """Instagram ids (own and alternate) of accounts that have an enabled intent trigger."""
    return _intent_accounts.ids()


def intent_account_ids_forget() -> None:
    """Read the intent accounts again on the next call (a trigger changed in this process)."""
    _intent_accounts.forget()

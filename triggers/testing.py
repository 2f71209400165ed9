"""Test a text on the trigger page: which trigger answers, with what, and why, and the near
misses ("would match in fuzzy mode", "matches, but is off").

The account's enabled triggers are matched as processing matches them (the same index and the
same order: priority, then the most specific); the trigger being edited takes part as it is
typed, saved or not. Cool-downs are not applied and nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import InstagramAccount
from triggers.matching import Candidate, Match, TriggerIndex, match_text
from triggers.models import FiresOn, MatchMode, Trigger, TriggerEvent, trigger_fires_on
from triggers.selectors import (
    CommentContext,
    Decision,
    _specificity,
    comment_scope_allows,
    trigger_fallback,
    trigger_set,
)

# Looser modes tried for a trigger that did not match, most specific first.
_LOOSER = {
    MatchMode.EXACT: (MatchMode.CONTAINS, MatchMode.FUZZY),
    MatchMode.CONTAINS: (MatchMode.FUZZY,),
    MatchMode.FUZZY: (),
}
# A fuzzy near miss is reported down to this score.
NEAR_FUZZY = 60.0


@dataclass
class NearMiss:
    trigger: Trigger
    why: str


@dataclass
class TextTest:
    account: InstagramAccount
    event: str
    text: str
    decisions: list[Decision]
    fallback: Trigger | None
    near_misses: list[NearMiss] = field(default_factory=list)
    note: str = ""

    @property
    def winner(self) -> Trigger | None:
        return self.decisions[0].trigger if self.decisions else self.fallback

    @property
    def answer_preview(self) -> list[dict]:
        winner = self.winner
        return list(winner.messages or []) if winner is not None else []

    @property
    def public_replies(self) -> list[str]:
        winner = self.winner
        return list(winner.public_replies or []) if winner is not None else []


def _candidate(trigger: Trigger) -> Candidate:
    extra = trigger.extra if isinstance(trigger.extra, dict) else {}
    return Candidate(
        key=trigger.pk,
        mode=trigger.match,
        keywords=tuple(trigger.keywords or ()),
        examples=tuple(trigger.examples or ()),
        fuzzy_threshold=extra.get("fuzzy_threshold"),
        intent_threshold=extra.get("intent_threshold"),
    )


def text_test(
    *,
    account: InstagramAccount,
    event: str,
    text: str,
    media_id: str = "",
    draft: Trigger | None = None,
    first_message: bool = False,
) -> TextTest:
    """Which trigger would answer ``text`` on ``account``, and what nearly did."""
    from triggers import intent

    saved = dict(trigger_set(account=account, event=event).triggers)
    everything = {
        t.pk: t for t in Trigger.objects.filter(account=account, event=event).order_by("pk")
    }
    if draft is not None:
        if draft.pk is None:
            draft.pk = -1  # never saved: a key of its own for the index
        draft_key = draft.pk
        saved.pop(draft_key, None)
        everything.pop(draft_key, None)
        if draft.event == event:
            everything[draft_key] = draft
            if draft.enabled:
                saved[draft_key] = draft
    keyed = {}
    for key, trigger in saved.items():
        if trigger_fires_on(trigger) == FiresOn.MATCH:
            keyed[key] = trigger
    index = TriggerIndex(_candidate(trigger) for trigger in keyed.values())
    comment = CommentContext(media_id=media_id) if event == TriggerEvent.COMMENT else None
    decisions = []
    out_of_scope = []
    for key, match in index.matches(text).items():
        trigger = keyed[key]
        if comment is not None and not comment_scope_allows(trigger, comment):
            out_of_scope.append(trigger)
            continue
        decisions.append(Decision(trigger, match))
    decisions.sort(key=lambda d: _specificity(d.trigger, d.match), reverse=True)
    fallback = None
    if not decisions and event == TriggerEvent.DM:
        fallback = (
            _draft_fallback(draft, first_message)
            if draft is not None and draft.enabled and trigger_fires_on(draft) != FiresOn.MATCH
            else None
        ) or trigger_fallback(account=account, event=event, first_message=first_message)
    result = TextTest(account, event, text, decisions, fallback)
    matched = {d.trigger.pk for d in decisions}
    for trigger in out_of_scope:
        where = "other posts" if trigger.media_ids else "the next post it waits for"
        if comment is not None and comment.is_reply:
            where = "top-level comments"
        result.near_misses.append(NearMiss(trigger, f"matches the words, but listens on {where}"))
    for trigger in everything.values():
        if trigger.pk in matched or trigger in out_of_scope:
            continue
        why = _near_miss(trigger, text)
        if why:
            result.near_misses.append(NearMiss(trigger, why))
    for decision in decisions:
        if decision.trigger.paused_at is not None:
            result.note = (
                f"{decision.trigger.name} is paused: it answers, but its sends wait until it "
                "is resumed."
            )
            break
    uses_intent = any(t.match == MatchMode.INTENT for t in everything.values())
    if uses_intent and not intent.intent_available():
        result.note = f"Intent triggers cannot match here: {intent.intent_unavailable_reason()}"
    return result


def _draft_fallback(draft: Trigger, first_message: bool) -> Trigger | None:
    fires_on = trigger_fires_on(draft)
    if fires_on == FiresOn.NO_MATCH or (fires_on == FiresOn.FIRST_MESSAGE and first_message):
        return draft
    return None


def _near_miss(trigger: Trigger, text: str) -> str:
    """Why this trigger nearly answered, or ""."""
    keywords = list(trigger.keywords or [])
    if trigger_fires_on(trigger) != FiresOn.MATCH:
        return ""
    own = match_text(trigger.match, text, keywords) if trigger.match != MatchMode.INTENT else None
    if not trigger.enabled and own is not None:
        return "matches, but is switched off"
    if own is not None or not keywords:
        return ""
    for mode in _LOOSER.get(trigger.match, ()):
        threshold = NEAR_FUZZY if mode == MatchMode.FUZZY else None
        found: Match | None = match_text(mode, text, keywords, fuzzy_threshold=threshold)
        if found is not None:
            off = "" if trigger.enabled else " (and it is switched off)"
            score = f", score {found.score:.0f}" if mode == MatchMode.FUZZY else ""
            return f"would match in {mode} mode (“{found.keyword}”{score}){off}"
    if trigger.match == MatchMode.FUZZY:
        threshold = float(
            (trigger.extra or {}).get("fuzzy_threshold") or 80
            if isinstance(trigger.extra, dict)
            else 80
        )
        found = match_text(MatchMode.FUZZY, text, keywords, fuzzy_threshold=NEAR_FUZZY)
        if found is not None:
            return (
                f"close but under its fuzzy threshold (“{found.keyword}” scores "
                f"{found.score:.0f}, it needs {threshold:.0f})"
            )
    return ""

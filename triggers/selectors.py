"""Reads for triggers, including which trigger answers a text."""

from dataclasses import dataclass

from accounts.models import InstagramAccount
from triggers.matching import Match, match_text
from triggers.models import MatchMode, Trigger

# Among triggers of equal priority, the more specific mode wins.
_MODE_SPECIFICITY = {
    MatchMode.EXACT: 4,
    MatchMode.CONTAINS: 3,
    MatchMode.FUZZY: 2,
    MatchMode.INTENT: 1,
    MatchMode.ANY: 0,
}


@dataclass(frozen=True)
class Decision:
    trigger: Trigger
    match: Match

    @property
    def mode(self) -> str:
        return self.trigger.match


def triggers_enabled(*, account: InstagramAccount, event: str) -> list[Trigger]:
    return list(Trigger.objects.filter(account=account, event=event, enabled=True))


def _specificity(trigger: Trigger, match: Match) -> tuple:
    return (
        trigger.priority,
        bool(trigger.media_ids),
        _MODE_SPECIFICITY.get(trigger.match, 0),
        match.score,
        len(match.keyword),
        -trigger.pk,
    )


def trigger_choose(
    *, account: InstagramAccount, event: str, text: str, media_id: str = ""
) -> Decision | None:
    """The one trigger that answers: highest priority, then the most specific match."""
    best: Decision | None = None
    for trigger in triggers_enabled(account=account, event=event):
        if trigger.media_ids and media_id not in trigger.media_ids:
            continue
        match = match_text(
            trigger.match,
            text,
            trigger.keywords,
            fuzzy_threshold=trigger.extra.get("fuzzy_threshold"),
        )
        if match is None:
            continue
        if best is None or _specificity(trigger, match) > _specificity(best.trigger, best.match):
            best = Decision(trigger, match)
    return best

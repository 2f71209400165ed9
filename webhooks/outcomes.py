"""What processing made of an update, in words: "matched Guide giveaway; nothing sent:
cooling down for this person until 14:02 UTC". The event pages, lists and a person's timeline
read results through here, never as JSON."""

from __future__ import annotations

from datetime import datetime

KIND_WORDS = {
    "comment": "Comment",
    "message": "Message",
    "story_reply": "Story reply",
    "story_mention": "Story mention",
    "quick_reply": "Tap on a quick reply",
    "postback": "Tap on a button",
    "reaction": "Reaction",
    "read": "Read receipt",
    "referral": "Referral",
    "echo": "The account's own message",
    "deleted": "Unsent message",
    "mention": "Mention",
}


def _until(raw: object) -> str:
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        return ""
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _sends(result: dict) -> str:
    count = len(result.get("deliveries") or [])
    if not count:
        return ""
    return f"{count} send{'s' if count != 1 else ''} queued"


def outcome_words(result: dict) -> str:
    """One update's outcome as a sentence."""
    if not isinstance(result, dict):
        return str(result)
    outcome = result.get("outcome", "")
    trigger = result.get("trigger") or "a trigger"
    why = result.get("why") or ""
    if outcome == "matched":
        parts = [f"matched {trigger}"]
        if result.get("mode"):
            keyword = f" “{result['keyword']}”" if result.get("keyword") else ""
            parts[0] += f" ({result['mode']}{keyword}, score {result.get('score', '-')})"
        if result.get("flow"):
            parts.append(f"flow went on to {result['flow']}")
        sends = _sends(result)
        if sends:
            parts.append(sends)
        elif why and why != "keywords matched":
            parts.append(why)
        elif "deliveries" in result:
            parts.append("nothing new to send")
        return "; ".join(parts)
    if outcome == "cooled_down":
        until = _until(result.get("until")) if result.get("until") else ""
        if until:
            return f"matched {trigger}; nothing sent: cooling down for this person until {until}"
        return f"matched {trigger}; nothing sent: cooling down for this person ({why})"
    if outcome == "no_match":
        return "no trigger matched"
    if outcome == "ignored":
        return f"ignored: {why}" if why else "ignored"
    if outcome == "recorded":
        if "seen" in result:
            seen = result["seen"]
            return f"marked {seen} of our message{'s' if seen != 1 else ''} as seen"
        return f"recorded ({why})" if why else "recorded"
    if outcome == "failed":
        return f"could not be processed: {why}" if why else "could not be processed"
    return outcome or "not processed yet"


def update_words(result: dict) -> str:
    """ "Comment: matched Guide giveaway; 2 sends queued"."""
    kind = KIND_WORDS.get(str(result.get("type", "")), str(result.get("type", "")).capitalize())
    return f"{kind}: {outcome_words(result)}" if kind else outcome_words(result)


STATE_WORDS = {
    "pending": "Waiting to be processed",
    "processed": "Answered",
    "no_match": "No trigger matched",
    "ignored": "Nothing to answer",
    "failed": "Failed",
    "rejected": "Rejected (not a JSON object)",
}


def state_words(state: str, results: list[dict]) -> str:
    """An event's state in words, telling a cool-down apart from an answer."""
    if state == "processed":
        outcomes = {item.get("outcome") for item in results if isinstance(item, dict)}
        if outcomes == {"cooled_down"}:
            return "Matched, nothing sent (cooling down)"
        if "matched" not in outcomes and "cooled_down" in outcomes:
            return "Matched, nothing sent (cooling down)"
    return STATE_WORDS.get(state, state)

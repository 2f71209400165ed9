"""What the trigger editor posts, built from a trigger in the trigger file's shape (tests only:
a person types the same into the form's fields)."""

from __future__ import annotations


def _message_fields(prefix: str, spec: dict) -> dict:
    data = {
        f"{prefix}-text": spec.get("text", ""),
        f"{prefix}-image": spec.get("image", ""),
        f"{prefix}-delay": str(spec.get("delay_seconds") or ""),
        f"{prefix}-delay_unit": "seconds",
    }
    if spec.get("follow_gate"):
        data[f"{prefix}-follow_gate"] = "on"
    choices = [("quick_reply", c) for c in spec.get("quick_replies") or []]
    choices += [("link" if "url" in c else "step_button", c) for c in spec.get("buttons") or []]
    data[f"{prefix}-count"] = str(len(choices))
    for k, (kind, choice) in enumerate(choices):
        data[f"{prefix}c{k}-kind"] = kind
        data[f"{prefix}c{k}-title"] = choice.get("title", "")
        data[f"{prefix}c{k}-url"] = choice.get("url", "")
        data[f"{prefix}c{k}-next"] = choice.get("next", "")
    return data


def editor_post(account_pk: int, **item) -> dict:
    """``item``: name, event, match, keywords, public_replies, messages, steps, ... as in the
    trigger file (options such as cooldown_seconds too)."""
    messages = item.get("messages", [{"text": "Here you go"}])
    steps = item.get("steps") or {}
    gate = item.get("follow_gate") or {}
    scope = (
        "next_post"
        if item.get("scope") == "next_post"
        else ("posts" if item.get("media_ids") else "all")
    )
    data = {
        "account": account_pk,
        "name": item.get("name", "Spring sale"),
        "event": item.get("event", "comment"),
        "fires_on": item.get("fires_on", "match"),
        "match": item.get("match", "contains"),
        "keywords": "\n".join(item.get("keywords", ["sale"])),
        "examples": "\n".join(item.get("examples", [])),
        "post_scope": scope,
        "media_ids": "\n".join(item.get("media_ids", [])),
        "public_replies": "\n".join(item.get("public_replies", ["Check your DMs"])),
        "cooldown_value": str(item["cooldown_seconds"]) if "cooldown_seconds" in item else "",
        "cooldown_unit": "seconds",
        "fuzzy_threshold": str(item.get("fuzzy_threshold", "")),
        "intent_threshold": str(item.get("intent_threshold", "")),
        "follow_gate_text": gate.get("text", ""),
        "follow_gate_button": gate.get("button", ""),
        "priority": str(item.get("priority", 0)),
        "steps-count": str(1 + len(steps)),
        "s0-count": str(len(messages)),
    }
    if item.get("enabled", True):
        data["enabled"] = "on"
    for name in ("include_replies", "include_live"):
        if item.get(name):
            data[name] = "on"
    for j, spec in enumerate(messages):
        data.update(_message_fields(f"s0m{j}", spec))
    for i, (name, step) in enumerate(steps.items(), start=1):
        data[f"s{i}-name"] = name
        data[f"s{i}-count"] = str(len(step))
        for j, spec in enumerate(step):
            data.update(_message_fields(f"s{i}m{j}", spec))
    return data


def trigger_editor_post(trigger, **overrides) -> dict:
    """A stored trigger as the editor shows it, with ``overrides`` typed over it."""
    item = {
        "name": trigger.name,
        "event": trigger.event,
        "match": trigger.match,
        "keywords": trigger.keywords,
        "examples": trigger.examples,
        "media_ids": trigger.media_ids,
        "public_replies": trigger.public_replies,
        "messages": trigger.messages,
        "enabled": trigger.enabled,
        "priority": trigger.priority,
        **(trigger.extra or {}),
    }
    item.update(overrides)
    return editor_post(overrides.pop("account_pk", trigger.account_id), **item)

"""What a person will see on their phone: a flow (the trigger file's shape) or a sent message
(Meta's shape) as bubbles, for the trigger page's preview and a delivery's page."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Bubble:
    text: str = ""
    image: str = ""
    buttons: list[str] = field(default_factory=list)  # "Title" or "Title ↗" for a link
    chips: list[str] = field(default_factory=list)  # quick replies
    delay: str = ""  # shown before the bubble ("after 1 h")
    gated: bool = False  # sent only to followers


@dataclass
class Screen:
    title: str  # "First messages" or "After a tap on “Send me the link”"
    bubbles: list[Bubble]


def _delay_words(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def bubble_from_spec(spec: dict) -> Bubble:
    """A flow message as the trigger file writes it."""
    if not isinstance(spec, dict):
        return Bubble(text=str(spec))
    buttons = []
    for button in spec.get("buttons") or []:
        if isinstance(button, dict):
            title = str(button.get("title") or "")
            buttons.append(f"{title} ↗" if "url" in button else title)
    chips = [
        str(item.get("title") or "")
        for item in spec.get("quick_replies") or []
        if isinstance(item, dict)
    ]
    delay = spec.get("delay_seconds") or 0
    text = spec.get("text") or ""
    if not text and not spec.get("image") and spec.get("attachment"):
        text = "(an attachment in Meta's format)"
    return Bubble(
        text=str(text),
        image=str(spec.get("image") or ""),
        buttons=buttons,
        chips=chips,
        delay=f"after {_delay_words(int(delay))}" if isinstance(delay, int) and delay > 0 else "",
        gated=spec.get("follow_gate") is True,
    )


def screens_for_flow(messages: list, steps: dict) -> list[Screen]:
    """The first messages, then each step a tap leads to."""
    screens = [Screen("First messages", [bubble_from_spec(m) for m in messages or []])]
    titles: dict[str, list[str]] = {}
    for message in [*(messages or []), *(m for step in (steps or {}).values() for m in step or [])]:
        if not isinstance(message, dict):
            continue
        for choice in [*(message.get("quick_replies") or []), *(message.get("buttons") or [])]:
            if isinstance(choice, dict) and choice.get("next"):
                titles.setdefault(str(choice["next"]), []).append(str(choice.get("title") or ""))
    for name, step in (steps or {}).items():
        taps = (
            " or ".join(f"“{title}”" for title in titles.get(name, [])) or "(no choice leads here)"
        )
        screens.append(
            Screen(
                f"Step “{name}”, after a tap on {taps}", [bubble_from_spec(m) for m in step or []]
            )
        )
    return screens


def bubble_from_meta(message: dict) -> Bubble:
    """A message in the Send API's shape (what a delivery stores)."""
    if not isinstance(message, dict):
        return Bubble(text=str(message))
    bubble = Bubble(text=str(message.get("text") or ""))
    attachment = message.get("attachment") or {}
    payload = attachment.get("payload") or {} if isinstance(attachment, dict) else {}
    if isinstance(payload, dict):
        if payload.get("template_type") == "button":
            bubble.text = str(payload.get("text") or "")
            for button in payload.get("buttons") or []:
                title = str(button.get("title") or "")
                bubble.buttons.append(f"{title} ↗" if button.get("type") == "web_url" else title)
        elif attachment.get("type") == "image":
            bubble.image = str(payload.get("url") or "")
        elif attachment:
            bubble.text = bubble.text or f"({attachment.get('type', 'an attachment')})"
    bubble.chips = [
        str(item.get("title") or "")
        for item in message.get("quick_replies") or []
        if isinstance(item, dict)
    ]
    return bubble

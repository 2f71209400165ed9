"""Meta's message objects (meta-api.md section 3), built from plain values.

Flows describe messages in our own words (text, image, link and postback buttons, quick
replies); these builders turn them into the ``message`` object the Send API and private
replies take, so no other module needs to know Meta's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_QUICK_REPLIES = 13
MAX_BUTTONS = 3
MAX_TITLE = 20  # quick-reply and button titles [seen]


@dataclass(frozen=True)
class Choice:
    """A quick reply or a postback button: a title, and the payload Meta echoes on a tap."""

    title: str
    payload: str


@dataclass(frozen=True)
class LinkButton:
    title: str
    url: str


def text_message(text: str, quick_replies: list[Choice] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"text": text}
    if quick_replies:
        message["quick_replies"] = [
            {"content_type": "text", "title": choice.title, "payload": choice.payload}
            for choice in quick_replies
        ]
    return message


def button_message(
    text: str,
    buttons: list[LinkButton | Choice],
    quick_replies: list[Choice] | None = None,
) -> dict[str, Any]:
    """A button template: text (640 characters at most) and up to three buttons."""
    rendered = []
    for button in buttons:
        if isinstance(button, LinkButton):
            rendered.append({"type": "web_url", "url": button.url, "title": button.title})
        else:
            rendered.append({"type": "postback", "title": button.title, "payload": button.payload})
    message: dict[str, Any] = {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "button", "text": text, "buttons": rendered},
        }
    }
    if quick_replies:
        message["quick_replies"] = text_message("", quick_replies)["quick_replies"]
    return message


def media_message(
    url: str, kind: str = "image", quick_replies: list[Choice] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"attachment": {"type": kind, "payload": {"url": url}}}
    if quick_replies:
        message["quick_replies"] = text_message("", quick_replies)["quick_replies"]
    return message


def strip_choices(message: dict[str, Any]) -> dict[str, Any]:
    """The same message without quick replies or postback buttons (plain text and links)."""
    stripped = {key: value for key, value in message.items() if key != "quick_replies"}
    payload = (stripped.get("attachment") or {}).get("payload") or {}
    if payload.get("template_type") == "button":
        links = [b for b in payload.get("buttons") or [] if b.get("type") == "web_url"]
        if links:
            stripped = {
                "attachment": {
                    "type": "template",
                    "payload": {**payload, "buttons": links},
                }
            }
        else:
            stripped = {"text": payload.get("text") or ""}
    return stripped

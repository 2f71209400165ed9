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
# Meta counts a message's text in UTF-8 bytes, not characters [doc]: "UTF-8 and 1000 bytes or
# less". Emoji and non-Latin scripts take 2 to 4 bytes each.
TEXT_MAX_BYTES = 1000
# A button template's text is counted in characters [doc].
BUTTON_TEXT_MAX_CHARS = 640
# A comment (our public reply) [seen]: Instagram's comment limit, in characters.
COMMENT_MAX_CHARS = 2200


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def text_limit_problem(text: str, *, with_buttons: bool = False) -> str:
    """Why Meta would refuse this message text for its length, or "" when it fits.

    One sentence with the figures, for forms, the trigger file and the pre-send checklist.
    """
    if with_buttons:
        chars = len(text)
        if chars > BUTTON_TEXT_MAX_CHARS:
            return (
                f"{chars:,} characters, {chars - BUTTON_TEXT_MAX_CHARS:,} over Meta's limit of "
                f"{BUTTON_TEXT_MAX_CHARS} characters for a message with buttons."
            )
    size = utf8_bytes(text)
    if size > TEXT_MAX_BYTES:
        return (
            f"{size:,} bytes in UTF-8, {size - TEXT_MAX_BYTES:,} over Meta's limit of "
            f"{TEXT_MAX_BYTES:,} bytes per message (emoji and non-Latin letters take 2 to 4 "
            "bytes each); shorten it."
        )
    return ""


def comment_limit_problem(text: str) -> str:
    """Why a public reply is too long, or ""."""
    if len(text) > COMMENT_MAX_CHARS:
        return (
            f"{len(text):,} characters, {len(text) - COMMENT_MAX_CHARS:,} over Instagram's "
            f"limit of {COMMENT_MAX_CHARS:,} characters for a comment."
        )
    return ""


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

"""Tracked links: a message's link buttons go through ``/l/<token>`` so a click is counted.

The token names the delivery and which of its links, sealed with an HMAC of the app's secret
key: it cannot be guessed or altered, and the redirect only ever goes to the URL stored in
that delivery's payload (never to anything the request says). Links are rewritten as the
message leaves (``payload_to_send``), from the delivery already loaded, so sending costs no
statement more; what the delivery stores is the link as the marketer wrote it.

Only button links are tracked: a link inside a message's text is left as written, so people
see the real address. A workspace switches tracking off with ``track_link_clicks``; without
``PUBLIC_BASE_URL`` (the address people reach this app at) nothing is rewritten.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from messaging.models import Delivery, DeliveryKind, LinkClick

_SALT = "messaging.links"
_MAC_BYTES = 12
# Meta's own crawler fetches links to build previews: not a person clicking.
_PREVIEW_AGENTS = ("facebookexternalhit", "facebot", "meta-externalagent")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def link_token(delivery_id: int, index: int) -> str:
    """The unguessable token of link ``index`` of the delivery."""
    body = bytes([index]) + delivery_id.to_bytes(8, "big")
    mac = salted_hmac(_SALT, body, algorithm="sha256").digest()[:_MAC_BYTES]
    return _encode(body + mac)


def parse_link_token(token: str) -> tuple[int, int] | None:
    """(delivery id, link index) of a genuine token; None for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 9 + _MAC_BYTES:
        return None
    body, mac = raw[:9], raw[9:]
    expected = salted_hmac(_SALT, body, algorithm="sha256").digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    return int.from_bytes(body[1:], "big"), body[0]


def _link_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's link buttons, in order (button templates and generic elements)."""
    payload = (message.get("attachment") or {}).get("payload")
    if not isinstance(payload, dict):
        return []
    buttons = list(payload.get("buttons") or [])
    for element in payload.get("elements") or []:
        if isinstance(element, dict):
            buttons += element.get("buttons") or []
    return [b for b in buttons if isinstance(b, dict) and b.get("type") == "web_url"]


def message_links(message: dict[str, Any]) -> list[str]:
    return [str(button.get("url") or "") for button in _link_buttons(message)]


def tracking_base_url() -> str:
    return (settings.PUBLIC_BASE_URL or "").rstrip("/")


def payload_to_send(delivery: Delivery) -> dict[str, Any]:
    """The delivery's message as it leaves: link buttons through /l/ when tracked."""
    payload = delivery.payload
    base = tracking_base_url()
    if (
        not base
        or delivery.kind == DeliveryKind.PUBLIC_REPLY
        or not delivery.workspace.track_link_clicks
        or not _link_buttons(payload)
    ):
        return payload
    tracked = copy.deepcopy(payload)
    for index, button in enumerate(_link_buttons(tracked)):
        button["url"] = f"{base}/l/{link_token(delivery.pk, index)}"
    return tracked


@dataclass(frozen=True)
class LinkTarget:
    delivery_id: int
    index: int
    url: str
    workspace_id: int
    account_id: int
    trigger_id: int | None
    tracked: bool


def link_target(token: str) -> LinkTarget | None:
    """Where a tracked link leads: the URL stored in its delivery; None when the token is not
    genuine, the delivery is gone, or the link is not an http(s) URL."""
    parsed = parse_link_token(token)
    if parsed is None:
        return None
    delivery_id, index = parsed
    row = (
        Delivery.objects.filter(pk=delivery_id)
        .values(
            "payload", "workspace_id", "account_id", "trigger_id", "workspace__track_link_clicks"
        )
        .first()
    )
    if row is None:
        return None
    links = message_links(row["payload"] or {})
    if index >= len(links) or not links[index].startswith(("https://", "http://")):
        return None
    return LinkTarget(
        delivery_id=delivery_id,
        index=index,
        url=links[index],
        workspace_id=row["workspace_id"],
        account_id=row["account_id"],
        trigger_id=row["trigger_id"],
        tracked=row["workspace__track_link_clicks"],
    )


def is_link_preview(user_agent: str) -> bool:
    agent = (user_agent or "").lower()
    return any(name in agent for name in _PREVIEW_AGENTS)


def link_click_record(target: LinkTarget) -> LinkClick | None:
    """Count a person's click (not when the workspace stopped tracking)."""
    if not target.tracked:
        return None
    return LinkClick.objects.create(
        delivery_id=target.delivery_id,
        workspace_id=target.workspace_id,
        account_id=target.account_id,
        trigger_id=target.trigger_id,
        link_index=target.index,
        url=target.url,
    )

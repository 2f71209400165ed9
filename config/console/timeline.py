"""A person's timeline: everything they did and everything we sent or decided, in time order.

Inbound: their comments (text and post), DMs, story replies and mentions, taps and reads, with
what processing made of each (matched which trigger, cooling down until when, no match).
Outbound: each send with its status, its reason in words and the next step, Meta's code and
trace id; the flow runs (where they are, why one stopped). Times to the second, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.urls import reverse

from accounts.models import Contact
from messaging.actions import RETRYABLE, delivery_retry_problem
from messaging.explain import delivery_next_step, delivery_waiting_for
from messaging.models import Delivery, DeliveryStatus
from triggers.models import FlowRun
from webhooks.interactions import interactions_catch_up
from webhooks.models import Interaction
from webhooks.outcomes import KIND_WORDS, outcome_words

# The page shows the latest of each kind of item, newest last.
MOST_ITEMS = 300


@dataclass
class Item:
    at: datetime
    side: str  # "inbound" | "outbound" | "flow"
    title: str
    said: str = ""
    lines: list[str] = field(default_factory=list)
    link: str = ""
    link_text: str = ""
    problem: bool = False
    next_step: str = ""
    anchor: str = ""
    retry_id: int | None = None  # a failed send support may retry from here
    retry_problem: str = ""


def _interaction_item(row: Interaction) -> Item:
    title = KIND_WORDS.get(row.kind, row.get_kind_display())
    lines = []
    if row.media_id:
        lines.append(f"on post {row.media_id}")
    if row.comment_id:
        lines.append(f"comment id {row.comment_id}")
    if row.parent_id:
        lines.append(f"a reply to comment {row.parent_id}")
    lines.append(outcome_words(row.result or {"outcome": row.outcome}))
    return Item(
        at=row.occurred_at,
        side="inbound",
        title=title,
        said=row.text,
        lines=lines,
        problem=row.outcome == "failed",
        anchor=f"interaction-{row.pk}",
    )


def _delivery_item(delivery: Delivery, may_act: bool) -> Item:
    what = delivery.get_kind_display()
    trigger = f" by {delivery.trigger.name}" if delivery.trigger_id else ""
    status = delivery.get_status_display().lower()
    reason = f": {delivery.get_reason_display().lower()}" if delivery.reason else ""
    lines = [f"{status}{reason}"]
    if delivery.detail:
        lines.append(delivery.detail)
    if delivery.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING):
        lines.append(delivery_waiting_for(delivery))
    if delivery.sent_at:
        lines.append(f"sent {delivery.sent_at:%Y-%m-%d %H:%M:%S} UTC")
    if delivery.seen_at:
        lines.append(f"seen {delivery.seen_at:%Y-%m-%d %H:%M:%S} UTC")
    if delivery.meta_code is not None:
        sub = f", subcode {delivery.meta_subcode}" if delivery.meta_subcode is not None else ""
        lines.append(f"Meta's code {delivery.meta_code}{sub}: {delivery.meta_message}")
    if delivery.meta_trace_id:
        lines.append(f"trace id {delivery.meta_trace_id}")
    text = (delivery.payload or {}).get("text") or (
        ((delivery.payload or {}).get("attachment") or {}).get("payload") or {}
    ).get("text", "")
    problem = delivery.status in (
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.UNKNOWN,
    )
    retry_problem = ""
    if may_act and delivery.status in RETRYABLE:
        retry_problem = delivery_retry_problem(delivery)
    return Item(
        retry_id=delivery.pk if may_act and delivery.status in RETRYABLE else None,
        retry_problem=retry_problem,
        at=delivery.created_at,
        side="outbound",
        title=f"We queued a {what.lower()}{trigger}",
        said=str(text or ""),
        lines=lines,
        link=reverse("admin:messaging_delivery_change", args=[delivery.pk]),
        link_text=f"Send #{delivery.pk}",
        problem=problem,
        next_step=delivery_next_step(delivery) if problem else "",
        anchor=f"delivery-{delivery.pk}",
    )


def _flow_item(run: FlowRun, may_open: bool) -> Item:
    lines = [run.get_status_display()]
    if run.detail:
        lines.append(run.detail)
    if run.step:
        lines.append(f"at step {run.step!r}, message {run.position + 1}")
    if run.finished_at:
        lines.append(f"finished {run.finished_at:%Y-%m-%d %H:%M:%S} UTC")
    return Item(
        at=run.started_at,
        side="flow",
        title=f"Flow of {run.trigger.name} started",
        lines=lines,
        # Flow runs are the marketers' pages: linked only for who may open them.
        link=reverse("admin:triggers_flowrun_change", args=[run.pk]) if may_open else "",
        link_text=f"Flow run #{run.pk}",
        problem=run.status == "stopped",
        anchor=f"flow-{run.pk}",
    )


def contact_timeline(
    *, contact: Contact, user, may_act: bool = False, may_open_flows: bool = False
) -> list[Item]:
    """The person's history on this account, oldest first (the latest MOST_ITEMS)."""
    interactions_catch_up(most_batches=2)
    inbound = Interaction.objects.filter(
        Q(contact=contact) | Q(account_id=contact.account_id, igsid=contact.igsid)
    ).order_by("-occurred_at", "-pk")[:MOST_ITEMS]
    deliveries = (
        Delivery.objects.filter(contact=contact)
        .select_related("trigger", "account", "contact")
        .order_by("-created_at", "-pk")[:MOST_ITEMS]
    )
    runs = (
        FlowRun.objects.filter(contact=contact)
        .select_related("trigger")
        .order_by("-started_at")[:MOST_ITEMS]
    )
    items = [_interaction_item(row) for row in inbound]
    items += [_delivery_item(delivery, may_act) for delivery in deliveries]
    items += [_flow_item(run, may_open_flows) for run in runs]
    items.sort(key=lambda item: (item.at, {"inbound": 0, "flow": 1, "outbound": 2}[item.side]))
    return items[-MOST_ITEMS:]

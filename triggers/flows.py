"""Flows: a trigger's messages sent in order, continued by a tap, a reply or a delay.

A run remembers where one person is in a trigger's flow. Each message becomes a delivery;
when it is sent (messaging says so through ``delivery_finished``) the run moves on: the next
message goes out (after its delay, durably, as a delivery due later, re-checked against the
window when it runs), or, after a message with quick replies or postback buttons, the run
waits for the person's tap (or a typed reply naming an option). A tap opens the 24-hour
window, which is what makes the key case work: the private reply to a comment carries a
quick reply, and the link goes out once the person taps it.

A message marked ``follow_gate`` is sent only to people who follow the account; others get
the trigger's follow request with an "I follow now" quick reply, and the run waits for it
(the person is never dropped: the run stays in the admin, waiting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Contact, InstagramAccount
from messaging import services as messaging_services
from messaging.models import FINAL_STATUSES, Delivery, DeliveryKind, DeliveryStatus
from messaging.services import FollowCheck
from meta import messages as meta_messages
from triggers.matching import normalize
from triggers.models import FlowRun, FlowStatus, Trigger, trigger_option

logger = logging.getLogger(__name__)

PAYLOAD_PREFIX = "flow"
RECHECK = "_recheck"
# A run waiting for a tap for longer than this is closed: the window a tap would open is the
# person's, but after a week the offer is stale.
WAITING_TAP_EXPIRY = timedelta(days=7)
# A run whose waited-on delivery settled this long ago without the run moving on missed its
# signal (a crash between the two); the sweeper moves it on.
STALLED_AFTER = timedelta(seconds=30)
# Lock a run's own row only: with its trigger, contact and account joined, FOR UPDATE also
# locked those rows, and concurrent flows of one trigger deadlocked on PostgreSQL (bench/soak.py
# found it in a burst of "link" comments).
RUN_ROW = ("self",)
DEFAULT_FOLLOW_GATE = {
    "text": "Follow @{username} first, then tap the button below and I'll send it right away.",
    "button": "I follow now",
}


# -- reading a trigger's flow -------------------------------------------------------------------


def step_messages(trigger: Trigger, step: str) -> list[dict]:
    if not step:
        return list(trigger.messages or [])
    steps = trigger_option(trigger, "steps", {})
    return list(steps.get(step) or []) if isinstance(steps, dict) else []


def message_choices(spec: dict) -> list[dict]:
    """Options a person can tap on this message: quick replies and postback buttons."""
    choices = [dict(item) for item in spec.get("quick_replies") or []]
    choices += [dict(item) for item in spec.get("buttons") or [] if "next" in item]
    return choices


def needs_run(trigger: Trigger) -> bool:
    """Whether answering takes more than one plain message (so a run must keep track)."""
    messages = trigger.messages or []
    if len(messages) > 1 or trigger_option(trigger, "steps"):
        return True
    return any(
        message_choices(spec) or spec.get("delay_seconds") or spec.get("follow_gate")
        for spec in messages
    )


# -- Meta's message objects -----------------------------------------------------------------


def choice_payload(run_id: int | None, target: str) -> str:
    return f"{PAYLOAD_PREFIX}:{run_id}:{target}"


@dataclass(frozen=True)
class Tap:
    run_id: int
    target: str


def parse_payload(payload: str) -> Tap | None:
    parts = (payload or "").split(":", 2)
    if len(parts) != 3 or parts[0] != PAYLOAD_PREFIX or not parts[1].isdigit():
        return None
    return Tap(int(parts[1]), parts[2])


def render(spec: dict, run_id: int | None) -> dict:
    """A flow message in Meta's shape; options carry payloads that lead back to the run."""
    quick = [
        meta_messages.Choice(item["title"], choice_payload(run_id, item["next"]))
        for item in spec.get("quick_replies") or []
    ]
    if "attachment" in spec:
        message = {"attachment": spec["attachment"]}
        if quick:
            message["quick_replies"] = meta_messages.text_message("", quick)["quick_replies"]
        return message
    if spec.get("image"):
        return meta_messages.media_message(spec["image"], "image", quick)
    buttons: list = []
    for item in spec.get("buttons") or []:
        if "url" in item:
            buttons.append(meta_messages.LinkButton(item["title"], item["url"]))
        else:
            buttons.append(
                meta_messages.Choice(item["title"], choice_payload(run_id, item["next"]))
            )
    if buttons:
        return meta_messages.button_message(spec.get("text", ""), buttons, quick)
    return meta_messages.text_message(spec.get("text", ""), quick)


def render_private_reply(spec: dict, run_id: int | None) -> dict:
    message = render(spec, run_id)
    # Reports conflict on whether comment recipients get quick replies and buttons [seen]:
    # operators can switch them off; a typed reply then continues the flow instead.
    if not settings.PRIVATE_REPLY_CHOICES:
        message = meta_messages.strip_choices(message)
    return message


# -- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """The event a trigger answers, as flows need it."""

    key: str  # "comment:<id>" or "mid:<mid>"
    occurred_at: datetime
    event_id: int | None
    event_received_at: datetime | None
    comment_id: str = ""  # set: the first message goes as the comment's private reply
    live_media_id: str = ""  # set: the comment was made during this live broadcast


def flow_start(
    *, account: InstagramAccount, trigger: Trigger, contact: Contact, origin: Origin
) -> FlowRun:
    """Start (once per origin event) the trigger's flow for this person."""
    run, created = FlowRun.objects.get_or_create(
        account=account,
        origin_key=origin.key,
        defaults={
            "trigger": trigger,
            "contact": contact,
            "comment_id": origin.comment_id,
            "segment_key": origin.key,
        },
    )
    if created:
        _emit(run, origin)
    return run


def _first_in_segment(run: FlowRun) -> bool:
    return run.position == 0 and run.segment_key == run.origin_key and not run.step


def _emit(run: FlowRun, origin: Origin, *, gate_passed: bool = False) -> Delivery | None:
    """Queue the run's current message (or finish the run when there is none)."""
    messages = step_messages(run.trigger, run.step)
    if run.position >= len(messages):
        return _finish(run, FlowStatus.DONE, "All messages sent.")
    spec = messages[run.position]
    via_comment = bool(run.comment_id) and _first_in_segment(run)
    if spec.get("follow_gate") and not gate_passed:
        if run.contact.last_interaction_at is None:
            # No consent yet (they only commented): Meta will not say whether they follow,
            # and looking them up would not count as following. Ask, and check after the tap.
            return _ask_to_follow(run, origin, via_comment=via_comment)
        run.status, run.detail = FlowStatus.CHECKING_FOLLOW, "Checking whether they follow."
        run.save(update_fields=["status", "detail", "updated_at"])
        from triggers.tasks import check_follow

        transaction.on_commit(lambda: check_follow.delay(run.pk))
        return None
    delay = int(spec.get("delay_seconds") or 0)
    not_before = timezone.now() + timedelta(seconds=delay) if delay else None
    if via_comment:
        how = {
            "kind": DeliveryKind.PRIVATE_REPLY,
            "dedupe_key": f"private_reply:{run.comment_id}",
            "payload": render_private_reply(spec, run.pk),
            "comment_id": run.comment_id,
            "live_media_id": origin.live_media_id,
        }
    else:
        how = {
            "kind": DeliveryKind.MESSAGE,
            "dedupe_key": f"flow:{run.pk}:{run.step}:{run.position}:{run.segment_key}",
            "payload": render(spec, run.pk),
        }
    delivery = messaging_services.delivery_create(
        account=run.account,
        trigger=run.trigger,
        contact=run.contact,
        interaction_at=origin.occurred_at,
        event_id=origin.event_id,
        event_received_at=origin.event_received_at,
        not_before=not_before,
        **how,
    )
    run.status, run.waiting_delivery_id = FlowStatus.RUNNING, delivery.pk
    run.detail = f"Message {run.position + 1} of {run.step or 'the first step'} queued."
    run.save(update_fields=["status", "waiting_delivery_id", "detail", "updated_at"])
    return delivery


def _finish(run: FlowRun, status: str, detail: str) -> None:
    run.status, run.detail, run.finished_at = status, detail, timezone.now()
    run.waiting_delivery_id = None
    run.save(update_fields=["status", "detail", "finished_at", "waiting_delivery_id", "updated_at"])
    return None


def _origin_of(run: FlowRun) -> Origin:
    # Continuations answer the person's latest interaction; the window check at send time
    # reads the contact's last interaction, so this time is informative only.
    return Origin(
        key=run.segment_key,
        occurred_at=run.contact.last_interaction_at or timezone.now(),
        event_id=None,
        event_received_at=None,
    )


def flow_advance(*, run_id: int) -> FlowRun | None:
    """Move a run on once the delivery it waits for has settled. Safe to run twice."""
    with transaction.atomic():
        run = (
            FlowRun.objects.select_for_update(of=RUN_ROW)
            .select_related("trigger", "contact", "account")
            .filter(pk=run_id, status=FlowStatus.RUNNING)
            .first()
        )
        if run is None or run.waiting_delivery_id is None:
            return run
        delivery = Delivery.objects.filter(pk=run.waiting_delivery_id).first()
        if delivery is None:
            return _finish(run, FlowStatus.STOPPED, "Its message record was deleted.")
        if delivery.status not in FINAL_STATUSES:
            return run
        if delivery.status == DeliveryStatus.UNKNOWN and delivery.next_attempt_at is not None:
            return run  # Meta is still to be asked whether it went out (messaging/resolve.py)
        if delivery.status != DeliveryStatus.SENT:
            return _finish(
                run,
                FlowStatus.STOPPED,
                f"Message {run.position + 1} was not sent ({delivery.status}"
                f"{': ' + delivery.reason if delivery.reason else ''}); see delivery "
                f"#{delivery.pk}.",
            )
        spec = step_messages(run.trigger, run.step)[run.position : run.position + 1]
        if spec and message_choices(spec[0]):
            run.status, run.waiting_delivery_id = FlowStatus.WAITING_TAP, None
            run.detail = "Waiting for the person to tap an option (or reply)."
            run.save(update_fields=["status", "waiting_delivery_id", "detail", "updated_at"])
            return run
        run.position += 1
        run.save(update_fields=["position", "updated_at"])
        _emit(run, _origin_of(run))
        return run


def flow_delivery_settled(*, delivery: Delivery) -> None:
    """messaging's delivery_finished: move on the run waiting for this delivery, if any."""
    if delivery.trigger_id is None:
        return
    if Delivery.trigger.is_cached(delivery) and not needs_run(delivery.trigger):
        # Loaded with the send: a one-message trigger starts no run, so none waits (a run
        # left waiting by an edit of its trigger is moved on by the flow sweeper).
        return
    for run_id in FlowRun.objects.filter(
        waiting_delivery_id=delivery.pk, status=FlowStatus.RUNNING
    ).values_list("pk", flat=True):
        flow_advance(run_id=run_id)


def _run_of_message(delivery: Delivery) -> FlowRun | None:
    """The run a flow message or private reply belongs to (from its dedupe key)."""
    key = delivery.dedupe_key
    if key.startswith("flow:") and ":gate:" not in key:
        run_id = key.split(":", 2)[1]
        return FlowRun.objects.filter(pk=run_id, account_id=delivery.account_id).first()
    if key.startswith("private_reply:") and delivery.trigger_id:
        return FlowRun.objects.filter(
            account_id=delivery.account_id,
            comment_id=delivery.comment_id,
            trigger_id=delivery.trigger_id,
        ).first()
    return None


def flow_delivery_retried(*, delivery: Delivery) -> FlowRun | None:
    """messaging's delivery_retried: a run that stopped because this message was not sent
    waits for it again, and goes on once it is (an operator's retry)."""
    run = _run_of_message(delivery)
    if run is None or run.status != FlowStatus.STOPPED:
        return run
    FlowRun.objects.filter(pk=run.pk, status=FlowStatus.STOPPED).update(
        status=FlowStatus.RUNNING,
        waiting_delivery_id=delivery.pk,
        finished_at=None,
        detail=f"Message {run.position + 1} is being tried again (delivery #{delivery.pk}).",
        updated_at=timezone.now(),
    )
    return run


def flow_tap(*, account: InstagramAccount, contact: Contact, tap: Tap, origin: Origin) -> dict:
    """A quick-reply or postback tap on one of our flow messages."""
    run = (
        FlowRun.objects.select_for_update(of=RUN_ROW)
        .select_related("trigger", "contact", "account")
        .filter(pk=tap.run_id, account=account)
        .first()
    )
    if run is None or run.contact_id != contact.pk:
        return {"outcome": "ignored", "why": "a tap on a flow that no longer exists"}
    if origin.key == run.segment_key:
        return {"outcome": "recorded", "why": "this tap was handled already", "flow_run": run.pk}
    base = {"outcome": "matched", "trigger": run.trigger.name, "trigger_id": run.trigger_id}
    if tap.target == RECHECK:
        run.segment_key = origin.key
        run.save(update_fields=["segment_key", "updated_at"])
        _emit(run, origin)
        return {**base, "flow_run": run.pk, "flow": "checking follow again"}
    if not step_messages(run.trigger, tap.target):
        return {"outcome": "ignored", "why": f"the flow has no step {tap.target!r} any more"}
    run.step, run.position, run.segment_key = tap.target, 0, origin.key
    run.finished_at = None
    run.save(update_fields=["step", "position", "segment_key", "finished_at", "updated_at"])
    delivery = _emit(run, origin)
    return {
        **base,
        "flow_run": run.pk,
        "flow": f"step {tap.target}",
        "deliveries": [delivery.pk] if delivery else [],
    }


@dataclass(frozen=True)
class WaitingReply:
    tap: Tap
    named: bool  # the reply names an option (else it only continues the single option)


def flow_waiting_reply(*, contact: Contact, text: str) -> WaitingReply | None:
    """A typed reply that continues a waiting run: it names an option, or options were hidden."""
    run = (
        FlowRun.objects.filter(
            contact=contact,
            status__in=[FlowStatus.WAITING_TAP, FlowStatus.WAITING_FOLLOW],
            updated_at__gte=timezone.now() - WAITING_TAP_EXPIRY,
        )
        .select_related("trigger", "account")
        .order_by("-updated_at")
        .first()
    )
    if run is None:
        return None
    said = normalize(text)
    if run.status == FlowStatus.WAITING_FOLLOW:
        wanted = normalize(_follow_gate(run.trigger, run.account)["button"])
        return WaitingReply(Tap(run.pk, RECHECK), named=True) if said == wanted else None
    spec = step_messages(run.trigger, run.step)[run.position : run.position + 1]
    choices = message_choices(spec[0]) if spec else []
    for choice in choices:
        if said and said == normalize(choice["title"]):
            return WaitingReply(Tap(run.pk, choice["next"]), named=True)
    if len(choices) == 1 and _choices_hidden(run):
        # The option was not shown: any reply goes on.
        return WaitingReply(Tap(run.pk, choices[0]["next"]), named=False)
    return None


def _choices_hidden(run: FlowRun) -> bool:
    """Whether the person never saw the waiting message's options: choices are switched off
    for private replies, or Meta refused them and the reply went as plain text."""
    if not run.comment_id or run.step or run.position:
        return False  # only the private reply (the first message) can lose its options
    if not settings.PRIVATE_REPLY_CHOICES:
        return True
    sent = (
        Delivery.objects.filter(
            account_id=run.account_id, dedupe_key=f"private_reply:{run.comment_id}"
        )
        .values_list("payload", flat=True)
        .first()
    )
    return isinstance(sent, dict) and meta_messages.strip_choices(sent) == sent


def _follow_gate(trigger: Trigger, account: InstagramAccount) -> dict:
    gate = {**DEFAULT_FOLLOW_GATE, **(trigger_option(trigger, "follow_gate", {}) or {})}
    gate["text"] = gate["text"].replace("{username}", account.username)
    return gate


def _ask_to_follow(run: FlowRun, origin: Origin, *, via_comment: bool = False) -> Delivery:
    """Send the follow request with its "I follow now" quick reply; the run waits for it."""
    gate = _follow_gate(run.trigger, run.account)
    payload = meta_messages.text_message(
        gate["text"], [meta_messages.Choice(gate["button"], choice_payload(run.pk, RECHECK))]
    )
    common = {
        "account": run.account,
        "trigger": run.trigger,
        "contact": run.contact,
        "interaction_at": origin.occurred_at,
        "event_id": origin.event_id,
        "event_received_at": origin.event_received_at,
    }
    if via_comment:
        # The gated message was to be the private reply: the request takes its place.
        delivery = messaging_services.delivery_create(
            **common,
            kind=DeliveryKind.PRIVATE_REPLY,
            dedupe_key=f"private_reply:{run.comment_id}",
            payload=payload
            if settings.PRIVATE_REPLY_CHOICES
            else meta_messages.strip_choices(payload),
            comment_id=run.comment_id,
            live_media_id=origin.live_media_id,
        )
    else:
        delivery = messaging_services.delivery_create(
            **common,
            kind=DeliveryKind.MESSAGE,
            dedupe_key=f"flow:{run.pk}:gate:{run.step}:{run.position}:{run.segment_key}",
            payload=payload,
        )
    run.status = FlowStatus.WAITING_FOLLOW
    run.detail = "Asked them to follow and tap: Meta tells whether someone follows only then."
    run.save(update_fields=["status", "detail", "updated_at"])
    return delivery


def flow_check_follow(*, run_id: int) -> FlowRun | None:
    """The follow gate: send the gated message to followers, ask the others to follow."""
    run = (
        FlowRun.objects.select_related("trigger", "contact", "account")
        .filter(pk=run_id, status=FlowStatus.CHECKING_FOLLOW)
        .first()
    )
    if run is None:
        return None
    # Outside the transaction: a call to Meta must not hold the run's row lock.
    answer = messaging_services.contact_follows_account(account=run.account, contact=run.contact)
    with transaction.atomic():
        run = (
            FlowRun.objects.select_for_update(of=RUN_ROW)
            .select_related("trigger", "contact", "account")
            .filter(pk=run_id, status=FlowStatus.CHECKING_FOLLOW)
            .first()
        )
        if run is None:
            return None
        origin = _origin_of(run)
        if answer == FollowCheck.UNKNOWN:
            # Meta could not say: the person asked for it, so they get it rather than nothing.
            logger.warning("Follow check for flow run %s failed; sending anyway", run.pk)
            _emit(run, origin, gate_passed=True)
            run.detail = "Meta could not say whether they follow; sent anyway. " + run.detail
            run.save(update_fields=["detail", "updated_at"])
            return run
        if answer == FollowCheck.FOLLOWS:
            _emit(run, origin, gate_passed=True)
            return run
        # Not following, or no consent yet (never taken for following): ask, and check again
        # after their tap.
        _ask_to_follow(run, origin)
        if answer == FollowCheck.CONSENT_REQUIRED:
            run.detail = "Meta needs their consent first (a message or a tap): asked them to tap."
        else:
            run.detail = "Not following yet: asked them to follow and tap again."
        run.save(update_fields=["detail", "updated_at"])
        return run


# Work one sweep (every SWEEP_INTERVAL_SECONDS) takes on, at most: a backlog is worked down
# over several sweeps, oldest first, each well inside the task's time limit.
SWEEP_ADVANCE_BATCH = 500
SWEEP_FOLLOW_CHECK_BATCH = 200


def flows_sweep(*, now: datetime | None = None) -> dict:
    """Beat: move on runs that missed their signal; close runs left waiting too long.

    Chosen by state in SQL, oldest first: only runs whose awaited message has settled (so a
    thousand newer runs still waiting cannot hide an older one that can move on), and follow
    checks are handed to their own tasks (each one call to Meta) instead of made here.
    """
    from triggers.tasks import check_follow

    now = now or timezone.now()
    stalled_before = now - STALLED_AFTER
    settled = Delivery.objects.filter(pk=OuterRef("waiting_delivery_id"), status__in=FINAL_STATUSES)
    ready = (
        FlowRun.objects.filter(
            status=FlowStatus.RUNNING,
            waiting_delivery_id__isnull=False,
            updated_at__lt=stalled_before,
        )
        .filter(Exists(settled))
        .order_by("updated_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_ADVANCE_BATCH]
    )
    advanced = 0
    for run_id in list(ready):
        flow_advance(run_id=run_id)
        advanced += 1
    checking = list(
        FlowRun.objects.filter(status=FlowStatus.CHECKING_FOLLOW, updated_at__lt=stalled_before)
        .order_by("updated_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_FOLLOW_CHECK_BATCH]
    )
    queued = 0
    for run_id in checking:
        # Touched first, so the next sweeps leave it to this check instead of queueing more.
        if FlowRun.objects.filter(
            pk=run_id, status=FlowStatus.CHECKING_FOLLOW, updated_at__lt=stalled_before
        ).update(updated_at=now):
            check_follow.delay(run_id)
            queued += 1
    expired = FlowRun.objects.filter(
        status__in=[FlowStatus.WAITING_TAP, FlowStatus.WAITING_FOLLOW],
        updated_at__lt=now - WAITING_TAP_EXPIRY,
    ).update(status=FlowStatus.DONE, finished_at=now, detail="No tap within 7 days; closed.")
    return {"advanced": advanced, "follow_rechecked": queued, "expired": expired}

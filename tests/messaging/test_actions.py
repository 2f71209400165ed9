"""Operator actions on sends: each follows Meta's rules, acts once, and is audited."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccountStatus, AuditEntry
from messaging import actions
from messaging.explain import PAUSED_UNTIL_RESUMED
from messaging.models import Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from messaging.pacer import account_pace
from tests.factories import (
    ContactFactory,
    DeliveryFactory,
    FlowRunFactory,
    InstagramAccountFactory,
    TriggerFactory,
    UserFactory,
)
from triggers.actions import trigger_pause, trigger_resume
from triggers.models import FlowStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return UserFactory(username="sam", is_superuser=True)


def failed(**fields) -> Delivery:
    fields.setdefault("status", DeliveryStatus.FAILED)
    fields.setdefault("reason", "meta_error")
    fields.setdefault("finished_at", timezone.now())
    return DeliveryFactory(**fields)


# --- retry: the rules ---------------------------------------------------------------------------
def test_a_failed_private_reply_inside_its_window_may_be_retried():
    assert actions.delivery_retry_problem(failed()) == ""


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: failed(status=DeliveryStatus.UNKNOWN, reason=""), "may have reached Meta"),
        (lambda: failed(status=DeliveryStatus.SENT, reason=""), "It was sent."),
        (lambda: failed(status=DeliveryStatus.QUEUED, reason=""), "not finished yet"),
        (lambda: failed(reason="already_replied"), "already got its one private reply"),
        (
            lambda: failed(interaction_at=timezone.now() - timedelta(days=8)),
            "Meta no longer allows this send",
        ),
        (
            lambda: failed(
                kind=DeliveryKind.MESSAGE,
                contact=ContactFactory(last_interaction_at=timezone.now() - timedelta(hours=30)),
                interaction_at=timezone.now() - timedelta(hours=30),
            ),
            "Meta no longer allows this send",
        ),
        (
            lambda: failed(account=InstagramAccountFactory(status=AccountStatus.NEEDS_RECONNECT)),
            "needs reconnecting first",
        ),
    ],
)
def test_retry_is_refused_where_meta_rules_or_state_forbid(make, says):
    assert says in actions.delivery_retry_problem(make())


def test_a_comment_whose_private_reply_was_used_is_not_retried():
    first = failed()
    DeliveryFactory(
        account=first.account,
        comment_id=first.comment_id,
        dedupe_key="other",
        status=DeliveryStatus.SENT,
    )
    assert "already got its one private reply" in actions.delivery_retry_problem(first)


def test_a_send_whose_attempt_may_have_reached_meta_is_not_retried():
    delivery = failed()
    DeliveryAttempt.objects.create(delivery=delivery, number=1, outcome="lost")
    assert "may have reached Meta" in actions.delivery_retry_problem(delivery)


# --- retry: what it does -------------------------------------------------------------------------
def test_retry_queues_again_once_and_writes_the_audit(operator, django_capture_on_commit_callbacks):
    delivery = failed(meta_code=1)
    refused = failed(status=DeliveryStatus.UNKNOWN, reason="")
    with django_capture_on_commit_callbacks():
        summary = actions.deliveries_retry(delivery_ids=[delivery.pk, refused.pk], actor=operator)
    assert summary.done == [delivery.pk]
    assert sum(summary.refused.values()) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason, delivery.finished_at) == ("queued", "", None)
    assert "Queued again by sam" in delivery.detail
    entry = AuditEntry.objects.get(action="retried")
    assert (entry.actor, entry.object_id) == (operator, str(delivery.pk))
    assert entry.workspace_id == delivery.workspace_id


def test_a_flow_stopped_by_the_send_waits_for_it_again(
    operator, django_capture_on_commit_callbacks
):
    trigger = TriggerFactory()
    run = FlowRunFactory(trigger=trigger, status=FlowStatus.STOPPED, position=1)
    delivery = failed(
        account=run.account,
        trigger=trigger,
        contact=run.contact,
        kind=DeliveryKind.MESSAGE,
        dedupe_key=f"flow:{run.pk}::1:{run.segment_key}",
        interaction_at=timezone.now(),
    )
    delivery.contact.last_interaction_at = timezone.now()
    delivery.contact.save()
    with django_capture_on_commit_callbacks(execute=True):
        actions.deliveries_retry(delivery_ids=[delivery.pk], actor=operator)
    run.refresh_from_db()
    assert (run.status, run.waiting_delivery_id) == (FlowStatus.RUNNING, delivery.pk)


# --- cancel --------------------------------------------------------------------------------------
def test_cancel_stops_queued_sends_only(operator, django_capture_on_commit_callbacks):
    queued = DeliveryFactory()
    sending = DeliveryFactory(status=DeliveryStatus.SENDING)
    with django_capture_on_commit_callbacks():
        summary = actions.deliveries_cancel(delivery_ids=[queued.pk, sending.pk], actor=operator)
    assert summary.done == [queued.pk]
    queued.refresh_from_db()
    assert queued.status == DeliveryStatus.SKIPPED
    assert queued.detail.startswith("Cancelled by sam")
    assert Delivery.objects.get(pk=sending.pk).status == DeliveryStatus.SENDING
    assert AuditEntry.objects.filter(action="cancelled", object_id=str(queued.pk)).exists()


# --- pause and resume ----------------------------------------------------------------------------
def test_a_paused_account_sends_nothing_until_resumed(operator, django_capture_on_commit_callbacks):
    delivery = DeliveryFactory()
    account = delivery.account
    assert actions.account_sending_pause(account=account, actor=operator)
    assert not actions.account_sending_pause(account=account, actor=operator)  # once
    account.refresh_from_db()
    assert account.paused_until == PAUSED_UNTIL_RESUMED
    assert account_pace(account_id=account.pk)["dispatched"] == 0
    # A send dispatched just before the pause waits for it too (the send path requeues it).
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=PAUSED_UNTIL_RESUMED)
    with django_capture_on_commit_callbacks():
        assert actions.account_sending_resume(account=account, actor=operator) == 1
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is None
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"paused", "resumed"}


def test_a_paused_trigger_answers_but_its_sends_wait(operator, django_capture_on_commit_callbacks):
    from messaging.services import delivery_create

    trigger = TriggerFactory()
    waiting = DeliveryFactory(account=trigger.account, trigger=trigger)
    with django_capture_on_commit_callbacks():
        assert trigger_pause(trigger=trigger, actor=operator) == 1
    waiting.refresh_from_db()
    assert waiting.next_attempt_at == PAUSED_UNTIL_RESUMED
    assert "was paused by sam" in waiting.detail
    with django_capture_on_commit_callbacks():
        new = delivery_create(
            account=trigger.account,
            trigger=trigger,
            contact=ContactFactory(account=trigger.account),
            kind=DeliveryKind.PRIVATE_REPLY,
            dedupe_key="private_reply:1",
            payload={"text": "Hi"},
            comment_id="1",
            interaction_at=timezone.now(),
            event_id=None,
            event_received_at=None,
        )
    assert new.next_attempt_at == PAUSED_UNTIL_RESUMED
    assert "is paused" in new.detail
    with django_capture_on_commit_callbacks():
        assert trigger_resume(trigger=trigger, actor=operator) == 2
    assert not Delivery.objects.filter(next_attempt_at=PAUSED_UNTIL_RESUMED).exists()
    assert AuditEntry.objects.filter(action="resumed", object_type="triggers.trigger").exists()


# --- through the console: confirmation first, role-checked ---------------------------------------
def test_the_retry_action_asks_first_and_says_how_many(admin_client):
    delivery = failed()
    gone = failed(status=DeliveryStatus.UNKNOWN, reason="")
    url = reverse("admin:messaging_delivery_changelist")
    data = {"action": "retry_selected", "_selected_action": [delivery.pk, gone.pk]}
    page = admin_client.post(url, data).content.decode()
    assert "Queue 1 send(s) again" in page and "Left alone (1)" in page
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.FAILED  # not yet
    admin_client.post(url, {**data, "confirmed": "yes"})
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.QUEUED
    assert Delivery.objects.get(pk=gone.pk).status == DeliveryStatus.UNKNOWN


def test_marketers_read_sends_but_cannot_retry_them():
    from accounts.models import Role
    from tests.factories import MembershipFactory

    delivery = failed(trigger=TriggerFactory())
    marketer = MembershipFactory(workspace=delivery.workspace, role=Role.MARKETER).user
    from django.test import Client

    client = Client()
    client.force_login(marketer)
    url = reverse("admin:messaging_delivery_changelist")
    assert client.get(url).status_code == 200
    page = client.get(reverse("admin:messaging_delivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and 'id="delivery-retry"' not in page.content.decode()
    data = {"action": "retry_selected", "_selected_action": [delivery.pk], "confirmed": "yes"}
    client.post(url, data)
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.FAILED


def test_export_asks_first_then_streams_the_filtered_list_and_audits(admin_client):
    failed()
    DeliveryFactory(status=DeliveryStatus.SENT)
    url = reverse("admin:messaging_delivery_export") + "?status__exact=failed"
    page = admin_client.get(url).content.decode()
    assert "This downloads the 1 delivery" in page
    response = admin_client.post(url.split("?")[0], {"status__exact": "failed", "confirmed": "yes"})
    rows = b"".join(response.streaming_content).decode().strip().splitlines()
    assert rows[0].startswith("id,workspace,account,trigger,kind")
    assert len(rows) == 2 and ",failed," in rows[1]
    assert AuditEntry.objects.filter(action="exported", object_type="messaging.delivery").exists()

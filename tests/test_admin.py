"""The operator console: every list and detail page renders, lists stay cheap, tokens hidden."""

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from messaging.models import DeliveryStatus
from tests.factories import (
    ContactFactory,
    DeliveryFactory,
    InstagramAccountFactory,
    TriggerFactory,
    WebhookEventFactory,
)
from webhooks.models import EventState

pytestmark = pytest.mark.django_db

MODELS = [
    ("accounts", "workspace"),
    ("accounts", "instagramaccount"),
    ("accounts", "contact"),
    ("triggers", "trigger"),
    ("webhooks", "webhookevent"),
    ("messaging", "delivery"),
    ("messaging", "accountqueue"),
    ("triggers", "flowrun"),
    ("triggers", "triggerfiring"),
    ("accounts", "auditentry"),
    ("accounts", "membership"),
    ("accounts", "invitation"),
    ("accounts", "datadeletionrequest"),
]


@pytest.fixture
def populated():
    account = InstagramAccountFactory(token="EAAGsupersecrettokenvalue1234")
    trigger = TriggerFactory(account=account)
    event = WebhookEventFactory(result=[{"type": "comment", "outcome": "matched", "trigger": "x"}])
    for status in DeliveryStatus.values:
        DeliveryFactory(account=account, trigger=trigger, event=event, status=status)
    ContactFactory(account=account)
    return account


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist_renders(admin_client, populated, app, model):
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200


def test_delivery_list_query_count_does_not_grow_with_rows(
    admin_client, populated, django_assert_max_num_queries
):
    url = reverse("admin:messaging_delivery_changelist")
    with django_assert_max_num_queries(12):
        admin_client.get(url)
    for _ in range(20):
        DeliveryFactory(account=populated)
    with django_assert_max_num_queries(12):
        admin_client.get(url)


def test_queue_page_shows_depth_budget_and_reconnect_reason(admin_client, populated):
    populated.status = "needs_reconnect"
    populated.status_reason = "Reconnect @x: Meta says its token no longer works"
    populated.save()
    listing = admin_client.get(reverse("admin:messaging_accountqueue_changelist"))
    assert b"Reconnect @x" in listing.content
    detail = admin_client.get(reverse("admin:messaging_accountqueue_change", args=[populated.pk]))
    assert detail.status_code == 200
    for label in [
        b"Queued",
        b"Budget per second",
        b"Estimated time to drain",
        b"miss their window",
    ]:
        assert label in detail.content


def test_delivery_filters(admin_client, populated):
    url = reverse("admin:messaging_delivery_changelist")
    for query in [
        "?problems=failed_hour",
        "?problems=unknown",
        "?status=failed",
        "?reason=meta_error",
    ]:
        assert admin_client.get(url + query).status_code == 200


def test_delivery_detail_shows_attempts_and_reason(admin_client, populated):
    delivery = populated.deliveries.filter(status=DeliveryStatus.FAILED).first()
    response = admin_client.get(reverse("admin:messaging_delivery_change", args=[delivery.pk]))
    assert response.status_code == 200
    assert b"Attempt" in response.content or b"attempt" in response.content


def test_account_page_never_shows_the_token(admin_client, populated):
    response = admin_client.get(
        reverse("admin:accounts_instagramaccount_change", args=[populated.pk])
    )
    assert response.status_code == 200
    assert b"EAAGsupersecrettokenvalue1234" not in response.content
    assert "EAAG…1234".encode() in response.content
    listing = admin_client.get(reverse("admin:accounts_instagramaccount_changelist"))
    assert b"EAAGsupersecrettokenvalue1234" not in listing.content


def test_account_list_shows_the_status_reason_in_red(admin_client, populated):
    populated.status = "needs_reconnect"
    populated.status_reason = "Reconnect @x: Meta no longer grants instagram_manage_messages"
    populated.save()
    body = admin_client.get(reverse("admin:accounts_instagramaccount_changelist")).content.decode()
    assert "color:#ba2121" in body
    assert "Meta no longer grants instagram_manage_messages" in body


def test_audit_entry_pages_render_who_when_and_what(admin_client, populated):
    admin_client.post(
        reverse("admin:accounts_workspace_change", args=[populated.workspace_id]),
        {
            "name": "Renamed client",
            "blocked_words": '["spam"]',
            "blocked_domains": "[]",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    entry = AuditEntry.objects.get(object_type="accounts.workspace")
    listing = admin_client.get(reverse("admin:accounts_auditentry_changelist"))
    assert listing.status_code == 200
    assert "Renamed client" in listing.content.decode()
    page = admin_client.get(reverse("admin:accounts_auditentry_change", args=[entry.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "<strong>blocked_words</strong>" in body
    assert "<strong>name</strong>" in body
    assert entry.actor_label in body


def test_account_token_can_be_replaced_from_the_admin(admin_client, populated):
    url = reverse("admin:accounts_instagramaccount_change", args=[populated.pk])
    response = admin_client.post(
        url,
        {
            "workspace": populated.workspace_id,
            "ig_user_id": populated.ig_user_id,
            "ig_alt_id": "",
            "username": populated.username,
            "page_id": populated.page_id,
            "login_kind": "facebook",
            "scopes": "[]",
            "status": "active",
            "status_reason": "",
            "new_access_token": "replacement-token-0000",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    populated.refresh_from_db()
    assert populated.access_token == "replacement-token-0000"


def test_event_detail_and_reprocess_action(admin_client, django_capture_on_commit_callbacks):
    event = WebhookEventFactory(state=EventState.FAILED, error="boom")
    detail = admin_client.get(reverse("admin:webhooks_webhookevent_change", args=[event.pk]))
    assert detail.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:webhooks_webhookevent_changelist"),
            {"action": "reprocess", "_selected_action": [event.pk], "confirmed": "yes"},
        )
    event.refresh_from_db()
    # Re-processed inline (eager tasks): the empty batch is ignored, the error is gone.
    assert event.state == EventState.IGNORED
    assert event.error == ""


# --- Every admin list costs the same few queries however many rows it shows -------------------
def _grow(model: str, n: int, account) -> None:
    """n more rows of the model's list, each with its own related rows where it has any."""
    from accounts.models import DataDeletionRequest, Invitation, Membership
    from tests.factories import (
        FlowRunFactory,
        TriggerFiringFactory,
        UserFactory,
        WorkspaceFactory,
    )

    for i in range(n):
        other = InstagramAccountFactory()
        trigger = TriggerFactory(account=other)
        if model in ("workspace", "instagramaccount", "accountqueue"):
            for status in DeliveryStatus.values:
                DeliveryFactory(account=other, status=status)
        elif model == "contact":
            ContactFactory(account=other)
        elif model == "webhookevent":
            event = WebhookEventFactory(result=[{"type": "comment", "outcome": "matched"}])
            event.accounts.add(other)
        elif model == "delivery":
            DeliveryFactory(account=other, trigger=trigger)
        elif model == "flowrun":
            FlowRunFactory(trigger=trigger)
        elif model == "triggerfiring":
            TriggerFiringFactory(trigger=trigger)
        elif model == "auditentry":
            AuditEntry.objects.create(
                actor=UserFactory(), actor_label="x", action="changed",
                object_type="triggers.trigger", object_id=str(trigger.pk),
                object_repr=trigger.name, workspace=other.workspace,
            )  # fmt: skip
        elif model == "membership":
            Membership.objects.create(
                user=UserFactory(), workspace=WorkspaceFactory(), role="support"
            )
        elif model == "invitation":
            Invitation.objects.create(
                email=f"p{i}@example.com", role="support", workspace=WorkspaceFactory(),
                invited_by=UserFactory(), key=f"{model}{i}{other.pk}",
                expires_at="2099-01-01T00:00:00Z",
            )  # fmt: skip
        elif model == "datadeletionrequest":
            DataDeletionRequest.objects.create(confirmation_code=f"c{other.pk}", meta_user_id="1")


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_every_admin_list_costs_the_same_queries_for_more_rows(
    admin_client, populated, app, model, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse(f"admin:{app}_{model}_changelist")
    _grow(model, 2, populated)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    _grow(model, 10, populated)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)
    assert response.context["cl"].result_count >= 10
    assert len(few.captured_queries) <= 15


def test_the_sending_queues_list_shows_each_accounts_figures(admin_client, populated):
    from datetime import timedelta

    from django.utils import timezone

    busy = InstagramAccountFactory(username="busy.account")
    for _ in range(3):
        DeliveryFactory(account=busy, status=DeliveryStatus.QUEUED)
    DeliveryFactory(account=busy, status=DeliveryStatus.QUEUED, held_since=timezone.now())
    DeliveryFactory(account=busy, status=DeliveryStatus.SENT, sent_at=timezone.now())
    DeliveryFactory(
        account=busy, status=DeliveryStatus.SENT, sent_at=timezone.now() - timedelta(minutes=5)
    )
    response = admin_client.get(reverse("admin:messaging_accountqueue_changelist"))
    row = next(obj for obj in response.context["cl"].result_list if obj.pk == busy.pk)
    assert (row.queued_count, row.held_count, row.sent_last_minute) == (4, 1, 1)
    assert "busy.account" in response.content.decode()

"""The dashboard: every role lands on numbers of its workspaces, each figure linking to the list
behind it where the person may open that list, and the dashboard costs a fixed few queries."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccountStatus, Role
from config.console.rollups import figures_recount_all
from messaging.explain import PAUSED_UNTIL_RESUMED
from messaging.models import DeliveryStatus
from tests.factories import (
    DeliveryFactory,
    InstagramAccountFactory,
    MembershipFactory,
    TriggerFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    workspace = WorkspaceFactory(name="Acme")
    account = InstagramAccountFactory(workspace=workspace, username="acme.studio")
    trigger = TriggerFactory(account=account, name="Guide giveaway")
    now = timezone.now()
    for status, reason, n in [
        (DeliveryStatus.SENT, "", 3),
        (DeliveryStatus.FAILED, "window_expired", 2),
        (DeliveryStatus.SKIPPED, "content_rejected", 1),
    ]:
        for _ in range(n):
            DeliveryFactory(
                account=account, trigger=trigger, status=status, reason=reason, finished_at=now
            )
    DeliveryFactory(account=account, trigger=trigger)  # queued
    other = InstagramAccountFactory(workspace=WorkspaceFactory(name="Bravo"), username="bravo")
    DeliveryFactory(
        account=other, status=DeliveryStatus.FAILED, reason="meta_error", finished_at=now
    )
    figures_recount_all(now=now)
    return account


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member(workspace, role: str):
    return MembershipFactory(workspace=workspace, role=role).user


@pytest.mark.parametrize("role", [Role.MARKETER, Role.SUPPORT])
def test_every_role_lands_on_its_workspaces_numbers(acme, role):
    response = signed_in(member(acme.workspace, role)).get(reverse("admin:index"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Acme" in body and "Bravo" not in body
    board = response.context["dashboard"].boards[0]
    today = board.totals["today"]
    assert (today["sent"].value, today["failed"].value, today["skipped"].value) == (3, 2, 1)
    assert board.accounts[0].queued == 1
    assert '<svg class="chart"' in body  # failures by reason, drawn by the app


def test_agency_admin_sees_every_workspace(acme):
    admin = UserFactory(is_superuser=True)
    dashboard = signed_in(admin).get(reverse("admin:index")).context["dashboard"]
    assert [board.workspace.name for board in dashboard.boards] == ["Acme", "Bravo"]


def test_a_failure_figure_links_to_exactly_the_deliveries_behind_it(acme):
    client = signed_in(member(acme.workspace, Role.SUPPORT))
    board = client.get(reverse("admin:index")).context["dashboard"].boards[0]
    link = board.totals["today"]["failed"].link
    listing = client.get(link)
    rows = listing.context["cl"].result_list
    assert listing.status_code == 200
    assert len(rows) == 2 and all(row.status == "failed" for row in rows)


def test_chart_bars_link_to_the_reason_they_count(acme):
    client = signed_in(UserFactory(is_superuser=True))
    body = client.get(reverse("admin:index")).content.decode()
    assert "reason=window_expired" in body
    assert "Messaging window expired (failed)" in body


def test_figures_link_only_to_lists_the_person_may_open(acme):
    marketer = member(acme.workspace, Role.MARKETER)
    body = signed_in(marketer).get(reverse("admin:index")).content.decode()
    assert reverse("admin:messaging_delivery_changelist") in body  # their triggers' sends
    assert reverse("admin:webhooks_interaction_changelist") not in body  # support's
    assert reverse("admin:accounts_contact_changelist") not in body


def test_no_workspace_says_so(acme):
    body = signed_in(UserFactory()).get(reverse("admin:index")).content.decode()
    assert 'id="no-workspace"' in body


def test_accounts_needing_attention_and_paused_sending_show(acme):
    acme.status = AccountStatus.NEEDS_RECONNECT
    acme.status_reason = "Reconnect @acme.studio: Meta says its token no longer works"
    acme.last_webhook_at = timezone.now() - timedelta(days=3)
    acme.save()
    other = InstagramAccountFactory(workspace=acme.workspace, username="paused.one")
    other.paused_until, other.pause_reason = PAUSED_UNTIL_RESUMED, "Paused by x"
    other.save()
    body = signed_in(UserFactory(is_superuser=True)).get(reverse("admin:index")).content.decode()
    assert "needs reconnecting" in body
    assert "Sending paused until resumed" in body


def test_the_dashboard_costs_a_fixed_few_queries(acme, django_assert_max_num_queries):
    client = signed_in(UserFactory(is_superuser=True))
    client.get(reverse("admin:index"))
    for n in range(5):
        account = InstagramAccountFactory(workspace=acme.workspace, username=f"more{n}")
        trigger = TriggerFactory(account=account)
        DeliveryFactory(account=account, trigger=trigger, status="sent", finished_at=timezone.now())
    figures_recount_all()
    with django_assert_max_num_queries(20):
        assert client.get(reverse("admin:index")).status_code == 200

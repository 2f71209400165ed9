"""Refused pages are pages of the console with a way back; internals stay out of members' sight;
the invited sign-up names the workspace and role."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts import invitations
from accounts.models import Role
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_refused_page_is_friendly_and_leads_back():
    marketer = MembershipFactory(workspace=WorkspaceFactory(name="Acme"), role=Role.MARKETER).user
    client = signed_in(marketer)
    response = client.get(
        reverse("admin:accounts_contact_changelist"), HTTP_REFERER="http://testserver/admin/"
    )
    body = response.content.decode()
    assert response.status_code == 403
    assert "You are marketer (triggers and flows) in 1 workspace." in body
    assert "Acme" not in body  # a refused page names nothing
    assert 'href="http://testserver/admin/" id="refused-back"' in body
    assert 'id="refused-dashboard"' in body and 'id="site-name"' in body


def test_members_never_see_django_internals_nor_a_view_site_link():
    support = MembershipFactory(role=Role.SUPPORT).user
    body = signed_in(support).get(reverse("admin:index")).content.decode()
    for internal in ("Groups", "Email addresses", "Authenticators", "View site"):
        assert internal not in body
    admin_body = signed_in(UserFactory(is_superuser=True)).get(reverse("admin:index")).content
    assert b"View site" not in admin_body


def test_the_invited_sign_up_names_the_workspace_and_role():
    invitation = invitations.invitation_create(
        email="mia@example.com",
        role=Role.MARKETER,
        workspace=WorkspaceFactory(name="Acme"),
        invited_by=UserFactory(username="agency"),
    )
    client = Client()
    client.get(reverse("invitation_accept", args=[invitation.key]))
    page = client.get(reverse("account_signup")).content.decode()
    assert "Join Acme" in page
    assert "Marketer (triggers and flows)" in page and "mia@example.com" in page
    sign_in = Client().get(reverse("account_login")).content.decode()
    assert "console/console.css" in page and "console/console.css" in sign_in


def test_an_event_export_holds_only_the_persons_part(world_for_export):
    client, url = world_for_export
    response = client.post(url, {"confirmed": "yes"})
    text = b"".join(response.streaming_content).decode()
    assert "Comment: matched Acme giveaway" in text
    assert "Bravo" not in text


@pytest.fixture
def world_for_export():
    import json

    from tests.factories import InstagramAccountFactory, WebhookEventFactory
    from webhooks import services

    acme, bravo = WorkspaceFactory(name="Acme"), WorkspaceFactory(name="Bravo")
    mine = InstagramAccountFactory(workspace=acme)
    theirs = InstagramAccountFactory(workspace=bravo)
    body = {"object": "instagram", "entry": [{"id": mine.ig_user_id}, {"id": theirs.ig_user_id}]}
    event = WebhookEventFactory(
        raw_body=json.dumps(body),
        state="processed",
        result=[
            {"type": "comment", "outcome": "matched", "trigger": "Acme giveaway",
             "account": mine.ig_user_id},
            {"type": "comment", "outcome": "matched", "trigger": "Bravo giveaway",
             "account": theirs.ig_user_id},
        ],
    )  # fmt: skip
    event.accounts.add(mine, theirs)
    services.webhook_events_split()
    support = MembershipFactory(workspace=acme, role=Role.SUPPORT).user
    return signed_in(support), reverse("admin:webhooks_webhookevent_export")

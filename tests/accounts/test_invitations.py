"""Sign-in: invitations are the only way in; the admin signs in through allauth (with TOTP)."""

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts import invitations
from accounts.models import AuditEntry, Invitation, Membership, Role
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "a-long-unguessable-passphrase-42"


def signup(client, email, username="newperson"):
    return client.post(
        "/accounts/signup/",
        {"email": email, "username": username, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_there_is_no_open_sign_up(client):
    response = client.get("/accounts/signup/")
    assert "closed" in response.content.decode().lower()
    signup(client, "stranger@example.com")
    assert not User.objects.filter(email="stranger@example.com").exists()


def test_an_invited_marketer_signs_up_and_gets_the_role(client):
    workspace = WorkspaceFactory(name="Acme")
    invitation = invitations.invitation_create(
        email="Mia@Example.com", role=Role.MARKETER, workspace=workspace
    )

    page = client.get(f"/accounts/invitation/{invitation.key}/", follow=True)
    assert 'value="mia@example.com"' in page.content.decode()
    response = signup(client, "mia@example.com", "mia")

    assert response.status_code == 302
    user = User.objects.get(username="mia")
    assert user.is_staff and not user.is_superuser
    assert Membership.objects.get(user=user).role == Role.MARKETER
    invitation.refresh_from_db()
    assert invitation.accepted_by == user
    assert client.get("/admin/").status_code == 200  # signed in, in the console
    assert AuditEntry.objects.filter(action="joined", actor=user).exists()


def test_the_invited_address_must_be_used(client):
    invitation = invitations.invitation_create(
        email="mia@example.com", role=Role.SUPPORT, workspace=WorkspaceFactory()
    )
    client.get(f"/accounts/invitation/{invitation.key}/")
    response = signup(client, "someone.else@example.com")
    assert "Use the invited address" in response.content.decode()
    assert not User.objects.exists()


def test_an_agency_admin_invitation_makes_a_superuser(client):
    invitation = invitations.invitation_create(
        email="boss@example.com", role=Role.AGENCY_ADMIN, workspace=WorkspaceFactory()
    )
    assert invitation.workspace is None
    client.get(f"/accounts/invitation/{invitation.key}/")
    signup(client, "boss@example.com", "boss")
    assert User.objects.get(username="boss").is_superuser
    assert not Membership.objects.exists()


@pytest.mark.parametrize("problem", ["expired", "used", "unknown"])
def test_unusable_invitations_are_refused(client, problem):
    invitation = invitations.invitation_create(
        email="mia@example.com", role=Role.MARKETER, workspace=WorkspaceFactory()
    )
    key = invitation.key
    if problem == "expired":
        Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    elif problem == "used":
        Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now())
    else:
        key = "not-a-key"
    response = client.get(f"/accounts/invitation/{key}/")
    assert response.status_code == 410
    signup(client, "mia@example.com")
    assert not User.objects.exists()


def test_someone_already_in_is_added_to_another_workspace(client):
    first, second = WorkspaceFactory(name="A"), WorkspaceFactory(name="B")
    user = User.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    Membership.objects.create(user=user, workspace=first, role=Role.MARKETER)
    invitation = invitations.invitation_create(
        email="sam@example.com", role=Role.SUPPORT, workspace=second
    )
    url = f"/accounts/invitation/{invitation.key}/"

    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]

    client.force_login(user)
    assert client.get(url).status_code == 302
    roles = dict(Membership.objects.filter(user=user).values_list("workspace__name", "role"))
    assert roles == {"A": Role.MARKETER, "B": Role.SUPPORT}


def test_an_invitation_for_someone_else_is_refused_when_signed_in(client):
    user = User.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    invitation = invitations.invitation_create(
        email="mia@example.com", role=Role.SUPPORT, workspace=WorkspaceFactory()
    )
    client.force_login(user)
    response = client.get(f"/accounts/invitation/{invitation.key}/")
    assert response.status_code == 403
    assert not Membership.objects.exists()


def test_invite_command_prints_and_mails_the_link():
    WorkspaceFactory(name="Acme")
    out = io.StringIO()
    call_command(
        "invite", "mia@example.com", "--role", "marketer", "--workspace", "Acme", stdout=out
    )
    link = re.search(r"http://\S+/accounts/invitation/\S+/", out.getvalue()).group(0)
    assert link in mail.outbox[0].body
    assert Invitation.objects.get().expires_at > timezone.now() + timedelta(days=6)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["mia@example.com", "--role", "marketer"], "workspace"),
        (["mia@example.com", "--role", "marketer", "--workspace", "Nope"], "No workspace"),
        (["not-an-email", "--role", "agency_admin"], "email"),
    ],
)
def test_invite_command_refuses_bad_input(args, fragment):
    with pytest.raises(CommandError, match=fragment):
        call_command("invite", *args, stdout=io.StringIO())
    assert not Invitation.objects.exists()


def test_the_admin_signs_in_through_allauth(client):
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")


def test_totp_is_asked_when_a_person_turned_it_on(client):
    from allauth.mfa.totp.internal.auth import (
        TOTP,
        format_hotp_value,
        generate_totp_secret,
        hotp_value,
        yield_hotp_counters_from_time,
    )

    user = User.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)

    response = client.post("/accounts/login/", {"login": "sam", "password": PASSWORD})
    assert response.status_code == 302
    assert "/2fa/authenticate" in response["Location"]
    assert client.get("/admin/").status_code == 302  # not signed in yet

    wrong = client.post(response["Location"], {"code": "000000"})
    assert wrong.status_code == 200
    assert client.get("/admin/").status_code == 302

    counter = next(yield_hotp_counters_from_time())
    code = format_hotp_value(hotp_value(secret, counter))
    signed_in = client.post(response["Location"], {"code": code})
    assert signed_in.status_code == 302
    assert client.get("/admin/").status_code == 200

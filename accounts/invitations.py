"""Invitations: the only way a person gets an account (there is no open sign-up)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Invitation, Membership, Role, Workspace

SESSION_KEY = "invitation_key"


class InvitationError(ValueError):
    """An invitation that cannot be used (unknown, expired, used, or for someone else)."""


def invitation_create(
    *, email: str, role: str, workspace: Workspace | None, invited_by=None
) -> Invitation:
    email = email.strip().lower()
    if role not in Role.values:
        raise InvitationError(f"The role must be one of {', '.join(Role.values)}.")
    if role != Role.AGENCY_ADMIN and workspace is None:
        raise InvitationError("Marketers and support people are invited to a workspace.")
    if role == Role.AGENCY_ADMIN:
        workspace = None  # agency admins see every workspace
    invitation = Invitation.objects.create(
        email=email,
        role=role,
        workspace=workspace,
        key=secrets.token_urlsafe(32),
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_DAYS),
    )
    audit_record(
        action="invited",
        obj=invitation,
        actor=invited_by,
        actor_label="" if invited_by else "command",
    )
    return invitation


def invitation_url(invitation: Invitation, base_url: str = "") -> str:
    return base_url.rstrip("/") + reverse("invitation_accept", args=[invitation.key])


def invitation_send(invitation: Invitation, *, base_url: str) -> str:
    """Email the invitation (the console in development); returns the link."""
    link = invitation_url(invitation, base_url)
    where = f" for {invitation.workspace}" if invitation.workspace_id else ""
    send_mail(
        subject="You are invited to the Instagram DM automation console",
        message=(
            f"You are invited as {invitation.get_role_display()}{where}.\n\n"
            f"Accept and choose your password: {link}\n\n"
            f"The link works until {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
    return link


def invitation_usable(key: str) -> Invitation:
    invitation = Invitation.objects.select_related("workspace").filter(key=key).first()
    if invitation is None:
        raise InvitationError("This invitation link is not valid.")
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation was already used; sign in instead.")
    if invitation.expires_at <= timezone.now():
        raise InvitationError("This invitation has expired; ask for a new one.")
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user) -> None:
    """Give the person the invited role (a second workspace for someone already in)."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation was already used.")
    if (user.email or "").strip().lower() != invitation.email:
        raise InvitationError(f"This invitation is for {invitation.email}.")
    user.is_staff = True  # the admin is the console
    if invitation.role == Role.AGENCY_ADMIN:
        user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    if invitation.workspace_id:
        membership, _ = Membership.objects.update_or_create(
            user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
        )
        audit_record(action="joined", obj=membership, actor=user)
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])


def user_for_email(email: str):
    return get_user_model().objects.filter(email__iexact=email.strip()).first()

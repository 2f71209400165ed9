from allauth.account.adapter import DefaultAccountAdapter
from django import forms

from accounts import invitations


class InvitationOnlyAccountAdapter(DefaultAccountAdapter):
    """People join by invitation from an agency admin; there is no open sign-up."""

    def _invitation(self, request):
        key = request.session.get(invitations.SESSION_KEY) if request is not None else None
        if not key:
            return None
        try:
            return invitations.invitation_usable(key)
        except invitations.InvitationError:
            return None

    def is_open_for_signup(self, request) -> bool:
        return self._invitation(request) is not None

    def clean_email(self, email: str) -> str:
        email = super().clean_email(email)
        invitation = self._invitation(self.request)
        if invitation is not None and email.strip().lower() != invitation.email:
            raise forms.ValidationError(f"Use the invited address, {invitation.email}.")
        return email

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=True)
        invitation = self._invitation(request)
        if invitation is not None:
            invitations.invitation_accept(invitation=invitation, user=user)
            request.session.pop(invitations.SESSION_KEY, None)
        return user

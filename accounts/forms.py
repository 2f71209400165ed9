import contextlib

from allauth.account.forms import SignupForm
from allauth.core import context

from accounts import invitations


class InvitedSignupForm(SignupForm):
    """Sign-up is reached only from an invitation: its address is filled in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = context.request
        key = request.session.get(invitations.SESSION_KEY) if request is not None else None
        # The page names the workspace and role the person is invited to.
        self.invitation = None
        if key:
            with contextlib.suppress(invitations.InvitationError):
                self.invitation = invitations.invitation_usable(key)
        if self.invitation is not None and "email" in self.fields:
            self.initial["email"] = self.invitation.email

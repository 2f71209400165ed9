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
        if key and "email" in self.fields:
            with contextlib.suppress(invitations.InvitationError):
                self.initial["email"] = invitations.invitation_usable(key).email

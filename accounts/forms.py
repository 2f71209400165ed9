import contextlib

from allauth.account.forms import SignupForm

from accounts import invitations


class InvitedSignupForm(SignupForm):
    """Sign-up is reached only from an invitation: its address is filled in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = getattr(self, "request", None)
        key = request.session.get(invitations.SESSION_KEY) if request is not None else None
        if key and "email" in self.fields:
            with contextlib.suppress(invitations.InvitationError):
                self.fields["email"].initial = invitations.invitation_usable(key).email

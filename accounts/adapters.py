from allauth.account.adapter import DefaultAccountAdapter


class InvitationOnlyAccountAdapter(DefaultAccountAdapter):
    """People join by invitation from an agency admin; there is no open sign-up."""

    def is_open_for_signup(self, request) -> bool:
        return False

"""The link in an invitation: sign up (or sign in) and get the invited role."""

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts import invitations


def invitation_accept(request: HttpRequest, key: str) -> HttpResponse:
    try:
        invitation = invitations.invitation_usable(key)
    except invitations.InvitationError as exc:
        return render(request, "accounts/invitation_invalid.html", {"error": str(exc)}, status=410)
    if request.user.is_authenticated:
        try:
            invitations.invitation_accept(invitation=invitation, user=request.user)
        except invitations.InvitationError as exc:
            return render(
                request, "accounts/invitation_invalid.html", {"error": str(exc)}, status=403
            )
        messages.success(request, f"You joined as {invitation.get_role_display()}.")
        return redirect("/admin/")
    if invitations.user_for_email(invitation.email) is not None:
        # Someone already signed up with this address: they sign in, then come back here.
        return redirect_to_login(request.get_full_path())
    request.session[invitations.SESSION_KEY] = invitation.key
    return redirect("account_signup")

"""Template context for every page: what the console's header and reconnect banner need.

Lazy: nothing is read until a template uses it, and for anonymous people nothing is read at all.
"""

from __future__ import annotations

from functools import cached_property

from django.http import HttpRequest

from accounts import connecting
from accounts.models import InstagramAccount, Membership, Role


class ConnectNav:
    """``instadm_connect`` in templates."""

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    @cached_property
    def _user(self):
        user = getattr(self._request, "user", None)
        return user if user is not None and user.is_authenticated and user.is_active else None

    @cached_property
    def can_connect_new(self) -> bool:
        """May the person connect a new account somewhere (the header's entry point)?"""
        user = self._user
        if user is None:
            return False
        if user.is_superuser:
            return True
        return Membership.objects.filter(user=user, role=Role.AGENCY_ADMIN).exists()

    @cached_property
    def needing_reconnect(self) -> list[InstagramAccount]:
        """Accounts of the person's workspaces that need reconnecting (the banner)."""
        user = self._user
        return connecting.accounts_needing_reconnect(user) if user is not None else []


def connect_nav(request: HttpRequest) -> dict[str, ConnectNav]:
    return {"instadm_connect": ConnectNav(request)}

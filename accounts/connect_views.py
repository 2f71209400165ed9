"""The connect journey's pages (URLs in accounts/urls_connect.py); the work is in connecting.py.

The pages extend the admin's base template, so they carry the console's header and banner.
"""

from __future__ import annotations

import contextlib

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts import connecting
from accounts.connecting import ConnectError
from accounts.models import InstagramAccount
from meta import oauth


def _render(request: HttpRequest, template: str, status: int = 200, **context) -> HttpResponse:
    context = {**admin.site.each_context(request), **context}
    return render(request, f"accounts/{template}", context, status=status)


def _error(request: HttpRequest, exc: ConnectError) -> HttpResponse:
    return _render(request, "connect_error.html", exc.status, title=exc.title, error=exc.message)


def _redirect_uri(request: HttpRequest) -> str:
    # The same absolute URI in the dialog and in the code exchange, as Meta requires.
    return request.build_absolute_uri(reverse("connect_callback"))


def _account_page(request: HttpRequest, account: InstagramAccount) -> str:
    user = request.user
    if user.is_superuser or user.has_perm("accounts.view_instagramaccount"):
        return reverse("admin:accounts_instagramaccount_change", args=[account.pk])
    return reverse("admin:index")


@login_required
@require_GET
def connect_start(request: HttpRequest) -> HttpResponse:
    """Without parameters: pick a workspace and a login; with them: off to Meta's dialog."""
    login = request.GET.get("login", "")
    workspace = request.GET.get("workspace", "")
    if not login:
        return _render(
            request,
            "connect_start.html",
            title="Connect an Instagram account",
            workspaces=connecting.connectable_workspaces(request.user),
            selected=workspace,
            instagram_enabled=connecting.instagram_login_enabled(),
        )
    try:
        url = connecting.connect_start(
            user=request.user,
            session=request.session,
            workspace_id=workspace,
            login=login,
            account_id=request.GET.get("account", ""),
            redirect_uri=_redirect_uri(request),
        )
    except ConnectError as exc:
        return _error(request, exc)
    return redirect(url)


@login_required
@require_GET
def connect_callback(request: HttpRequest) -> HttpResponse:
    """Meta's redirect: a code (exchange it, list the accounts) or why there is none."""
    answer = oauth.read_redirect(request.GET)
    if answer.error:
        # The person pressed Cancel: use up the state if it is ours, store nothing.
        with contextlib.suppress(ConnectError):
            connecting.read_state(raw=answer.state, user=request.user, session=request.session)
        return _render(
            request,
            "connect_cancelled.html",
            title="The connection was cancelled",
            reason=answer.error_description or answer.error_reason or answer.error,
        )
    try:
        pending = connecting.connect_complete(
            user=request.user,
            session=request.session,
            params=request.GET,
            redirect_uri=_redirect_uri(request),
        )
    except ConnectError as exc:
        return _error(request, exc)
    # A page of its own, so reloading it does not replay Meta's one-time code.
    return redirect("connect_choose", key=pending.key)


@login_required
@require_http_methods(["GET", "POST"])
def connect_choose(request: HttpRequest, key: str) -> HttpResponse:
    """The accounts the person can connect; POST connects the one picked."""
    try:
        pending = connecting.pending_for(key=key, user=request.user)
    except ConnectError as exc:
        return _error(request, exc)
    if request.method == "GET":
        choices = connecting.pending_choices(pending)
        usable = [c for c in choices if c.usable]
        return _render(
            request,
            "connect_choose.html",
            title="Pick the Instagram account to connect",
            pending=pending,
            choices=choices,
            preselected=usable[0].key if len(usable) == 1 else "",
            login_name=connecting.LOGIN_NAMES.get(pending.login_kind, pending.login_kind),
            missing=connecting.missing_scopes(pending.login_kind, pending.scopes),
        )
    try:
        result = connecting.connect_choose(
            pending=pending, choice_key=request.POST.get("choice", ""), user=request.user
        )
    except ConnectError as exc:
        return _error(request, exc)
    account = result.account
    verb = "Connected" if result.created else "Reconnected"
    messages.success(request, f"{verb} {account} to workspace {account.workspace}.")
    if result.missing_scopes:
        messages.warning(request, account.status_reason)
    if not result.subscribed:
        messages.error(request, f"{account} is connected, but {result.subscribe_error}")
        return redirect("connect_subscribe", account_id=account.pk)
    messages.info(request, f"{account} is subscribed to Meta's webhooks.")
    return redirect(_account_page(request, account))


@login_required
@require_http_methods(["GET", "POST"])
def connect_subscribe(request: HttpRequest, account_id: int) -> HttpResponse:
    """The account's webhook subscription: the last attempt, and a button to subscribe again."""
    account = get_object_or_404(InstagramAccount.objects.select_related("workspace"), pk=account_id)
    if not connecting.can_connect(request.user, account.workspace, account=account):
        return _error(
            request, ConnectError(f"You may not change {account}'s subscription.", status=403)
        )
    if request.method == "POST":
        ok, error = connecting.account_subscribe(account=account, actor=request.user)
        if ok:
            messages.success(request, f"{account} is subscribed to Meta's webhooks.")
            return redirect(_account_page(request, account))
        messages.error(request, error)
        return redirect("connect_subscribe", account_id=account.pk)
    action, note, at = connecting.last_subscription(account)
    return _render(
        request,
        "connect_subscribe.html",
        title=f"Webhook subscription of {account}",
        account=account,
        last_action=action,
        last_note=note,
        last_at=at,
        account_url=_account_page(request, account),
    )

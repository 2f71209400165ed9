"""Connecting an Instagram account through Meta's own OAuth dialogs (the ``/connect/`` journey).

The journey, in four steps (views in ``accounts/connect_views.py``, Meta's side in
``meta/oauth.py``, facts in meta-api.md section 7):

1. ``connect_start``: a signed-in person who may connect accounts in a workspace gets the URL of
   Facebook Login's dialog or Instagram Login's authorize page. ``state`` is signed with
   ``django.core.signing`` and binds the person, the workspace, the login kind, the account
   being reconnected (if any) and a nonce kept in the session: it works once, in that browser,
   for that person, for 15 minutes.
2. ``connect_complete`` (the redirect URI): verifies ``state``, exchanges the code for a
   long-lived token, reads which accounts the person can connect (Facebook: their Pages and the
   linked Instagram accounts; Instagram: the one account) and keeps all that, encrypted, in a
   ``PendingConnection`` for 15 minutes.
3. ``connect_choose``: the operator picks one account. It is created or updated (token, ids,
   granted scopes, who connected it) and made active, which releases sends held while it needed
   reconnecting; an audit entry is written and the pending connection deleted.
4. ``account_subscribe``: the account is subscribed to the app's webhook fields. A failure is
   recorded and shown, and can be retried; the account stays connected.

Declined permissions: the account is connected anyway, but stored as needing a reconnect with
reason ``permission_missing`` and a sentence naming what is missing. Its sends are then held (not
lost) and the admin banner offers "Reconnect"; refusing outright would leave the operator with
nothing to look at and Meta's events for the account unrecognised.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts import crypto
from accounts.audit import audit_record, diff, snapshot
from accounts.models import (
    AccountStatus,
    AuditEntry,
    InstagramAccount,
    LoginKind,
    Membership,
    PendingConnection,
    Role,
    Workspace,
)
from accounts.services import AccountError, account_connect
from meta import oauth

logger = logging.getLogger(__name__)

STATE_SALT = "accounts.connecting.state"
# Seconds a started connection stays valid; Meta's codes live 10 minutes (Facebook) to 1 hour.
STATE_MAX_AGE = 15 * 60
PENDING_LIFETIME = timedelta(minutes=15)
SESSION_NONCES = "connect_nonces"
# Nonces kept per session: a person may start a few connections in parallel tabs.
MAX_NONCES = 5
PERMISSION_MISSING = "permission_missing"

# Of the scopes asked for (meta.oauth), those without which the product cannot work for the
# account, and what each is needed for (for the sentence the operator reads).
NEEDED_SCOPES: dict[str, dict[str, str]] = {
    LoginKind.FACEBOOK: {
        "instagram_basic": "read the Instagram account",
        "instagram_manage_messages": "send messages and private replies",
        "instagram_manage_comments": "reply to comments and send private replies",
        # Without it Meta refuses every message from the Page token with code 230.
        "pages_messaging": "message people from the Page (Meta's code 230 without it)",
        "pages_manage_metadata": "receive the account's webhooks",
        "pages_show_list": "list your Pages",
    },
    LoginKind.INSTAGRAM: {
        "instagram_business_basic": "read the Instagram account",
        "instagram_business_manage_messages": "send messages and private replies",
        "instagram_business_manage_comments": "reply to comments and send private replies",
    },
}
LOGIN_NAMES = {LoginKind.FACEBOOK: "Facebook Login", LoginKind.INSTAGRAM: "Instagram Login"}


class ConnectError(Exception):
    """The journey cannot go on; ``message`` is the sentence shown, ``status`` the HTTP status."""

    def __init__(self, message: str, status: int = 400, *, title: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.title = title or "The account was not connected"


@dataclass(frozen=True)
class ConnectState:
    """What ``state`` binds (see the module docstring)."""

    user_id: int
    workspace_id: int
    login: str
    account_id: int | None
    nonce: str


@dataclass(frozen=True)
class Choice:
    """One account the person may pick after Meta's dialog (stored as JSON on the pending row)."""

    ig_user_id: str
    username: str
    ig_alt_id: str = ""
    page_id: str = ""
    page_name: str = ""
    token_encrypted: str = field(default="", repr=False)  # the Page token; "" = the user token
    why_not: str = ""  # empty: it can be picked

    @property
    def usable(self) -> bool:
        return not self.why_not

    @property
    def key(self) -> str:
        """What the form posts back: the Page for Facebook Login (unique per person)."""
        return self.page_id or self.ig_user_id

    def as_json(self) -> dict[str, str]:
        return {
            "ig_user_id": self.ig_user_id,
            "username": self.username,
            "ig_alt_id": self.ig_alt_id,
            "page_id": self.page_id,
            "page_name": self.page_name,
            "token_encrypted": self.token_encrypted,
            "why_not": self.why_not,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Choice:
        return cls(**{name: str(data.get(name) or "") for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Connected:
    """The outcome of picking an account."""

    account: InstagramAccount
    created: bool
    missing_scopes: tuple[str, ...]
    subscribed: bool
    subscribe_error: str = ""


# --- who may connect -----------------------------------------------------------------------------
def _role_in(user, workspace_id: int) -> str:
    membership = Membership.objects.filter(user=user, workspace_id=workspace_id).first()
    return membership.role if membership else ""


def can_connect(user, workspace: Workspace, *, account: InstagramAccount | None = None) -> bool:
    """May ``user`` connect accounts in ``workspace`` (or reconnect ``account`` there)?

    Agency admins (superusers) connect any account; marketers of the workspace may reconnect
    an account that is already in it; support people and everyone else may not (a membership
    never makes an agency admin: docs/access.md).
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if account is not None and account.workspace_id != workspace.pk:
        return False
    if user.is_superuser:
        return True
    role = _role_in(user, workspace.pk)
    return role == Role.MARKETER and account is not None and account.pk is not None


def connectable_workspaces(user) -> list[Workspace]:
    """Workspaces where ``user`` may connect a new account (the start page's list)."""
    if not user.is_authenticated or not user.is_active:
        return []
    if not user.is_superuser:
        return []
    return list(Workspace.objects.order_by("name"))


def instagram_login_enabled() -> bool:
    return bool(settings.INSTAGRAM_APP_ID and settings.INSTAGRAM_APP_SECRET)


def reconnect_url(account: InstagramAccount) -> str:
    """The connect URL that reconnects ``account`` with its own login kind."""
    query = {"login": account.login_kind, "workspace": account.workspace_id, "account": account.pk}
    return f"{reverse('connect_start')}?{urlencode(query)}"


def accounts_needing_reconnect(user, limit: int = 20) -> list[InstagramAccount]:
    """Accounts of ``user``'s workspaces (all for superusers) that need reconnecting.

    Each carries ``can_reconnect`` and ``reconnect_url`` for the admin banner.
    """
    if not user.is_authenticated or not user.is_active:
        return []
    accounts = InstagramAccount.objects.filter(status=AccountStatus.NEEDS_RECONNECT).select_related(
        "workspace"
    )
    roles: dict[int, str] = {}
    if not user.is_superuser:
        roles = dict(Membership.objects.filter(user=user).values_list("workspace_id", "role"))
        accounts = accounts.filter(workspace_id__in=roles)
    found = list(accounts.order_by("workspace__name", "username")[:limit])
    for account in found:
        account.can_reconnect = user.is_superuser or roles.get(account.workspace_id) == (
            Role.MARKETER
        )
        account.reconnect_url = reconnect_url(account)
    return found


# --- 1. start ------------------------------------------------------------------------------------
def connect_start(
    *,
    user,
    session,
    workspace_id: str,
    login: str,
    account_id: str = "",
    redirect_uri: str,
) -> str:
    """The URL of Meta's dialog for this person; remembers the state's nonce in ``session``."""
    if login not in LoginKind.values:
        raise ConnectError("Choose how to connect: login=facebook or login=instagram.")
    if login == LoginKind.INSTAGRAM and not instagram_login_enabled():
        raise ConnectError(
            "Instagram Login is not set up on this installation: set INSTAGRAM_APP_ID and "
            "INSTAGRAM_APP_SECRET (the Instagram app's id and secret from the Meta app "
            "dashboard), or connect with Facebook Login.",
            title="Instagram Login is not available",
        )
    workspace = _workspace(workspace_id)
    account = None
    if account_id:
        account = _account(account_id)
        if account.workspace_id != workspace.pk:
            raise ConnectError(f"{account} is not an account of workspace {workspace}.")
    if not can_connect(user, workspace, account=account):
        what = f"reconnect {account}" if account else f"connect accounts to {workspace}"
        raise ConnectError(
            f"You may not {what}: agency admins connect accounts, and marketers may reconnect "
            "an account of their workspace.",
            status=403,
        )
    nonce = secrets.token_urlsafe(16)
    nonces = [*session.get(SESSION_NONCES, []), nonce][-MAX_NONCES:]
    session[SESSION_NONCES] = nonces
    bound = {"u": user.pk, "w": workspace.pk, "l": login, "a": account.pk if account else None}
    state = signing.dumps({**bound, "n": nonce}, salt=STATE_SALT)
    if login == LoginKind.FACEBOOK:
        return oauth.facebook_dialog_url(
            settings.META_OAUTH_URL,
            settings.META_APP_ID,
            redirect_uri,
            oauth.FACEBOOK_LOGIN_SCOPES,
            state,
        )
    return oauth.instagram_authorize_url(
        settings.INSTAGRAM_OAUTH_URL,
        settings.INSTAGRAM_APP_ID,
        redirect_uri,
        oauth.INSTAGRAM_LOGIN_SCOPES,
        state,
    )


def _workspace(workspace_id: Any) -> Workspace:
    if not str(workspace_id).isdigit():
        raise ConnectError("Choose the workspace to connect the account to (workspace=<id>).")
    workspace = Workspace.objects.filter(pk=int(workspace_id)).first()
    if workspace is None:
        raise ConnectError(f"There is no workspace {workspace_id}.", status=404)
    return workspace


def _account(account_id: Any) -> InstagramAccount:
    if not str(account_id).isdigit():
        raise ConnectError("account=<id> must be the id of the account to reconnect.")
    account = InstagramAccount.objects.filter(pk=int(account_id)).first()
    if account is None:
        raise ConnectError(f"There is no account {account_id} to reconnect.", status=404)
    return account


# --- 2. Meta's redirect back ---------------------------------------------------------------------
def read_state(*, raw: str, user, session) -> ConnectState:
    """Verify ``state`` and use up its nonce; every mismatch is a ConnectError saying why."""
    if not raw:
        raise ConnectError("Meta's answer has no state: start again from the admin.")
    try:
        data = signing.loads(raw, salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.SignatureExpired:
        raise ConnectError(
            "This connection was started more than 15 minutes ago and has expired. Nothing was "
            "stored: start again from the admin."
        ) from None
    except signing.BadSignature:
        raise ConnectError(
            "The state Meta sent back was not signed by this site (the link was altered or "
            "forged). Nothing was stored: start again from the admin."
        ) from None
    try:
        state = ConnectState(
            user_id=int(data["u"]),
            workspace_id=int(data["w"]),
            login=str(data["l"]),
            account_id=int(data["a"]) if data.get("a") is not None else None,
            nonce=str(data["n"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ConnectError("The state Meta sent back is incomplete: start again.") from None
    if state.user_id != user.pk:
        raise ConnectError(
            "This connection was started by another person. Nothing was stored: sign in as "
            "yourself and start again."
        )
    nonces = list(session.get(SESSION_NONCES, []))
    if state.nonce not in nonces:
        raise ConnectError(
            "This connection was already completed, or was started in another browser. Nothing "
            "was stored: start again from the admin."
        )
    nonces.remove(state.nonce)
    session[SESSION_NONCES] = nonces
    return state


def connect_complete(*, user, session, params: Any, redirect_uri: str) -> PendingConnection:
    """Meta's redirect (``request.GET``) -> a pending connection listing the accounts to pick.

    Raises ConnectError for a bad state or Meta's refusal; nothing is stored then. A cancelled
    dialog is the views' business (``oauth.read_redirect(...).error``) and never reaches here.
    """
    redirect = oauth.read_redirect(params)
    state = read_state(raw=redirect.state, user=user, session=session)
    if not redirect.code:
        raise ConnectError("Meta's answer has no authorization code: start again.")
    workspace = _workspace(state.workspace_id)
    account = _account(state.account_id) if state.account_id is not None else None
    if not can_connect(user, workspace, account=account):
        raise ConnectError("You may no longer connect accounts in this workspace.", status=403)
    try:
        if state.login == LoginKind.FACEBOOK:
            gathered = _facebook(redirect.code, redirect_uri)
        else:
            gathered = _instagram(redirect.code, redirect_uri)
    except oauth.OAuthError as exc:
        logger.warning("Connecting an account for %s failed: %s", user, exc)
        raise ConnectError(
            f"Meta refused to finish the sign-in: {exc.message}. Nothing was stored: start "
            "again (an authorization code works only once and only for a few minutes).",
            status=502 if exc.retryable else 400,
        ) from None
    token, expires_at, meta_user_id, scopes, choices = gathered
    choices = [_annotate(c, user=user, workspace=workspace, reconnect=account) for c in choices]
    now = timezone.now()
    PendingConnection.objects.filter(expires_at__lt=now).delete()  # forgotten ones
    return PendingConnection.objects.create(
        key=secrets.token_urlsafe(32),
        user=user,
        workspace=workspace,
        login_kind=state.login,
        user_token_encrypted=crypto.encrypt(token),
        token_expires_at=expires_at,
        meta_user_id=meta_user_id,
        scopes=list(scopes),
        choices=[c.as_json() for c in choices],
        reconnect_account=account,
        expires_at=now + PENDING_LIFETIME,
    )


def _facebook(
    code: str, redirect_uri: str
) -> tuple[str, datetime | None, str, tuple[str, ...], list[Choice]]:
    graph, app_id, secret = settings.META_GRAPH_URL, settings.META_APP_ID, settings.META_APP_SECRET
    timeout = settings.META_HTTP_TIMEOUT
    short = oauth.facebook_exchange_code(graph, app_id, secret, redirect_uri, code, timeout=timeout)
    user_token = oauth.facebook_long_lived(
        graph, app_id, secret, short.access_token, timeout=timeout
    )
    info = oauth.debug_token(graph, app_id, secret, user_token.access_token, timeout=timeout)
    pages = oauth.facebook_pages(graph, user_token.access_token, timeout=timeout)
    choices = []
    for page in pages:
        why = ""
        if not page.has_instagram:
            why = "No Instagram professional account is linked to this Page"
            if "instagram_basic" not in info.scopes:
                why += " (or access to Instagram accounts, instagram_basic, was not granted)"
            why += "."
        elif page.missing_tasks:
            why = (
                f"You lack the Page task(s) {', '.join(page.missing_tasks)} on this Page: ask a "
                "Page admin for full control, then connect again."
            )
        choices.append(
            Choice(
                ig_user_id=page.ig_user_id,
                username=page.ig_username,
                page_id=page.page_id,
                page_name=page.name,
                token_encrypted=crypto.encrypt(page.page_token) if not why else "",
                why_not=why,
            )
        )
    # A long-lived user token's expiry; the Page tokens derived from it do not expire.
    return user_token.access_token, user_token.expires_at, info.user_id, info.scopes, choices


def _instagram(
    code: str, redirect_uri: str
) -> tuple[str, datetime | None, str, tuple[str, ...], list[Choice]]:
    app_id, secret = settings.INSTAGRAM_APP_ID, settings.INSTAGRAM_APP_SECRET
    timeout = settings.META_HTTP_TIMEOUT
    short = oauth.instagram_exchange_code(
        settings.INSTAGRAM_API_URL, app_id, secret, redirect_uri, code, timeout=timeout
    )
    token = oauth.instagram_long_lived(
        settings.META_INSTAGRAM_GRAPH_URL, secret, short.access_token, timeout=timeout
    )
    app_scoped_id, ig_user_id, username = oauth.instagram_me(
        settings.META_INSTAGRAM_GRAPH_URL, token.access_token, timeout=timeout
    )
    # Webhooks name the professional id (/me's user_id); the app-scoped one is kept as the
    # alternate id, and is who Meta's deauthorize callback names.
    choice = Choice(
        ig_user_id=ig_user_id,
        username=username,
        ig_alt_id=app_scoped_id if app_scoped_id != ig_user_id else "",
    )
    meta_user_id = short.user_id or app_scoped_id
    return token.access_token, token.expires_at, meta_user_id, short.permissions, [choice]


def _connected_elsewhere(choice: Choice, workspace: Workspace) -> InstagramAccount | None:
    existing = _existing(choice)
    return existing if existing is not None and existing.workspace_id != workspace.pk else None


def _existing(choice: Choice) -> InstagramAccount | None:
    ids = {choice.ig_user_id, choice.ig_alt_id} - {""}
    return (
        InstagramAccount.objects.select_related("workspace")
        .filter(Q(ig_user_id__in=ids) | Q(ig_alt_id__in=ids))
        .order_by("pk")
        .first()
    )


def _elsewhere_sentence(choice: Choice, other: InstagramAccount, user) -> str:
    where = f"workspace {other.workspace}" if user.is_superuser else "another workspace"
    return (
        f"@{choice.username or other.username} is already connected to {where}; disconnect it "
        "there first."
    )


def _annotate(
    choice: Choice, *, user, workspace: Workspace, reconnect: InstagramAccount | None
) -> Choice:
    """Grey out what cannot be picked, with why, before the operator sees the list."""
    if not choice.usable:
        return choice
    why = ""
    if reconnect is not None and not _same_account(reconnect, choice):
        why = f"You are reconnecting {reconnect}; this is a different account."
    elif (other := _connected_elsewhere(choice, workspace)) is not None:
        why = _elsewhere_sentence(choice, other, user)
    if not why:
        return choice
    return Choice(**{**choice.as_json(), "token_encrypted": "", "why_not": why})


def _same_account(account: InstagramAccount, choice: Choice) -> bool:
    return any(account.owns_id(i) for i in (choice.ig_user_id, choice.ig_alt_id) if i)


# --- 3. the operator's pick ----------------------------------------------------------------------
def pending_connections_sweep(*, now=None) -> int:
    """Beat: delete pending connections past their 15 minutes (they hold encrypted tokens)."""
    deleted, _ = PendingConnection.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted


def pending_for(*, key: str, user) -> PendingConnection:
    """The person's own pending connection, if still valid."""
    pending = (
        PendingConnection.objects.select_related("workspace", "reconnect_account")
        .filter(key=key, user=user)
        .first()
    )
    if pending is None:
        raise ConnectError(
            "This choice was already made, or it belongs to someone else. Start again from the "
            "admin if the account is not connected.",
            status=410,
        )
    if pending.expires_at <= timezone.now():
        pending.delete()
        raise ConnectError(
            "You took more than 15 minutes to pick an account, so what Meta sent was discarded. "
            "Start again.",
            status=410,
        )
    return pending


def pending_choices(pending: PendingConnection) -> list[Choice]:
    return [Choice.from_json(item) for item in pending.choices if isinstance(item, dict)]


def missing_scopes(login_kind: str, granted: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Needed scopes (``NEEDED_SCOPES``) the person did not grant."""
    return tuple(s for s in NEEDED_SCOPES.get(login_kind, {}) if s not in granted)


def missing_sentence(username: str, login_kind: str, missing: tuple[str, ...]) -> str:
    """What the operator reads (admin banner, held deliveries) about declined permissions."""
    needs = NEEDED_SCOPES.get(login_kind, {})
    what = "; ".join(f"{s} (to {needs.get(s, 'work')})" for s in missing)
    return (
        f"Reconnect @{username}: Meta did not grant {what}. Connect again and keep every "
        "permission ticked."
    )


def connect_choose(*, pending: PendingConnection, choice_key: str, user) -> Connected:
    """Connect the picked account, then subscribe it to webhooks (see the module docstring)."""
    with transaction.atomic():
        locked = PendingConnection.objects.select_for_update().filter(pk=pending.pk).first()
        if locked is None:  # a second click of the same button
            raise ConnectError("This choice was already made.", status=410)
        choice = next((c for c in pending_choices(locked) if c.key == choice_key), None)
        if choice is None:
            raise ConnectError("Pick one of the accounts listed.")
        workspace, reconnect = pending.workspace, pending.reconnect_account
        if not can_connect(user, workspace, account=reconnect):
            raise ConnectError("You may not connect accounts in this workspace.", status=403)
        # Checked again here, not only when listing: the list may be stale or the form forged.
        if reconnect is not None and not _same_account(reconnect, choice):
            raise ConnectError(
                f"You picked @{choice.username}, but you are reconnecting {reconnect}. Nothing "
                f"was changed: sign in to Meta as someone who manages {reconnect} and start "
                "again."
            )
        other = _connected_elsewhere(choice, workspace)
        if other is not None:
            raise ConnectError(_elsewhere_sentence(choice, other, user) + " Nothing was changed.")
        if not choice.usable:
            raise ConnectError(choice.why_not)
        account, created = _connect(locked, choice, user)
        locked.delete()
    # After the commit: a network call, and a failure must not undo the connection.
    ok, error = account_subscribe(account=account, actor=user)
    return Connected(
        account=account,
        created=created,
        missing_scopes=missing_scopes(account.login_kind, account.scopes),
        subscribed=ok,
        subscribe_error=error,
    )


def _connect(pending: PendingConnection, choice: Choice, user) -> tuple[InstagramAccount, bool]:
    existing = _existing(choice)
    before = snapshot(existing) if existing is not None else None
    ig_user_id, alt_id = choice.ig_user_id, choice.ig_alt_id
    if existing is not None and existing.ig_user_id != ig_user_id:
        # Known under the other id: keep its row (history, triggers) and both ids.
        ig_user_id, alt_id = existing.ig_user_id, choice.ig_user_id
    username = choice.username or (existing.username if existing else "") or f"ig_{ig_user_id}"
    token = crypto.decrypt(choice.token_encrypted or pending.user_token_encrypted)
    missing = missing_scopes(pending.login_kind, pending.scopes)
    is_facebook = pending.login_kind == LoginKind.FACEBOOK
    try:
        account, created = account_connect(
            workspace_name=pending.workspace.name,
            ig_user_id=ig_user_id,
            username=username,
            access_token=token,
            page_id=choice.page_id if is_facebook else "",
            login_kind=pending.login_kind,
            scopes=list(pending.scopes),
            ig_alt_id=alt_id,
            # A Page token from a long-lived user token does not expire (meta-api.md 1).
            token_expires_at=None if is_facebook else pending.token_expires_at,
            token_refreshed_at=timezone.now(),
            meta_user_id=pending.meta_user_id,
            connected_by=user,
            needs_reconnect=(
                (PERMISSION_MISSING, missing_sentence(username, pending.login_kind, missing))
                if missing
                else None
            ),
        )
    except AccountError as exc:
        raise ConnectError(str(exc)) from None
    note = f"{LOGIN_NAMES.get(pending.login_kind, pending.login_kind)}"
    if choice.page_name:
        note += f" through the Page {choice.page_name}"
    if missing:
        note += f"; not granted: {', '.join(missing)}"
    audit_record(
        action="connected" if created else "reconnected",
        obj=account,
        actor=user,
        changes=diff(before, snapshot(account)),
        note=note,
    )
    return account, created


# --- 4. webhooks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriptionCheck:
    """What Meta lists for the account after subscribing (``GET .../subscribed_apps``)."""

    fields: tuple[str, ...] | None  # None: our app is not installed on the account
    problem: str  # "" when the account will receive the product's webhooks


def _subscription_target(account: InstagramAccount) -> tuple[str, str, tuple[str, ...]]:
    """(Graph base, node, fields to ask for): a Page field for Facebook Login's Page, the
    Instagram fields for Instagram Login (meta-api.md section 2, "Subscribing")."""
    if account.login_kind == LoginKind.FACEBOOK:
        return settings.META_GRAPH_URL, account.page_id, oauth.PAGE_WEBHOOK_FIELDS
    return settings.META_INSTAGRAM_GRAPH_URL, "me", oauth.WEBHOOK_FIELDS


def subscription_problem(account: InstagramAccount, fields: tuple[str, ...] | None) -> str:
    """Why the listed subscription would not deliver the product's webhooks ("" = it will)."""
    if fields is None:
        if account.login_kind == LoginKind.FACEBOOK:
            return (
                f"Meta does not list this app on the Page {account.page_id}: webhooks will not "
                "arrive. Subscribe again (it needs pages_manage_metadata)."
            )
        return (
            f"Meta does not list this app on {account}: webhooks will not arrive. Subscribe again."
        )
    if account.login_kind == LoginKind.FACEBOOK:
        if not fields:
            return "The app is installed on the Page with no field: subscribe again."
        return ""
    missing = [name for name in oauth.WEBHOOK_FIELDS if name not in fields]
    if missing:
        return f"Not subscribed to {', '.join(missing)}: subscribe again."
    return ""


def account_subscription_check(*, account: InstagramAccount) -> SubscriptionCheck:
    """Read the account's subscription back from Meta and store it on the account.

    Raises ``oauth.OAuthError`` (or ``crypto.TokenDecryptionError``) when it cannot be read.
    """
    base, node, _ = _subscription_target(account)
    app_id = settings.META_APP_ID if account.login_kind == LoginKind.FACEBOOK else ""
    fields = oauth.subscribed_fields(
        base, node, account.access_token, app_id=app_id, timeout=settings.META_HTTP_TIMEOUT
    )
    check = SubscriptionCheck(fields=fields, problem=subscription_problem(account, fields))
    account.webhook_fields = list(fields or ())
    account.webhook_checked_at = timezone.now()
    account.webhook_problem = check.problem
    InstagramAccount.objects.filter(pk=account.pk).update(
        webhook_fields=account.webhook_fields,
        webhook_checked_at=account.webhook_checked_at,
        webhook_problem=account.webhook_problem,
    )
    return check


def account_subscribe(
    *, account: InstagramAccount, actor=None, actor_label: str = ""
) -> tuple[bool, str]:
    """Subscribe the account to the app's webhooks, then read the subscription back (Meta's
    answer to the POST is not trusted alone); (ok, why not). Recorded either way."""
    base, node, fields = _subscription_target(account)
    try:
        confirmed = oauth.subscribe_webhooks(
            base, node, account.access_token, fields, timeout=settings.META_HTTP_TIMEOUT
        )
        check = account_subscription_check(account=account)
        ok = confirmed and not check.problem
        error = check.problem or (
            "" if confirmed else "Meta did not confirm the subscription (no success in its answer)."
        )
    except oauth.OAuthError as exc:
        ok, error = False, f"Meta refused the webhook subscription: {exc}"
        InstagramAccount.objects.filter(pk=account.pk).update(
            webhook_checked_at=timezone.now(), webhook_problem=error
        )
    except crypto.TokenDecryptionError as exc:
        ok, error = False, str(exc)
    if ok:
        listed = ", ".join(account.webhook_fields)
        audit_record(
            action="subscribed",
            obj=account,
            actor=actor,
            actor_label=actor_label,
            note=f"Fields: {listed}",
        )
    else:
        logger.warning("Webhook subscription of %s failed: %s", account, error)
        audit_record(
            action="subscribe_failed",
            obj=account,
            actor=actor,
            actor_label=actor_label,
            note=error,
        )
    return ok, error


def last_subscription(account: InstagramAccount) -> tuple[str, str, datetime | None]:
    """The latest recorded subscription attempt: (action, note, when); ("", "", None) if none."""
    entry = (
        AuditEntry.objects.filter(
            object_type=InstagramAccount._meta.label_lower,
            object_id=str(account.pk),
            action__in=["subscribed", "subscribe_failed"],
        )
        .order_by("-at", "-pk")
        .first()
    )
    return (entry.action, entry.note, entry.at) if entry else ("", "", None)

"""Keeping connected accounts' tokens alive and their grants checked (meta-api.md section 7).

- **Refresh** (beat, every 6 h): Instagram-Login long-lived tokens live 60 days and are
  refreshed with ``meta.oauth.instagram_refresh`` once at least 24 h old, when within
  ``TOKEN_REFRESH_DAYS_BEFORE_EXPIRY`` days of expiry or older than 30 days. Facebook-Login
  accounts send with a Page token, which does not expire while the person's grant holds:
  there is nothing to refresh (a long-lived user token cannot be refreshed by API at all).
- **Check** (beat, daily; ``manage.py check_tokens`` now): Facebook tokens through
  ``debug_token`` (validity, granted scopes, expiry, data-access expiry); Instagram tokens
  through ``/me`` (validity) and the permissions recorded at connect [unsure: Meta offers no
  ``debug_token`` or ``/me/permissions`` for them on graph.instagram.com, so a permission
  removed later is only learned from the next send's error, which holds the sends].

What Meta says about the token itself (code 190/102/104, ``is_valid`` false, a needed scope
missing) marks the account "needs reconnect" and its sends are held by the checklist. A
failure of the check itself (network, 5xx, our app credentials) marks nothing: the next run
tries again. An account that needs reconnecting is never reactivated by a check that passes:
Meta's view of the token says nothing about the Instagram app's "Allow access to messages"
setting or the Page tasks that made the send fail, and held sends should go out only once a
person has looked (reconnecting releases them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts import crypto
from accounts import services as account_services
from accounts.audit import audit_record, secret_changed
from accounts.models import AccountStatus, InstagramAccount, LoginKind
from meta import oauth
from meta.oauth import OAuthError

logger = logging.getLogger(__name__)

ACTOR_BEAT = "beat"
# Audit actions this module writes. A disconnection's audit entry is what replay reads to
# know when the account stopped working (webhooks/replay.py).
ACTION_REFRESHED = "token_refreshed"
ACTION_NEEDS_RECONNECT = "needs_reconnect"
ACTION_SCOPES_CHANGED = "scopes_changed"
ACTION_DEAUTHORIZED = "deauthorized"  # written by accounts/callbacks.py
DISCONNECT_ACTIONS = (ACTION_NEEDS_RECONNECT, ACTION_DEAUTHORIZED)

TOKEN_INVALID, PERMISSION_MISSING = "token_invalid", "permission_missing"
# Meta refuses to refresh a token younger than 24 h [doc].
MIN_REFRESH_AGE = timedelta(hours=24)
# Refreshed at this age whatever the recorded expiry says (it may be missing or stale).
REFRESH_MAX_AGE = timedelta(days=30)
# Warnings written to an active account's status_reason start with this, so a later check
# clears only its own sentence, never one an operator wrote.
EXPIRY_WARNING_PREFIX = "Expires soon:"

# What each outcome is called in the command's output and the tasks' results.
REFRESHED, NOT_DUE, OK = "refreshed", "not due", "ok"
NEEDS_RECONNECT, STILL_NEEDS_RECONNECT = "needs reconnect", "still needs reconnect"
RETRY, SKIPPED = "retry later", "skipped"


@dataclass(frozen=True)
class TokenOutcome:
    """What a refresh or check did to one account, as one line for people."""

    account_id: int
    username: str
    result: str
    message: str = ""
    warning: str = ""

    def line(self) -> str:
        text = f"@{self.username}: {self.result}"
        if self.message:
            text += f" - {self.message}"
        if self.warning:
            text += f" [{self.warning}]"
        return text


def _outcome(account: InstagramAccount, result: str, message: str = "", warning: str = ""):
    return TokenOutcome(account.pk, account.username, result, message, warning)


# --- marking -----------------------------------------------------------------------------------
def _status_now(account_id: int) -> str | None:
    return InstagramAccount.objects.filter(pk=account_id).values_list("status", flat=True).first()


def _disconnect(
    account: InstagramAccount,
    *,
    reason: str,
    detail: str,
    actor_label: str,
    sentence: str = "",
) -> bool:
    """Mark the account "needs reconnect" (sends held); True when this call disconnected it.

    ``sentence`` replaces the "Meta says ..." wording for causes that are ours (a token that
    cannot be decrypted). The audit entry dates the disconnection for replay.
    """
    before = _status_now(account.pk)
    if before != AccountStatus.ACTIVE:
        return False
    if sentence:
        updated = InstagramAccount.objects.filter(
            pk=account.pk, status=AccountStatus.ACTIVE
        ).update(
            status=AccountStatus.NEEDS_RECONNECT,
            status_reason=sentence,
            reconnect_reason=reason,
            status_changed_at=timezone.now(),
        )
        if not updated:
            return False
        logger.warning("%s", sentence)
    else:
        account_services.account_mark_needs_reconnect(account=account, reason=reason, detail=detail)
    account.refresh_from_db(fields=["status", "status_reason", "reconnect_reason"])
    audit_record(
        action=ACTION_NEEDS_RECONNECT,
        obj=account,
        actor_label=actor_label,
        changes={
            "status": [AccountStatus.ACTIVE.value, account.status],
            "reconnect_reason": ["", account.reconnect_reason],
        },
        note=account.status_reason,
    )
    return True


def _undecryptable_sentence(account: InstagramAccount) -> str:
    return (
        f"Reconnect @{account.username}, or fix the key: its stored token cannot be decrypted "
        "with TOKEN_ENCRYPTION_KEY. Put the old key back after the new one "
        "(TOKEN_ENCRYPTION_KEY=new,old) and run `manage.py rotate_token_key`."
    )


def _readable_token(
    account: InstagramAccount, actor_label: str
) -> tuple[str | None, TokenOutcome | None]:
    """The plain token, or the outcome for an account whose token is unusable."""
    try:
        token = account.access_token
    except crypto.TokenDecryptionError:
        sentence = _undecryptable_sentence(account)
        if _disconnect(
            account, reason=TOKEN_INVALID, detail="", actor_label=actor_label, sentence=sentence
        ):
            return None, _outcome(account, NEEDS_RECONNECT, sentence)
        return None, _outcome(account, STILL_NEEDS_RECONNECT, sentence)
    if not token:
        detail = "no access token is stored (reconnect it)"
        if _disconnect(account, reason=TOKEN_INVALID, detail=detail, actor_label=actor_label):
            return None, _outcome(account, NEEDS_RECONNECT, detail)
        return None, _outcome(account, STILL_NEEDS_RECONNECT, detail)
    return token, None


def _set_warning(account: InstagramAccount, warning: str) -> None:
    """Show an expiry warning on an active account without touching its status (sends go on).

    Only an empty reason or an earlier warning is replaced: a note an operator wrote stays
    (the warning is still logged and printed by ``check_tokens``).
    """
    accounts = InstagramAccount.objects.filter(pk=account.pk, status=AccountStatus.ACTIVE)
    own = Q(status_reason="") | Q(status_reason__startswith=EXPIRY_WARNING_PREFIX)
    if warning:
        logger.warning("%s", warning)
        accounts.filter(own).update(status_reason=warning)
    else:
        accounts.filter(status_reason__startswith=EXPIRY_WARNING_PREFIX).update(status_reason="")


# --- refresh -----------------------------------------------------------------------------------
def token_issued_at(account: InstagramAccount) -> datetime:
    """When the current token was issued or refreshed (the account's creation when unknown)."""
    return account.token_refreshed_at or account.created_at


def token_refresh_due(account: InstagramAccount, now: datetime) -> bool:
    """An Instagram-Login token at least 24 h old, near its expiry or 30 days old."""
    if account.login_kind != LoginKind.INSTAGRAM:
        return False
    age = now - token_issued_at(account)
    if age < MIN_REFRESH_AGE:
        return False
    if age >= REFRESH_MAX_AGE:
        return True
    if account.token_expires_at is None:
        return False
    margin = timedelta(days=settings.TOKEN_REFRESH_DAYS_BEFORE_EXPIRY)
    return account.token_expires_at - now <= margin


def accounts_due_for_refresh(*, now: datetime | None = None) -> list[int]:
    """Active Instagram-Login accounts whose token should be refreshed now."""
    now = now or timezone.now()
    candidates = (
        InstagramAccount.objects.filter(login_kind=LoginKind.INSTAGRAM, status=AccountStatus.ACTIVE)
        .exclude(access_token_encrypted="")
        .only("pk", "login_kind", "token_refreshed_at", "created_at", "token_expires_at")
        .order_by("pk")
    )
    return [account.pk for account in candidates if token_refresh_due(account, now)]


def account_token_refresh(
    *, account_id: int, now: datetime | None = None, actor_label: str = ACTOR_BEAT
) -> TokenOutcome:
    """Refresh one Instagram-Login token if it is due. Safe to run twice (the second finds it
    fresh); a token replaced meanwhile (a reconnect) is never overwritten."""
    now = now or timezone.now()
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return TokenOutcome(account_id, "?", SKIPPED, "the account no longer exists")
    if account.login_kind != LoginKind.INSTAGRAM:
        return _outcome(
            account, SKIPPED, "a Facebook-Login Page token does not expire while the grant holds"
        )
    if account.status != AccountStatus.ACTIVE:
        return _outcome(account, SKIPPED, f"the account is {account.get_status_display().lower()}")
    if not token_refresh_due(account, now):
        return _outcome(account, NOT_DUE)
    encrypted = account.access_token_encrypted
    token, problem = _readable_token(account, actor_label)
    if problem is not None:
        return problem
    try:
        fresh = oauth.instagram_refresh(
            settings.META_INSTAGRAM_GRAPH_URL, token, timeout=settings.META_HTTP_TIMEOUT
        )
    except OAuthError as exc:
        if exc.token_invalid:
            # Expired or revoked: Meta cannot refresh it; only a new login helps.
            _disconnect(account, reason=TOKEN_INVALID, detail=exc.message, actor_label=actor_label)
            return _outcome(account, NEEDS_RECONNECT, str(exc))
        logger.warning(
            "Refreshing @%s's token failed (%s); the next run tries again", account.username, exc
        )
        return _outcome(account, RETRY, str(exc))
    expires_at = fresh.expires_at
    # Conditional on the stored token being the one refreshed: a reconnect meanwhile wins.
    updated = InstagramAccount.objects.filter(
        pk=account.pk, access_token_encrypted=encrypted
    ).update(
        access_token_encrypted=crypto.encrypt(fresh.access_token),
        token_expires_at=expires_at,
        token_refreshed_at=now,
    )
    if not updated:
        return _outcome(account, SKIPPED, "the token was replaced meanwhile (a reconnect)")
    _set_warning(account, "")
    before = account.token_expires_at
    audit_record(
        action=ACTION_REFRESHED,
        obj=account,
        actor_label=actor_label,
        changes={
            "access_token_encrypted": secret_changed(),
            "token_expires_at": [
                before.isoformat() if before else None,
                expires_at.isoformat() if expires_at else None,
            ],
        },
    )
    until = f"valid until {expires_at:%Y-%m-%d}" if expires_at else "Meta gave no expiry"
    logger.info("Refreshed @%s's token, %s", account.username, until)
    return _outcome(account, REFRESHED, until)


# --- check -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Finding:
    """What Meta told us about one token."""

    problem_reason: str = ""
    problem_detail: str = ""
    scopes: tuple[str, ...] | None = None  # None: not read this time
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    read_expiry: bool = False
    meta_user_id: str = ""
    note: str = ""


_SENDS = {"public_reply": "public replies", "private_reply": "private replies", "message": "DMs"}


def _needed_scopes(login_kind: str) -> dict[str, list[str]]:
    """{scope: [what needs it]} from the pre-send checklist's table, so both agree."""
    # Read lazily: the checklist (messaging) owns the table; accounts must not import it early.
    from messaging.checks import REQUIRED_SCOPES

    needed: dict[str, list[str]] = {}
    for kind, scopes in REQUIRED_SCOPES.get(login_kind, {}).items():
        for scope in scopes:
            needed.setdefault(scope, []).append(_SENDS.get(str(kind), str(kind)))
    return needed


def _missing_detail(login_kind: str, scopes: tuple[str, ...]) -> str:
    needed = _needed_scopes(login_kind)
    missing = [scope for scope in sorted(needed) if scope not in scopes]
    if not missing:
        return ""
    parts = [f"{scope} (needed for {' and '.join(needed[scope])})" for scope in missing]
    return "the token no longer grants " + ", ".join(parts)


def facebook_token_info(token: str) -> oauth.TokenInfo:
    """``debug_token`` for a Facebook-Login token, asked with this app's credentials."""
    return oauth.debug_token(
        settings.META_GRAPH_URL,
        settings.META_APP_ID,
        settings.META_APP_SECRET,
        token,
        timeout=settings.META_HTTP_TIMEOUT,
    )


def _check_facebook(account: InstagramAccount, token: str) -> _Finding:
    info = facebook_token_info(token)
    if not info.is_valid:
        detail = info.error_message or "debug_token says the token is not valid"
        if info.error_code:
            detail += f" (code {info.error_code}" + (
                f"/{info.error_subcode})" if info.error_subcode else ")"
            )
        return _Finding(TOKEN_INVALID, detail, meta_user_id=info.user_id)
    scopes = info.scopes or None  # a valid token always has some; none means Meta left it out
    missing = _missing_detail(LoginKind.FACEBOOK, info.scopes) if scopes else ""
    return _Finding(
        PERMISSION_MISSING if missing else "",
        missing,
        scopes=scopes,
        expires_at=info.expires_at,
        data_access_expires_at=info.data_access_expires_at,
        read_expiry=True,
        meta_user_id=info.user_id,
    )


def _check_instagram(account: InstagramAccount, token: str) -> _Finding:
    try:
        app_scoped_id, ig_user_id, username = oauth.instagram_me(
            settings.META_INSTAGRAM_GRAPH_URL, token, timeout=settings.META_HTTP_TIMEOUT
        )
    except OAuthError as exc:
        if exc.token_invalid:
            return _Finding(TOKEN_INVALID, exc.message)
        raise
    note = ""
    if account.ig_user_id not in (ig_user_id, app_scoped_id):
        note = f"the token belongs to @{username or ig_user_id}, not to this account"
    # Instagram offers no permission read-back [unsure]: the scopes granted at connect stand.
    recorded = tuple(account.scopes or ())
    missing = _missing_detail(LoginKind.INSTAGRAM, recorded) if recorded else ""
    return _Finding(PERMISSION_MISSING if missing else "", missing, note=note)


def _expiry_warning(account: InstagramAccount, now: datetime, finding: _Finding) -> str:
    """A sentence when the account will stop working soon and nothing here can prevent it."""
    name = f"@{account.username}"
    if account.login_kind == LoginKind.FACEBOOK:
        horizon = now + timedelta(days=settings.TOKEN_EXPIRY_WARNING_DAYS)
        expires = finding.expires_at if finding.read_expiry else account.token_expires_at
        ends = [
            (when, what)
            for when, what in (
                (expires, "its token expires"),
                (finding.data_access_expires_at, "Meta's data access for its login ends"),
            )
            if when is not None and when <= horizon
        ]
        if not ends:
            return ""
        when, what = min(ends)
        return (
            f"{EXPIRY_WARNING_PREFIX} {what} on {when:%Y-%m-%d %H:%M} UTC; a Facebook-Login "
            f"token cannot be refreshed, so someone must reconnect {name} (log in again) "
            "before then. Sends work until then."
        )
    # Instagram tokens are refreshed well before this: reaching it means refreshes fail.
    days = min(settings.TOKEN_EXPIRY_WARNING_DAYS, settings.TOKEN_REFRESH_DAYS_BEFORE_EXPIRY // 2)
    expires = account.token_expires_at
    if expires is None or expires > now + timedelta(days=days):
        return ""
    return (
        f"{EXPIRY_WARNING_PREFIX} its token expires on {expires:%Y-%m-%d %H:%M} UTC and could "
        f"not be refreshed; reconnect {name} before then if the next refresh fails too."
    )


def accounts_to_check() -> list[int]:
    """Every account with a status the check has something to say about (not disabled)."""
    return list(
        InstagramAccount.objects.exclude(status=AccountStatus.DISABLED)
        .order_by("username", "pk")
        .values_list("pk", flat=True)
    )


def _record_finding(account: InstagramAccount, finding: _Finding, now: datetime, actor: str):
    fields: dict = {"permissions_checked_at": now}
    if finding.scopes is not None and list(finding.scopes) != list(account.scopes or []):
        fields["scopes"] = list(finding.scopes)
        if account.scopes:
            audit_record(
                action=ACTION_SCOPES_CHANGED,
                obj=account,
                actor_label=actor,
                changes={"scopes": [list(account.scopes), list(finding.scopes)]},
            )
    if finding.read_expiry:
        fields["token_expires_at"] = finding.expires_at
    if finding.meta_user_id and not account.meta_user_id:
        # Tokens pasted by hand lack it; Meta's deauthorize and deletion callbacks need it.
        fields["meta_user_id"] = finding.meta_user_id
    InstagramAccount.objects.filter(pk=account.pk).update(**fields)
    for name, value in fields.items():
        setattr(account, name, value)


def account_token_check(
    *, account_id: int, now: datetime | None = None, actor_label: str = ACTOR_BEAT
) -> TokenOutcome:
    """Ask Meta about one account's token and act on the answer. Safe to run twice."""
    now = now or timezone.now()
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return TokenOutcome(account_id, "?", SKIPPED, "the account no longer exists")
    if account.status == AccountStatus.DISABLED:
        return _outcome(account, SKIPPED, "disabled (not checked)")
    token, problem = _readable_token(account, actor_label)
    if problem is not None:
        return problem
    try:
        if account.login_kind == LoginKind.FACEBOOK:
            finding = _check_facebook(account, token)
        else:
            finding = _check_instagram(account, token)
    except OAuthError as exc:
        # The check itself failed (network, 5xx, our app credentials): nothing is marked.
        logger.warning("Checking @%s's token failed (%s); the next run tries again", account, exc)
        return _outcome(account, RETRY, str(exc))
    _record_finding(account, finding, now, actor_label)
    if finding.problem_reason:
        if _disconnect(
            account,
            reason=finding.problem_reason,
            detail=finding.problem_detail,
            actor_label=actor_label,
        ):
            return _outcome(account, NEEDS_RECONNECT, account.status_reason)
        return _outcome(account, STILL_NEEDS_RECONNECT, finding.problem_detail)
    warning = _expiry_warning(account, now, finding)
    if account.status == AccountStatus.NEEDS_RECONNECT:
        return _outcome(
            account,
            STILL_NEEDS_RECONNECT,
            "Meta accepts the token now, but sends resume only when someone reconnects "
            f"@{account.username} ({account.status_reason or account.reconnect_reason})",
            warning,
        )
    _set_warning(account, warning)
    return _outcome(account, OK, finding.note, warning)


def tokens_check(
    *, account_ids: list[int] | None = None, actor_label: str = ACTOR_BEAT
) -> list[TokenOutcome]:
    """Check the given accounts (default: every one not disabled), one after another."""
    ids = accounts_to_check() if account_ids is None else account_ids
    return [account_token_check(account_id=pk, actor_label=actor_label) for pk in ids]

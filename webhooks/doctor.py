"""The setup doctor: everything that must hold for Meta's webhooks and sends to work, in one go.

For the app: its webhook subscription (the Instagram object's fields, callback). For each
connected account: its status, its token and permissions, its own webhook subscription (read
back from Meta), whether it lets connected tools access messages (Meta offers no read of that
setting: judged from refusals), and when its last webhook arrived. Each problem comes with the
fix in one sentence. Reads only, apart from recording the subscription it read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from accounts import connecting, crypto, tokens
from accounts.models import AccountStatus, InstagramAccount, LoginKind
from messaging.models import Delivery, DeliveryStatus
from meta import oauth
from webhooks.subscriptions import AppWebhooksError, app_webhooks_check

# An account without a webhook for longer than this is worth a look.
SILENCE_WARNING = timedelta(days=3)
# Refusals looked at for the "allow access to messages" setting.
REFUSAL_LOOKBACK = timedelta(days=7)
MESSAGE_ACCESS_FIX = (
    "In the Instagram app: Settings > Messages and story replies > Message controls > "
    "Allow access to messages: turn it on, then reconnect the account."
)


@dataclass(frozen=True)
class Finding:
    subject: str  # "app" or "@username"
    check: str
    ok: bool
    detail: str
    fix: str = ""


def _app_findings(callback_url: str | None) -> list[Finding]:
    try:
        check = app_webhooks_check(callback_url=callback_url)
    except AppWebhooksError as exc:
        return [Finding("app", "webhook subscription", False, str(exc), "Set them and run again.")]
    except oauth.OAuthError as exc:
        return [
            Finding(
                "app",
                "webhook subscription",
                False,
                f"Meta refused to show the app's subscription: {exc}",
                "Check META_APP_ID and META_APP_SECRET against the App Dashboard.",
            )
        ]
    if check.ok:
        sub = check.subscription
        assert sub is not None
        detail = f"Instagram object -> {sub.callback_url}; fields {', '.join(sub.fields)}"
        return [Finding("app", "webhook subscription", True, detail)]
    fix = (
        "Run `manage.py meta_app_webhooks --callback-url https://<your host>/webhooks/instagram/`."
    )
    return [Finding("app", "webhook subscription", False, " ".join(check.problems), fix)]


def _token_finding(account: InstagramAccount, subject: str) -> Finding:
    reconnect = f"Reconnect {subject} from the admin (Instagram accounts > {subject})."
    try:
        token = account.access_token
        if account.login_kind == LoginKind.FACEBOOK:
            info = tokens.facebook_token_info(token)
            if not info.is_valid:
                why = info.error_message or "Meta says the token is not valid"
                return Finding(subject, "token and permissions", False, why, reconnect)
            granted = info.scopes or tuple(account.scopes or ())
        else:
            oauth.instagram_me(
                settings.META_INSTAGRAM_GRAPH_URL, token, timeout=settings.META_HTTP_TIMEOUT
            )
            # Instagram Login has no permission read-back: the grant recorded at connect.
            granted = tuple(account.scopes or ())
    except crypto.TokenDecryptionError as exc:
        return Finding(subject, "token and permissions", False, str(exc), reconnect)
    except oauth.OAuthError as exc:
        if exc.token_invalid:
            return Finding(subject, "token and permissions", False, str(exc), reconnect)
        return Finding(
            subject,
            "token and permissions",
            False,
            f"Could not check the token: {exc}",
            "Run the doctor again; if it persists, check Meta's status page.",
        )
    missing = connecting.missing_scopes(account.login_kind, granted) if granted else ()
    if missing:
        detail = f"Not granted: {', '.join(missing)}."
        fix = f"Reconnect {subject} and keep every permission ticked on Meta's page."
        return Finding(subject, "token and permissions", False, detail, fix)
    return Finding(subject, "token and permissions", True, "valid; every needed permission")


def _subscription_finding(account: InstagramAccount, subject: str) -> Finding:
    again = (
        f"Subscribe again: Instagram accounts > {subject} > Webhook subscription (reconnecting "
        "also subscribes)."
    )
    try:
        check = connecting.account_subscription_check(account=account)
    except (oauth.OAuthError, crypto.TokenDecryptionError) as exc:
        return Finding(subject, "account subscription", False, f"Could not read it: {exc}", again)
    if check.problem:
        return Finding(subject, "account subscription", False, check.problem, again)
    return Finding(subject, "account subscription", True, f"fields {', '.join(check.fields or ())}")


def _message_access_finding(account: InstagramAccount, subject: str, now: datetime) -> Finding:
    refused = Delivery.objects.filter(
        account=account,
        status=DeliveryStatus.FAILED,
        meta_code=10,
        meta_subcode__isnull=True,
        finished_at__gte=now - REFUSAL_LOOKBACK,
    ).count()
    held_for_it = "different people in a row" in (account.status_reason or "")
    if refused or held_for_it:
        detail = (
            f"Meta refused {refused} send(s) in 7 days with code 10 and no reason"
            + (", and the account is held for it" if held_for_it else "")
            + ": the usual cause is messages access switched off."
        )
        return Finding(subject, "access to messages", False, detail, MESSAGE_ACCESS_FIX)
    return Finding(
        subject,
        "access to messages",
        True,
        "no refusal points at it (Meta offers no way to read this setting)",
    )


def _last_webhook_finding(account: InstagramAccount, subject: str, now: datetime) -> Finding:
    last = account.last_webhook_at
    if last is None:
        return Finding(
            subject,
            "last webhook",
            False,
            "No webhook has arrived for this account yet.",
            "Comment on one of its posts as a test; if nothing arrives, fix the subscriptions "
            "above (in Development mode Meta sends webhooks only for people with a role on the "
            "app).",
        )
    ago = f"{timesince(last, now)} ago ({last:%Y-%m-%d %H:%M} UTC)"
    if now - last > SILENCE_WARNING:
        return Finding(
            subject,
            "last webhook",
            False,
            f"The last webhook arrived {ago}.",
            "If people commented or wrote since, the subscriptions above are broken; if the "
            "account was quiet, nothing to do.",
        )
    return Finding(subject, "last webhook", True, ago)


def _status_finding(account: InstagramAccount, subject: str) -> Finding:
    if account.status == AccountStatus.NEEDS_RECONNECT:
        return Finding(
            subject,
            "status",
            False,
            account.status_reason or "needs reconnecting",
            f"Reconnect {subject} from the admin; held sends go out once it is reconnected.",
        )
    if account.status == AccountStatus.DISABLED:
        return Finding(subject, "status", False, "disabled", f"Enable {subject} to send again.")
    return Finding(subject, "status", True, "active")


def doctor_run(
    *,
    accounts: list[InstagramAccount] | None = None,
    callback_url: str | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Every check, app first, then each account (all accounts when ``accounts`` is None)."""
    now = now or timezone.now()
    findings = _app_findings(callback_url)
    if accounts is None:
        accounts = list(InstagramAccount.objects.select_related("workspace").order_by("username"))
    for account in accounts:
        subject = f"@{account.username}"
        findings += [
            _status_finding(account, subject),
            _token_finding(account, subject),
            _subscription_finding(account, subject),
            _message_access_finding(account, subject, now),
            _last_webhook_finding(account, subject, now),
        ]
    return findings

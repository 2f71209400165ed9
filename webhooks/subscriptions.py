"""The app-level webhook subscription: Meta's first layer (meta-api.md section 2, "Subscribing").

Before any webhook arrives, the Meta app's Webhooks product must name the Instagram object's
fields, our callback URL and our verify token; then each account subscribes too
(``accounts.connecting.account_subscribe``). Both are set and read with the Graph API: the app
level with the app access token ``META_APP_ID|META_APP_SECRET`` on ``/{app-id}/subscriptions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from meta import oauth

WEBHOOK_PATH = "/webhooks/instagram/"


class AppWebhooksError(Exception):
    """Input or configuration that cannot work; the message says what to do."""


@dataclass(frozen=True)
class AppWebhooksCheck:
    """How the app's Instagram subscription compares with what the product needs."""

    subscription: oauth.AppSubscription | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _credentials() -> tuple[str, str]:
    missing = [
        name
        for name in ("META_APP_ID", "META_APP_SECRET", "META_VERIFY_TOKEN")
        if not getattr(settings, name, "")
    ]
    if missing:
        raise AppWebhooksError(f"Set {', '.join(missing)}: the app subscription needs them.")
    return settings.META_APP_ID, settings.META_APP_SECRET


def callback_url_problem(url: str) -> str:
    """Why Meta would refuse this callback URL, or ""."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not a URL: give https://<your host>{WEBHOOK_PATH}"
    if parts.scheme != "https" and not oauth.is_loopback(parts.hostname):
        return (
            f"Meta calls only HTTPS callbacks with a valid certificate: use "
            f"https://{parts.netloc}{parts.path}"
        )
    if not parts.path.endswith(WEBHOOK_PATH):
        return (
            f"The callback must be this product's webhook URL, ending in {WEBHOOK_PATH} "
            f"(https://{parts.netloc}{WEBHOOK_PATH})"
        )
    if parts.query or parts.fragment:
        return "The callback URL takes no query or fragment."
    return ""


def app_webhooks_check(*, callback_url: str | None = None) -> AppWebhooksCheck:
    """Read the app's subscription and name what is missing or different ("" problems = ok).

    ``callback_url`` None: any callback is accepted (the doctor, which does not know it).
    Raises ``AppWebhooksError`` for missing settings, ``oauth.OAuthError`` when Meta refuses.
    """
    app_id, secret = _credentials()
    found = oauth.app_subscriptions(
        settings.META_GRAPH_URL, app_id, secret, timeout=settings.META_HTTP_TIMEOUT
    )
    subscription = next((s for s in found if s.object == oauth.INSTAGRAM_OBJECT), None)
    if subscription is None:
        return AppWebhooksCheck(
            None,
            [
                "The app has no webhook subscription for the Instagram object: run "
                "`manage.py meta_app_webhooks --callback-url https://<your host>"
                f"{WEBHOOK_PATH}`."
            ],
        )
    problems = []
    if not subscription.active:
        problems.append("The app's Instagram subscription is not active: subscribe again.")
    missing = [name for name in oauth.WEBHOOK_FIELDS if name not in subscription.fields]
    if missing:
        problems.append(f"Fields not subscribed: {', '.join(missing)}.")
    if callback_url is not None and subscription.callback_url != callback_url.strip():
        problems.append(
            f"The callback URL is {subscription.callback_url or '(none)'}, not {callback_url}."
        )
    return AppWebhooksCheck(subscription, problems)


def app_webhooks_subscribe(*, callback_url: str) -> AppWebhooksCheck:
    """Subscribe the app to the Instagram fields the product handles, then read it back.

    Meta verifies the callback (a GET with our verify token) before it answers, so this web
    app must be running at ``callback_url``.
    """
    problem = callback_url_problem(callback_url)
    if problem:
        raise AppWebhooksError(problem)
    app_id, secret = _credentials()
    confirmed = oauth.app_subscribe(
        settings.META_GRAPH_URL,
        app_id,
        secret,
        callback_url=callback_url.strip(),
        verify_token=settings.META_VERIFY_TOKEN,
        fields=oauth.WEBHOOK_FIELDS,
        timeout=settings.META_HTTP_TIMEOUT,
    )
    check = app_webhooks_check(callback_url=callback_url)
    if not confirmed and check.ok:
        return AppWebhooksCheck(
            check.subscription, ["Meta did not confirm the subscription (no success)."]
        )
    return check

"""Shared by the simulate_* commands: sign a webhook body and POST it to the running app."""

from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import CommandError

from accounts.models import InstagramAccount
from accounts.selectors import account_by_reference
from meta.samples import signed
from meta.standin import StandInControl


def default_url() -> str:
    """The running demo's webhook URL (bin/demo's DEMO_PORT, 8000 unless set)."""
    return f"http://127.0.0.1:{settings.DEMO_PORT}/webhooks/instagram/"


def demo_account(reference: str) -> InstagramAccount:
    account = account_by_reference(reference)
    if account is None:
        raise CommandError(f"No connected account {reference!r}: run `manage.py load_demo` first.")
    return account


def post_signed(url: str, body: dict) -> requests.Response:
    raw, headers = signed(body, settings.META_APP_SECRET)
    try:
        response = requests.post(url, data=raw, headers=headers, timeout=10)
    except requests.RequestException as exc:
        raise CommandError(f"Could not reach the app at {url}: {exc}") from exc
    if response.status_code != 200:
        raise CommandError(f"The app answered {response.status_code}: {response.text[:200]}")
    return response


def tell_standin(record) -> None:
    """Let the demo's Graph API stand-in know what Meta would know (a comment was made, a
    person wrote: their consent and conversation exist), so it answers as strictly as Meta.
    Best effort: without a stand-in on STANDIN_PORT (real Meta) nothing is told."""
    control = StandInControl(f"http://127.0.0.1:{settings.STANDIN_PORT}", timeout=2)
    try:
        record(control)
    except Exception:  # noqa: S110 - a missing stand-in is not the person's concern
        pass
    finally:
        control.close()


def where_to_look(url: str) -> str:
    parts = urlsplit(url)
    return (
        f"Deliveries: {parts.scheme}://{parts.netloc}/admin/messaging/delivery/  "
        f"(the demo's stand-in log: http://127.0.0.1:{settings.STANDIN_PORT}/_standin/)"
    )

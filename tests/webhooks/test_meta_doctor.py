"""`manage.py meta_doctor`: every setup check in one go, each problem with its fix."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import InstagramAccount
from messaging.models import DeliveryStatus
from meta import oauth
from tests.conftest import GRAPH
from tests.factories import DeliveryFactory, InstagramAccountFactory
from webhooks.doctor import doctor_run

pytestmark = pytest.mark.django_db
TOKEN = "EAA-doctor-page-token"


@pytest.fixture
def meta(settings, standin, live_server):
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_INSTAGRAM_GRAPH_URL = f"{standin.url}/ig/v24.0"
    settings.META_APP_ID, settings.META_APP_SECRET = "demo-app-id", "demo-app-secret"
    settings.META_VERIFY_TOKEN = "doctor-verify-token"
    settings.callback = f"{live_server.url}/webhooks/instagram/"
    return settings


def _healthy(meta, control) -> InstagramAccount:
    oauth.app_subscribe(
        meta.META_GRAPH_URL,
        "demo-app-id",
        "demo-app-secret",
        callback_url=meta.callback,
        verify_token=meta.META_VERIFY_TOKEN,
    )
    account = InstagramAccountFactory(username="acme.studio", token=TOKEN)
    control.register_account(TOKEN, id=account.page_id, username="acme.studio")
    oauth.subscribe_webhooks(meta.META_GRAPH_URL, account.page_id, TOKEN, ["feed"])
    InstagramAccount.objects.filter(pk=account.pk).update(last_webhook_at=timezone.now())
    account.refresh_from_db()
    return account


def doctor(*args) -> str:
    out = StringIO()
    call_command("meta_doctor", *args, stdout=out)
    return out.getvalue()


def test_a_healthy_setup_passes_every_check(meta, control):
    _healthy(meta, control)

    output = doctor("--callback-url", meta.callback)

    assert "No problem found." in output
    for check in (
        "webhook subscription",
        "status",
        "token and permissions",
        "account subscription",
        "access to messages",
        "last webhook",
    ):
        assert check in output
    assert "FAIL" not in output


def test_each_problem_is_named_with_its_fix_and_the_exit_is_non_zero(meta, control):
    account = InstagramAccountFactory(username="quiet.shop", token=TOKEN)
    control.register_account(TOKEN, id=account.page_id, username="quiet.shop")
    for _ in range(2):  # refused by Meta with code 10 and no reason
        DeliveryFactory(
            account=account,
            status=DeliveryStatus.FAILED,
            meta_code=10,
            finished_at=timezone.now() - timedelta(hours=1),
        )

    out = StringIO()
    with pytest.raises(CommandError, match="problem\\(s\\) found"):
        call_command("meta_doctor", stdout=out)
    output = out.getvalue()

    assert "FAIL  app" in output and "meta_app_webhooks --callback-url" in output
    assert "Meta does not list this app on the Page" in output
    assert "fix: Subscribe again" in output
    assert "Meta refused 2 send(s) in 7 days with code 10" in output
    assert "Allow access to messages" in output
    assert "No webhook has arrived for this account yet." in output
    # The read-back is kept on the account for the admin.
    account.refresh_from_db()
    assert account.webhook_checked_at is not None
    assert "does not list this app" in account.webhook_problem


def test_a_token_without_a_needed_permission_is_named(mocked_graph, settings):
    settings.META_APP_ID, settings.META_APP_SECRET = "app", "secret"
    account = InstagramAccountFactory(username="acme.studio")
    mocked_graph.get(f"{GRAPH}/app/subscriptions", json={"data": []})
    mocked_graph.get(
        f"{GRAPH}/debug_token",
        json={
            "data": {
                "is_valid": True,
                "type": "PAGE",
                "scopes": ["instagram_basic", "instagram_manage_messages", "pages_show_list"],
            }
        },
    )
    mocked_graph.get(f"{GRAPH}/{account.page_id}/subscribed_apps", json={"data": []})

    findings = {f.check: f for f in doctor_run(accounts=[account]) if f.subject != "app"}

    token = findings["token and permissions"]
    assert not token.ok
    assert "pages_messaging" in token.detail and "instagram_manage_comments" in token.detail
    assert "keep every permission ticked" in token.fix


def test_an_unknown_account_is_an_error(meta, control):
    with pytest.raises(CommandError, match="No connected account 'nobody'"):
        doctor("--account", "nobody")

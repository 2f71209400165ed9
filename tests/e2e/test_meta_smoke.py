"""bin/meta-smoke rehearsed: the same walk as against real Meta, with the person simulated by
signed webhooks, a live server, a real worker and the Graph API stand-in."""

from io import StringIO

import pytest
from django.core.management import call_command

from meta import oauth
from tests.factories import InstagramAccountFactory
from triggers.models import Trigger

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_walk_passes_every_step_and_leaves_no_trigger_behind(
    live_server, settings, worker, standin, standin_control, monkeypatch
):
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_INSTAGRAM_GRAPH_URL = f"{standin.url}/ig/v24.0"
    facebook = InstagramAccountFactory(username="smoke.fb", token="EAA-smoke-fb")
    instagram = InstagramAccountFactory(
        username="smoke.ig", login_kind="instagram", page_id="", token="IG-smoke"
    )
    standin_control.register_account("EAA-smoke-fb", id=facebook.page_id)
    standin_control.register_account("IG-smoke", id=instagram.ig_user_id)
    callback = f"{live_server.url}/webhooks/instagram/"
    monkeypatch.setenv("META_SMOKE_CALLBACK_URL", callback)
    monkeypatch.setenv("META_SMOKE_FACEBOOK_ACCOUNT", "smoke.fb")
    monkeypatch.setenv("META_SMOKE_INSTAGRAM_ACCOUNT", "smoke.ig")
    monkeypatch.setenv("META_SMOKE_PERSON", "smoke.person")
    out = StringIO()

    try:
        call_command("meta_smoke", "--simulate", "--wait", "30", stdout=out)
    finally:
        print(out.getvalue())

    output = out.getvalue()
    assert "[FAIL]" not in output, output
    for step in ("public reply", "private reply", "after the tap", "dm keyword"):
        assert output.count(f"[ok]   {step}") == 2, output  # once per login kind
    assert "Result: " in output and ", 0 failed" in output
    assert standin_control.subscriptions()[facebook.page_id] == list(oauth.PAGE_WEBHOOK_FIELDS)
    assert not Trigger.objects.filter(name__startswith="meta-smoke").exists()

"""Webhook subscriptions end to end, the way real Meta requires them (meta-api.md section 2).

Real processes: gunicorn (the callback Meta verifies), a Celery worker and beat, and the
Graph API stand-in as its own process, on a private database and Redis. The operator runs the
product's commands: `meta_app_webhooks` sets the app's Instagram subscription (the stand-in
verifies the callback against the running web process first, as Meta does:
https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests),
`connect_account --subscribe` installs the app on the Page with a Page field
(https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps), and
`meta_doctor` reports what still stops webhooks, until a comment arrives.
"""

import subprocess

import pytest

from meta import oauth
from tests.e2e.processes import BASE_DIR, VENV_BIN
from tests.e2e.stack import APP_SECRET, Database, RedisServer, Stack, manage, stack_env

pytestmark = pytest.mark.e2e

APP_ID = "faults-app"  # what stack_env sets as META_APP_ID


@pytest.fixture
def stack(tmp_path):
    database = Database()
    server = RedisServer(tmp_path)
    running = None
    try:
        env = stack_env(
            database_url=database.url,
            broker_url="memory://",
            redis_url="",
            var_dir=tmp_path / "migrate",
            standin_url="http://127.0.0.1:9",
        )
        manage(env, "migrate", "--noinput", "-v0")
        server.start()
        running = Stack(
            database,
            tmp_path,
            broker_url=f"{server.url}/0",
            redis_url=f"{server.url}/1",
            redis_server=server,
        )
        running.start()
        # The stand-in plays the product's Meta app.
        running.control.set_oauth_app("facebook", app_id=APP_ID, app_secret=APP_SECRET)
        yield running
    finally:
        if running is not None:
            running.stop()
        server.stop()
        database.drop()


def _manage_may_fail(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=BASE_DIR,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_app_and_page_subscriptions_then_a_webhook_and_a_clean_doctor(stack):
    callback = f"{stack.web_url}/webhooks/instagram/"

    # Nothing set yet: the check fails naming it, and changes nothing.
    check = _manage_may_fail(stack, "meta_app_webhooks", "--callback-url", callback, "--check")
    assert check.returncode != 0
    assert "no webhook subscription for the Instagram object" in check.stderr

    # Set it: the stand-in verifies the running web process's handshake before saving.
    output = stack.manage("meta_app_webhooks", "--callback-url", callback)
    assert "OK: the app receives every Instagram field" in output
    instagram = stack.control.app_subscriptions()[APP_ID]["instagram"]
    assert instagram["callback_url"] == callback
    assert set(instagram["fields"]) == set(oauth.WEBHOOK_FIELDS)
    assert "OK" in stack.manage("meta_app_webhooks", "--callback-url", callback, "--check")

    # An account connected with a pasted token is not subscribed yet: the doctor says so.
    account = stack.connect_account("acme.subscribed")
    stack.control.register_account("EAA-page-token", id=account.page_id)
    doctor = _manage_may_fail(stack, "meta_doctor", "--account", account.username)
    assert doctor.returncode != 0
    assert "does not list this app on the Page" in doctor.stdout
    assert "No webhook has arrived for this account yet." in doctor.stdout

    # Installing the app on the Page takes a Page field; Instagram names would be refused.
    stack.manage(
        "connect_account",
        "--workspace",
        "Fault tests",
        "--ig-user-id",
        account.ig_user_id,
        "--username",
        account.username,
        "--access-token",
        "EAA-page-token",
        "--page-id",
        account.page_id,
        "--subscribe",
    )
    assert stack.control.subscriptions()[account.page_id] == list(oauth.PAGE_WEBHOOK_FIELDS)

    # A comment arrives: processed, and the account's last webhook is noted.
    (comment,) = stack.comments(account, 1)
    assert stack.post(comment).status == 200
    stack.wait_settled([account], expected=2, timeout=30)

    doctor = _manage_may_fail(
        stack, "meta_doctor", "--account", account.username, "--callback-url", callback
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "No problem found." in doctor.stdout
    assert "fields feed" in doctor.stdout

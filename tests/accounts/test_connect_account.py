"""connect_account: connect an account with a token obtained elsewhere."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AccountStatus, InstagramAccount, LoginKind, Workspace
from tests.factories import InstagramAccountFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

TOKEN = "EAAGm0PX4ZCpsBAKZCsecretmiddlepartZDZD"
IG_USER_ID = "17841400000000001"
PAGE_ID = "100000000000001"


def connect(*flags: str, **overrides) -> str:
    options = {
        "workspace": "Acme",
        "ig_user_id": IG_USER_ID,
        "username": "acme.studio",
        "access_token": TOKEN,
        "page_id": PAGE_ID,
    }
    options.update(overrides)
    args = list(flags)
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    stdout = io.StringIO()
    call_command("connect_account", *args, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def test_creates_the_workspace_and_the_account():
    output = connect()

    account = InstagramAccount.objects.get()
    assert account.workspace == Workspace.objects.get(name="Acme")
    assert account.ig_user_id == IG_USER_ID
    assert account.username == "acme.studio"
    assert account.page_id == PAGE_ID
    assert account.login_kind == LoginKind.FACEBOOK
    assert account.status == AccountStatus.ACTIVE
    assert "Connected" in output
    assert "acme.studio" in output


def test_uses_an_existing_workspace():
    workspace = WorkspaceFactory(name="Acme")

    connect()

    assert Workspace.objects.count() == 1
    assert InstagramAccount.objects.get().workspace == workspace


def test_username_may_be_given_with_an_at_sign():
    connect(username="@acme.studio")

    assert InstagramAccount.objects.get().username == "acme.studio"


def test_instagram_login_needs_no_page_id():
    connect(login="instagram", page_id="")

    account = InstagramAccount.objects.get()
    assert account.login_kind == LoginKind.INSTAGRAM
    assert account.page_id == ""


def test_token_is_stored_encrypted():
    connect()

    stored = InstagramAccount.objects.values_list("access_token_encrypted", flat=True).get()
    assert stored
    assert TOKEN not in stored
    assert "secretmiddlepart" not in stored
    assert InstagramAccount.objects.get().access_token == TOKEN


def test_output_does_not_reveal_the_token():
    output = connect()

    assert TOKEN not in output
    assert "secretmiddlepart" not in output


def test_running_again_replaces_the_token_and_keeps_one_account():
    connect()
    first = InstagramAccount.objects.get()

    output = connect(access_token="EAAnewtokenvalue1234567890")

    account = InstagramAccount.objects.get()
    assert account.pk == first.pk
    assert account.access_token == "EAAnewtokenvalue1234567890"
    assert Workspace.objects.count() == 1
    assert "Updated" in output


def test_running_again_reactivates_an_account_that_needs_reconnecting():
    InstagramAccountFactory(
        workspace=WorkspaceFactory(name="Acme"),
        ig_user_id=IG_USER_ID,
        status=AccountStatus.NEEDS_RECONNECT,
        status_reason="Meta revoked the token",
        reconnect_reason="token_invalid",
    )

    connect()

    account = InstagramAccount.objects.get()
    assert account.status == AccountStatus.ACTIVE
    assert account.status_reason == ""
    assert account.reconnect_reason == ""
    assert account.access_token == TOKEN


@pytest.mark.parametrize(
    "overrides",
    [
        {"ig_user_id": "acme.studio"},
        {"ig_user_id": "1784-1400"},
        {"ig_user_id": ""},
        {"access_token": ""},
        {"access_token": "   "},
        {"login": "facebook", "page_id": ""},
        {"page_id": "acme-page"},
        {"workspace": "  "},
        {"username": ""},
        {"username": "@"},
        {"login": "twitter"},
    ],
    ids=[
        "non-numeric id",
        "id with dash",
        "empty id",
        "empty token",
        "blank token",
        "facebook without page id",
        "non-numeric page id",
        "blank workspace",
        "empty username",
        "bare at sign",
        "unknown login",
    ],
)
def test_bad_input_is_an_error_and_writes_nothing(overrides):
    with pytest.raises(CommandError) as excinfo:
        connect(**overrides)

    assert "\n" not in str(excinfo.value).strip()
    assert not Workspace.objects.exists()
    assert not InstagramAccount.objects.exists()


def test_an_account_of_another_workspace_is_an_error_and_writes_nothing():
    account = InstagramAccountFactory(
        workspace=WorkspaceFactory(name="Other client"), ig_user_id=IG_USER_ID, token="old-token"
    )

    with pytest.raises(CommandError, match="Other client"):
        connect(workspace="Acme")

    assert not Workspace.objects.filter(name="Acme").exists()
    account.refresh_from_db()
    assert account.access_token == "old-token"
    assert account.workspace.name == "Other client"


def test_missing_required_option_is_an_error():
    with pytest.raises(CommandError):
        call_command("connect_account", "--workspace", "Acme", stdout=io.StringIO())

    assert not Workspace.objects.exists()


def test_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as excinfo:
        call_command("connect_account", "--help")

    assert excinfo.value.code == 0
    help_text = capsys.readouterr().out
    for option in (
        "--workspace",
        "--ig-user-id",
        "--username",
        "--access-token",
        "--page-id",
        "--login",
    ):
        assert option in help_text


def test_a_username_too_long_for_the_database_is_an_error():
    with pytest.raises(CommandError, match="username"):
        connect(username="a" * 65)

    assert not InstagramAccount.objects.exists()


def test_subscribe_installs_the_app_on_the_page_and_reads_it_back(settings, standin):
    # Facebook Login: Page subscriptions take a Page field (Page subscribed_apps reference:
    # https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps).
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    control = standin.control()
    control.reset()

    output = connect("--subscribe")

    assert "Subscribed to webhooks; Meta lists: feed." in output
    assert control.subscriptions() == {PAGE_ID: ["feed"]}
    account = InstagramAccount.objects.get()
    assert account.webhook_fields == ["feed"] and account.webhook_problem == ""


def test_a_refused_subscription_keeps_the_connection_and_says_why(settings, standin):
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    control = standin.control()
    control.reset()
    control.add_fault(
        "subscribed_apps", status=400, error={"code": 200, "message": "(#200) Permissions error"}
    )

    with pytest.raises(CommandError, match="is connected, but its webhook subscription failed"):
        connect("--subscribe")

    account = InstagramAccount.objects.get()
    assert "Permissions error" in account.webhook_problem

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import InstagramAccount
from tests.factories import InstagramAccountFactory

pytestmark = pytest.mark.django_db


def test_rotation_re_encrypts_under_the_new_key_so_the_old_can_go(settings):
    settings.TOKEN_ENCRYPTION_KEYS = ["old-key"]
    account = InstagramAccountFactory(token="EAAG-secret-token")
    settings.TOKEN_ENCRYPTION_KEYS = ["new-key", "old-key"]
    out = StringIO()
    call_command("rotate_token_key", stdout=out)
    assert "Re-encrypted 1 token" in out.getvalue()
    settings.TOKEN_ENCRYPTION_KEYS = ["new-key"]
    assert InstagramAccount.objects.get(pk=account.pk).access_token == "EAAG-secret-token"


def test_an_undecryptable_token_changes_nothing(settings):
    settings.TOKEN_ENCRYPTION_KEYS = ["lost-key"]
    account = InstagramAccountFactory(token="EAAG-secret-token")
    before = InstagramAccount.objects.get(pk=account.pk).access_token_encrypted
    settings.TOKEN_ENCRYPTION_KEYS = ["new-key"]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_token_key")
    assert InstagramAccount.objects.get(pk=account.pk).access_token_encrypted == before


def test_pending_connections_tokens_are_rotated_too(settings):
    from datetime import timedelta

    from django.utils import timezone

    from accounts import crypto
    from accounts.models import PendingConnection
    from tests.factories import UserFactory, WorkspaceFactory

    settings.TOKEN_ENCRYPTION_KEYS = ["old-key"]
    pending = PendingConnection.objects.create(
        key="k" * 32,
        user=UserFactory(),
        workspace=WorkspaceFactory(),
        login_kind="facebook",
        user_token_encrypted=crypto.encrypt("EAAG-user-token"),
        choices=[
            {"key": "p1", "username": "a", "token_encrypted": crypto.encrypt("EAAG-page-token")},
            {"key": "p2", "username": "b", "token_encrypted": ""},
        ],
        expires_at=timezone.now() + timedelta(minutes=15),
    )
    settings.TOKEN_ENCRYPTION_KEYS = ["new-key", "old-key"]
    out = StringIO()
    call_command("rotate_token_key", stdout=out)
    assert "Re-encrypted 2 token" in out.getvalue()
    settings.TOKEN_ENCRYPTION_KEYS = ["new-key"]  # the old key is gone
    pending.refresh_from_db()
    assert crypto.decrypt(pending.user_token_encrypted) == "EAAG-user-token"
    assert crypto.decrypt(pending.choices[0]["token_encrypted"]) == "EAAG-page-token"
    assert pending.choices[1]["token_encrypted"] == ""


def test_expired_pending_connections_are_swept_by_beat(settings):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import PendingConnection
    from accounts.tasks import sweep
    from tests.factories import UserFactory, WorkspaceFactory

    def pending(key, minutes):
        return PendingConnection.objects.create(
            key=key, user=UserFactory(), workspace=WorkspaceFactory(), login_kind="facebook",
            user_token_encrypted="x", expires_at=timezone.now() + timedelta(minutes=minutes),
        )  # fmt: skip

    pending("expired", -1)
    waiting = pending("waiting", 10)
    assert sweep()["pending_connections_deleted"] == 1
    assert list(PendingConnection.objects.all()) == [waiting]
    assert settings.CELERY_BEAT_SCHEDULE["sweep-accounts"]["task"] == "accounts.sweep"

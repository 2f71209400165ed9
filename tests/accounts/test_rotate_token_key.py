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

"""Access tokens at rest: encryption, key rotation and masking."""

import pytest

from accounts import crypto
from tests.factories import InstagramAccountFactory

TOKEN = "EAAGm0PX4ZCpsBAKZCsecretmiddlepartZDZD"


@pytest.fixture
def keys(settings):
    def use(*names: str) -> None:
        settings.TOKEN_ENCRYPTION_KEYS = list(names)

    return use


def test_encrypt_then_decrypt_gives_the_token_back():
    assert crypto.decrypt(crypto.encrypt(TOKEN)) == TOKEN


def test_ciphertext_does_not_contain_the_token():
    ciphertext = crypto.encrypt(TOKEN)

    assert TOKEN not in ciphertext
    assert "secretmiddlepart" not in ciphertext


def test_each_encryption_is_different():
    assert crypto.encrypt(TOKEN) != crypto.encrypt(TOKEN)


def test_empty_token_stays_empty():
    assert crypto.encrypt("") == ""
    assert crypto.decrypt("") == ""


def test_unicode_token_round_trips():
    assert crypto.decrypt(crypto.encrypt("tökén-✓")) == "tökén-✓"


def test_old_ciphertext_decrypts_with_the_old_key_listed_after_the_new(keys):
    keys("old key")
    ciphertext = crypto.encrypt(TOKEN)

    keys("new key", "old key")

    assert crypto.decrypt(ciphertext) == TOKEN


def test_old_ciphertext_without_the_old_key_cannot_be_decrypted(keys):
    keys("old key")
    ciphertext = crypto.encrypt(TOKEN)

    keys("new key")

    with pytest.raises(crypto.TokenDecryptionError, match="TOKEN_ENCRYPTION_KEY"):
        crypto.decrypt(ciphertext)


def test_new_encryptions_use_the_first_key(keys):
    keys("new key", "old key")
    ciphertext = crypto.encrypt(TOKEN)

    keys("new key")

    assert crypto.decrypt(ciphertext) == TOKEN


def test_rotate_re_encrypts_under_the_first_key(keys):
    keys("old key")
    ciphertext = crypto.encrypt(TOKEN)
    keys("new key", "old key")

    rotated = crypto.rotate(ciphertext)

    keys("new key")
    assert crypto.decrypt(rotated) == TOKEN


def test_garbage_ciphertext_is_a_decryption_error():
    with pytest.raises(crypto.TokenDecryptionError):
        crypto.decrypt("not-a-fernet-token")


@pytest.mark.parametrize(
    "token",
    [
        "abcdefghi",
        "abcdefghijkl",  # 12: too short to show anything
        "abcdefghijklm",  # 13
        TOKEN,
        "EAA" + "x1y2z3" * 40 + "ZDZD",
    ],
)
def test_mask_never_reveals_the_middle(token):
    masked = crypto.mask(token)

    assert token not in masked
    assert token[4:-4] not in masked
    assert len(masked.replace("…", "")) <= 8
    if len(token) > 12:
        assert masked == f"{token[:4]}…{token[-4:]}"
    else:
        assert masked == "…"


def test_mask_of_no_token_is_empty():
    assert crypto.mask("") == ""


@pytest.mark.django_db
def test_account_shows_a_masked_token():
    account = InstagramAccountFactory(token=TOKEN)

    assert account.masked_token == "EAAG…ZDZD"


@pytest.mark.django_db
def test_account_whose_key_is_gone_shows_that_it_cannot_decrypt(keys):
    keys("old key")
    account = InstagramAccountFactory(token=TOKEN)
    keys("new key")

    assert account.masked_token == "(cannot decrypt)"

"""Encryption of access tokens at rest (Fernet, with key rotation through MultiFernet)."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet_for(secret: str) -> Fernet:
    # Operators may give any passphrase; a SHA-256 of it is a valid 32-byte Fernet key.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


@cache
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet_for(key) for key in keys])


def cipher() -> MultiFernet:
    return _cipher(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return cipher().encrypt(plaintext.encode()).decode()


class TokenDecryptionError(Exception):
    """The stored token was encrypted with a key that is no longer configured."""


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return cipher().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise TokenDecryptionError(
            "The access token cannot be decrypted with TOKEN_ENCRYPTION_KEY: keep the old key "
            "listed after the new one until `rotate_token_key` has run, or reconnect the account."
        ) from exc


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the first configured key."""
    return cipher().rotate(ciphertext.encode()).decode() if ciphertext else ""


def mask(token: str) -> str:
    if not token:
        return ""
    return f"{token[:4]}…{token[-4:]}" if len(token) > 12 else "…"

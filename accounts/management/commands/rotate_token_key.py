from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import crypto
from accounts.models import InstagramAccount, PendingConnection


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored access token (connected accounts, and the user and Page "
        "tokens of connections waiting for the operator's pick) under the first "
        "TOKEN_ENCRYPTION_KEY. Run it after putting a new key first (new,old); then the old "
        "key can be removed."
    )

    def handle(self, *args, **options) -> None:
        rotated = 0
        with transaction.atomic():
            for account in InstagramAccount.objects.select_for_update().exclude(
                access_token_encrypted=""
            ):
                new = self._rotate(account.access_token_encrypted, f"@{account.username}")
                InstagramAccount.objects.filter(pk=account.pk).update(access_token_encrypted=new)
                rotated += 1
            for pending in PendingConnection.objects.select_for_update():
                what = f"a pending connection to {pending.workspace}"
                user_token = self._rotate(pending.user_token_encrypted, what)
                choices = []
                for choice in pending.choices:
                    if isinstance(choice, dict) and choice.get("token_encrypted"):
                        choice = {
                            **choice,
                            "token_encrypted": self._rotate(choice["token_encrypted"], what),
                        }
                        rotated += 1
                    choices.append(choice)
                PendingConnection.objects.filter(pk=pending.pk).update(
                    user_token_encrypted=user_token, choices=choices
                )
                rotated += bool(user_token)
        self.stdout.write(f"Re-encrypted {rotated} token(s) under the first key.")

    @staticmethod
    def _rotate(ciphertext: str, whose: str) -> str:
        try:
            return crypto.rotate(ciphertext)
        except Exception as exc:
            raise CommandError(
                f"{whose}: its token cannot be decrypted with any configured key; nothing was "
                "changed. Keep the old key listed, or reconnect it."
            ) from exc

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import crypto
from accounts.models import InstagramAccount


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored access token under the first TOKEN_ENCRYPTION_KEY. Run it "
        "after putting a new key first (new,old); then the old key can be removed."
    )

    def handle(self, *args, **options) -> None:
        rotated = 0
        with transaction.atomic():
            for account in InstagramAccount.objects.select_for_update().exclude(
                access_token_encrypted=""
            ):
                try:
                    new = crypto.rotate(account.access_token_encrypted)
                except Exception as exc:
                    raise CommandError(
                        f"@{account.username}: its token cannot be decrypted with any configured "
                        "key; nothing was changed. Keep the old key listed, or reconnect it."
                    ) from exc
                InstagramAccount.objects.filter(pk=account.pk).update(access_token_encrypted=new)
                rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} token(s) under the first key.")

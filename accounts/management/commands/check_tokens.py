from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import tokens
from accounts.selectors import account_by_reference


class Command(BaseCommand):
    help = (
        "Check connected accounts' tokens and permissions with Meta now (what beat does "
        "daily): one line per account. A token Meta rejects or a missing permission marks "
        "the account 'needs reconnect'; a failed check marks nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--account", default="", help="Only this account (username or Instagram user id)."
        )

    def handle(self, *args, **options) -> None:
        reference = options["account"].strip()
        account_ids = None
        if reference:
            account = account_by_reference(reference)
            if account is None:
                raise CommandError(f"No connected account {reference!r} (username or id).")
            account_ids = [account.pk]
        outcomes = tokens.tokens_check(account_ids=account_ids, actor_label="check_tokens")
        if not outcomes:
            self.stdout.write("No accounts to check.")
        for outcome in outcomes:
            self.stdout.write(outcome.line())

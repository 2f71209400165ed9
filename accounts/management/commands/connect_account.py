from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.connecting import account_subscribe
from accounts.models import LoginKind
from accounts.services import AccountError, account_connect


class Command(BaseCommand):
    help = (
        "Connect an Instagram account with a token obtained elsewhere (creates the workspace "
        "if needed; run again to replace the token)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="Workspace name (an agency client).")
        parser.add_argument(
            "--ig-user-id", required=True, help="Instagram professional account id."
        )
        parser.add_argument("--username", required=True, help="Instagram username.")
        parser.add_argument("--access-token", required=True, help="Page or Instagram user token.")
        parser.add_argument("--page-id", default="", help="Facebook page id (Facebook Login).")
        parser.add_argument(
            "--login", default=LoginKind.FACEBOOK, choices=LoginKind.values, help="Login kind."
        )
        parser.add_argument(
            "--subscribe",
            action="store_true",
            help=(
                "Also subscribe the account to the app's webhooks (the Page with a Page field "
                "for Facebook Login, the Instagram fields for Instagram Login) and read the "
                "subscription back from Meta."
            ),
        )

    def handle(self, *args, **options) -> None:
        try:
            account, created = account_connect(
                workspace_name=options["workspace"],
                ig_user_id=options["ig_user_id"],
                username=options["username"],
                access_token=options["access_token"],
                page_id=options["page_id"],
                login_kind=options["login"],
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        verb = "Connected" if created else "Updated"
        self.stdout.write(
            f"{verb} @{account.username} ({account.ig_user_id}) in workspace "
            f"{account.workspace.name!r}, token {account.masked_token}."
        )
        if options["subscribe"]:
            ok, error = account_subscribe(account=account, actor_label="connect_account")
            if not ok:
                raise CommandError(
                    f"@{account.username} is connected, but its webhook subscription failed: "
                    f"{error} Run again with --subscribe, or use the admin's Subscribe again."
                )
            fields = ", ".join(account.webhook_fields)
            self.stdout.write(f"Subscribed to webhooks; Meta lists: {fields}.")

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.selectors import account_by_reference
from webhooks.doctor import Finding, doctor_run


def finding_lines(finding: Finding) -> list[str]:
    """One line per check; a problem gets a second line with its fix."""
    mark = "ok  " if finding.ok else "FAIL"
    lines = [f"{mark}  {finding.subject:<24} {finding.check:<22} {finding.detail}"]
    if not finding.ok and finding.fix:
        lines.append(f"      fix: {finding.fix}")
    return lines


class Command(BaseCommand):
    help = (
        "Check in one go what Meta needs for webhooks and sends: the app's webhook "
        "subscription, and for each account its status, token and permissions, its own "
        "subscription, access to messages and its last webhook. Each problem comes with its "
        "fix. Exits non-zero when there is a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", default="", help="Only this account (username or id).")
        parser.add_argument(
            "--callback-url",
            default=None,
            help="Also check the app's callback is this URL (https://<host>/webhooks/instagram/).",
        )

    def handle(self, *args, **options) -> None:
        accounts = None
        reference = options["account"].strip()
        if reference:
            account = account_by_reference(reference)
            if account is None:
                raise CommandError(f"No connected account {reference!r} (username or id).")
            accounts = [account]
        findings = doctor_run(accounts=accounts, callback_url=options["callback_url"])
        self.stdout.write(f"Meta doctor, {timezone.now():%Y-%m-%d %H:%M} UTC")
        for finding in findings:
            for line in finding_lines(finding):
                self.stdout.write(line)
        problems = sum(1 for finding in findings if not finding.ok)
        if problems:
            raise CommandError(f"{problems} problem(s) found; each has its fix above.")
        self.stdout.write("No problem found.")

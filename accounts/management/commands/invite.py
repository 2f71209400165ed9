from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import invitations
from accounts.models import Role, Workspace


class Command(BaseCommand):
    help = (
        "Invite a person: prints (and emails) a sign-up link. Agency admins see everything; "
        "marketers and support people are invited to one workspace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--role", choices=Role.values, required=True)
        parser.add_argument("--workspace", help="Workspace name (not for agency admins).")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the console is reached."
        )

    def handle(self, *args, **options) -> None:
        workspace = None
        if options["workspace"]:
            workspace = Workspace.objects.filter(name=options["workspace"]).first()
            if workspace is None:
                raise CommandError(f"No workspace named {options['workspace']!r}.")
        if "@" not in options["email"]:
            raise CommandError(f"{options['email']!r} is not an email address.")
        try:
            invitation = invitations.invitation_create(
                email=options["email"], role=options["role"], workspace=workspace
            )
        except invitations.InvitationError as exc:
            raise CommandError(str(exc)) from exc
        link = invitations.invitation_send(invitation, base_url=options["base_url"])
        self.stdout.write(f"Invited {invitation}: {link}")

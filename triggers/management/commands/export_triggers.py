import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from accounts.permissions import (
    MARKETER_ROLES,
    is_agency_admin,
    person_for_command,
    workspaces_for,
)
from triggers.triggerfile import triggers_export


class Command(BaseCommand):
    help = "Print the trigger file (JSON) on stdout; import_triggers of it changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="Only this workspace's triggers.")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="Export as this person: only workspaces where they are a marketer "
            "(agency admins: all). Without it, every workspace (the server's operator).",
        )

    def handle(self, *args, **options) -> None:
        person = person_for_command(options.get("as_user"), MARKETER_ROLES, "export triggers")
        workspace = options.get("workspace")
        known = Workspace.objects.all()
        if person is not None:
            # Another workspace reads as unknown: the error must not tell that it exists.
            known = workspaces_for(person, MARKETER_ROLES)
        if workspace is not None and not known.filter(name=workspace).exists():
            raise CommandError(f"No workspace named {workspace!r}.")
        if person is None or is_agency_admin(person) or workspace is not None:
            data = triggers_export(workspace_name=workspace)
        else:
            data = {"triggers": []}
            for name in known.order_by("name").values_list("name", flat=True):
                data["triggers"] += triggers_export(workspace_name=name)["triggers"]
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))

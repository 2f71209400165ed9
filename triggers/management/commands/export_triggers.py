import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from triggers.triggerfile import triggers_export


class Command(BaseCommand):
    help = "Print the trigger file (JSON) on stdout; import_triggers of it changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="Only this workspace's triggers.")

    def handle(self, *args, **options) -> None:
        workspace = options.get("workspace")
        if workspace is not None and not Workspace.objects.filter(name=workspace).exists():
            raise CommandError(f"No workspace named {workspace!r}.")
        data = triggers_export(workspace_name=workspace)
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))

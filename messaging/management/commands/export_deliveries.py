import contextlib
import csv
import json
import os
import sys
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from accounts.permissions import SUPPORT_ROLES, person_for_command, restrict
from messaging.selectors import EXPORT_FIELDS, deliveries_for_export, delivery_as_record


def _parse_since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(
            f"--since {value!r} is not an ISO-8601 date or time (e.g. 2026-11-25T10:00:00Z)."
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Print delivery records on stdout, as a JSON array or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", default="json", choices=["json", "csv"])
        parser.add_argument(
            "--since", help="Only deliveries created at or after this ISO-8601 time."
        )
        parser.add_argument("--workspace", help="Only this workspace's deliveries.")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="Export as this person: only workspaces where they are support "
            "(agency admins: all). Without it, every workspace (the server's operator).",
        )

    def handle(self, *args, **options) -> None:
        try:
            self._export(options)
        except BrokenPipeError:
            # The reader stopped early (`export_deliveries | head -1`): not an error. Point
            # stdout at nothing, so the interpreter's final flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, sys.stdout.fileno())

    def _export(self, options) -> None:
        since = _parse_since(options["since"]) if options.get("since") else None
        person = person_for_command(options.get("as_user"), SUPPORT_ROLES, "export deliveries")
        workspace = options.get("workspace")
        if workspace is not None:
            known = Workspace.objects.filter(name=workspace)
            if person is not None:
                # Another workspace reads as unknown: the error must not tell that it exists.
                known = restrict(known, person, SUPPORT_ROLES, "")
            if not known.exists():
                raise CommandError(f"No workspace named {workspace!r}.")
        deliveries = deliveries_for_export(since=since, workspace_name=workspace)
        if person is not None:
            deliveries = restrict(deliveries, person, SUPPORT_ROLES, "workspace")
        records = (delivery_as_record(delivery) for delivery in deliveries.iterator())
        if options["format"] == "json":
            self.stdout.write(json.dumps(list(records), indent=2, ensure_ascii=False))
            return
        writer = csv.DictWriter(self.stdout, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(record)

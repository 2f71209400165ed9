import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triggers.triggerfile import TriggerFileError, parse_trigger_file, triggers_import


class Command(BaseCommand):
    help = "Load a trigger file (JSON; '-' reads stdin). Idempotent by (account, name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Path to the trigger file, or - for stdin.")

    def handle(self, *args, **options) -> None:
        path = options["path"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text.") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
            ) from exc
        try:
            specs = parse_trigger_file(data)
        except TriggerFileError as exc:
            for error in exc.errors:
                self.stderr.write(error)
            raise CommandError(
                f"{len(exc.errors)} problem(s) in {path}; nothing was imported. First: "
                f"{exc.errors[0]}"
            ) from exc
        summary = triggers_import(specs)
        for warning in summary.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"Imported {len(specs)} trigger(s): {summary.created} created, "
            f"{summary.updated} updated, {summary.unchanged} unchanged."
        )

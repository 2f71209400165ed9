from django.core.management.base import BaseCommand, CommandParser

from webhooks.services import webhook_events_split


class Command(BaseCommand):
    help = (
        "Store the per-account parts of webhook events processed before this version, so a "
        "workspace's people can search their part of older batched events too. Safe to run "
        "again; works in batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, **options) -> None:
        after, total = 0, 0
        while after is not None:
            after, split = webhook_events_split(
                after_pk=after, batch_size=max(1, options["batch_size"])
            )
            total += split
        self.stdout.write(f"Split {total} event(s) into per-account parts.")

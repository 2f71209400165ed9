from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from webhooks.models import EventState, WebhookEvent
from webhooks.services import webhook_events_purge

# Pending and failed events are what an operator may still need to replay: never purged here.
PURGEABLE = [EventState.PROCESSED, EventState.NO_MATCH, EventState.IGNORED, EventState.REJECTED]


class Command(BaseCommand):
    help = (
        "Delete finished webhook events older than N days (processed, no match, ignored, "
        "rejected). Deliveries are kept; pending and failed events are never purged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=int, required=True)
        parser.add_argument("--dry-run", action="store_true", help="Only count what would go.")

    def handle(self, *args, **options) -> None:
        days = options["older_than_days"]
        if days < 1:
            raise CommandError("--older-than-days must be at least 1.")
        cutoff = timezone.now() - timedelta(days=days)
        events = WebhookEvent.objects.filter(state__in=PURGEABLE, received_at__lt=cutoff)
        count = events.count()
        if options["dry_run"]:
            self.stdout.write(f"{count} event(s) received before {cutoff:%Y-%m-%d} would go.")
            return
        deleted = webhook_events_purge(queryset=events)
        self.stdout.write(f"Deleted {deleted} event(s) received before {cutoff:%Y-%m-%d}.")

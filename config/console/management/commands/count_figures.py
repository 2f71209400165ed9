from django.core.management.base import BaseCommand, CommandParser

from config.console.rollups import ROLLUP_DAYS, figures_recount_all


class Command(BaseCommand):
    help = (
        "Count the dashboard's daily figures again, for every day it shows (beat recounts "
        "today, yesterday and one older day every minute; run this after an upgrade)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=ROLLUP_DAYS, help=f"Days back (default {ROLLUP_DAYS})."
        )

    def handle(self, *args, **options) -> None:
        if options["days"] < 1:
            self.stderr.write("--days must be 1 or more.")
            raise SystemExit(2)
        rows = figures_recount_all(days=options["days"])
        self.stdout.write(f"Counted {options['days']} day(s): {rows} figure rows.")

import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webhooks.smoke import Line, smoke_run


class Command(BaseCommand):
    help = (
        "Walk a deployed instance against real Meta (bin/meta-smoke): the doctor, webhook "
        "subscriptions, a comment answered with a public and a private reply, a DM keyword and "
        "a quick-reply tap, one line per step. Needs META_SMOKE_CALLBACK_URL, "
        "META_SMOKE_FACEBOOK_ACCOUNT, META_SMOKE_INSTAGRAM_ACCOUNT and META_SMOKE_PERSON (the "
        "test person who comments, writes and taps when asked); without them it skips with one "
        "line. Never run by CI."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait", type=float, default=180.0, help="Seconds to wait for each step (180)."
        )
        parser.add_argument(
            "--simulate",
            action="store_true",
            help="Play the person by posting signed webhooks to the callback (a rehearsal "
            "against the demo or the stand-in, not against Meta).",
        )

    def handle(self, *args, **options) -> None:
        def say(line: Line) -> None:
            self.stdout.write(str(line))
            self.stdout.flush()

        walk = smoke_run(
            environ=dict(os.environ),
            say=say,
            simulate=options["simulate"],
            wait_seconds=options["wait"],
        )
        if walk is None:
            return
        passed = sum(1 for line in walk.lines if line.mark == "ok")
        self.stdout.write(f"Result: {passed} ok, {walk.failed} failed")
        if walk.failed:
            raise CommandError(f"{walk.failed} step(s) failed; see the [FAIL] lines above.")

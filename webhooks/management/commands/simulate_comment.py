from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.selectors import account_by_reference
from meta.samples import comment_body, signed


class Command(BaseCommand):
    help = (
        "Simulate a person commenting under a post: POST a realistic, correctly signed "
        "comments webhook to the running app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", nargs="?", default="guide please", help="The comment text.")
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/instagram/")
        parser.add_argument("--account", default="demo.studio", help="Username or id commented on.")
        parser.add_argument("--from-id", default="848067418322071", help="Commenter's IGSID.")
        parser.add_argument("--from-username", default="curious.reader")
        parser.add_argument("--media-id", default="18050310947722369")

    def handle(self, *args, **options) -> None:
        account = account_by_reference(options["account"])
        if account is None:
            raise CommandError(
                f"No connected account {options['account']!r}: run `manage.py load_demo` first."
            )
        body = comment_body(
            account_id=account.ig_user_id,
            text=options["text"],
            from_id=options["from_id"],
            from_username=options["from_username"],
            media_id=options["media_id"],
        )
        raw, headers = signed(body, settings.META_APP_SECRET)
        try:
            response = requests.post(options["url"], data=raw, headers=headers, timeout=10)
        except requests.RequestException as exc:
            raise CommandError(f"Could not reach the app at {options['url']}: {exc}") from exc
        comment_id = body["entry"][0]["changes"][0]["value"]["id"]
        self.stdout.write(
            f"POST {options['url']} -> {response.status_code} {response.text[:80]!r}; "
            f"comment {comment_id} by @{options['from_username']}: {options['text']!r}"
        )
        if response.status_code != 200:
            raise CommandError(f"The app answered {response.status_code}.")
        parts = urlsplit(options["url"])
        self.stdout.write(
            f"Deliveries: {parts.scheme}://{parts.netloc}/admin/messaging/delivery/  "
            "(the demo's stand-in log: http://127.0.0.1:8001/_standin/)"
        )

from django.core.management.base import BaseCommand, CommandParser

from meta.samples import comment_body
from webhooks.management.commands._posting import (
    default_url,
    demo_account,
    post_signed,
    tell_standin,
    where_to_look,
)


class Command(BaseCommand):
    help = (
        "Simulate a person commenting under a post: POST a realistic, correctly signed "
        "comments webhook to the running app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", nargs="?", default="guide please", help="The comment text.")
        parser.add_argument(
            "--url", help="Where to post (default: the demo on DEMO_PORT, 8000 unless set)."
        )
        parser.add_argument("--account", default="demo.studio", help="Username or id commented on.")
        parser.add_argument("--from-id", default="848067418322071", help="Commenter's IGSID.")
        parser.add_argument("--from-username", default="curious.reader")
        parser.add_argument("--media-id", default="18050310947722369")

    def handle(self, *args, **options) -> None:
        options["url"] = options["url"] or default_url()
        account = demo_account(options["account"])
        body = comment_body(
            account_id=account.ig_user_id,
            text=options["text"],
            from_id=options["from_id"],
            from_username=options["from_username"],
            media_id=options["media_id"],
        )
        comment_id = body["entry"][0]["changes"][0]["value"]["id"]
        tell_standin(
            lambda control: control.register_comment(
                comment_id, options["from_id"], text=options["text"]
            )
        )
        response = post_signed(options["url"], body)
        self.stdout.write(
            f"POST {options['url']} -> {response.status_code} {response.text[:80]!r}; "
            f"comment {comment_id} by @{options['from_username']}: {options['text']!r}"
        )
        self.stdout.write(where_to_look(options["url"]))

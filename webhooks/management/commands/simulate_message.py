from django.core.management.base import BaseCommand, CommandParser

from meta import samples
from webhooks.management.commands._posting import (
    default_url,
    demo_account,
    post_signed,
    tell_standin,
    where_to_look,
)

KINDS = ("dm", "story_reply", "story_mention", "quick_reply", "postback")


class Command(BaseCommand):
    help = (
        "Simulate a person writing to the account: POST a realistic, correctly signed messaging "
        "webhook (a DM, a story reply or mention, or a quick-reply / postback tap) to the "
        "running app. A typed reply equal to a flow option's title continues that flow."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", nargs="?", default="", help="What the person writes.")
        parser.add_argument("--kind", choices=KINDS, default="dm")
        parser.add_argument("--payload", default="", help="quick_reply / postback: the payload.")
        parser.add_argument(
            "--url", help="Where to post (default: the demo on DEMO_PORT, 8000 unless set)."
        )
        parser.add_argument("--account", default="demo.studio", help="Username or id written to.")
        parser.add_argument("--from-id", default="848067418322071", help="The person's IGSID.")

    def handle(self, *args, **options) -> None:
        options["url"] = options["url"] or default_url()
        account = demo_account(options["account"])
        common = {"account_id": account.ig_user_id, "sender_id": options["from_id"]}
        kind, text = options["kind"], options["text"]
        if kind == "story_reply":
            body = samples.story_reply_body(**common, text=text)
        elif kind == "story_mention":
            body = samples.story_mention_body(**common)
        elif kind == "quick_reply":
            body = samples.quick_reply_body(**common, title=text, payload=options["payload"])
        elif kind == "postback":
            body = samples.postback_body(**common, title=text, payload=options["payload"])
        else:
            body = samples.message_body(**common, text=text)
        # Every kind is the person writing or tapping: at Meta that starts the conversation
        # and gives the consent a profile read needs.
        owner = account.sender_id
        tell_standin(lambda control: control.person_wrote(owner, options["from_id"], text))
        response = post_signed(options["url"], body)
        self.stdout.write(
            f"POST {options['url']} -> {response.status_code}; {kind} from "
            f"{options['from_id']} to @{account.username}: {text!r}"
        )
        self.stdout.write(where_to_look(options["url"]))

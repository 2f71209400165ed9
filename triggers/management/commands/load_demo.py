from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import LoginKind
from accounts.services import account_connect
from meta import oauth
from triggers.triggerfile import parse_trigger_file, triggers_import

DEMO_WORKSPACE = "Demo agency"
DEMO_ACCOUNT_ID = "17841400000000001"
DEMO_PAGE_ID = "100000000000001"
DEMO_USERNAME = "demo.studio"
DEMO_TRIGGERS = {
    "triggers": [
        {
            "account": DEMO_USERNAME,
            "name": "Guide giveaway",
            "event": "comment",
            "match": "contains",
            "keywords": ["guide", "send guide"],
            "media_ids": [],
            "public_replies": ["Sent! Check your DMs 📬", "On its way to your inbox!"],
            "messages": [{"text": "Here is the guide: https://example.com/guide"}],
            "enabled": True,
            "priority": 0,
        },
        {
            "account": DEMO_USERNAME,
            "name": "Link with a button",
            "event": "comment",
            "match": "fuzzy",
            "keywords": ["link"],
            "public_replies": ["Check your DMs!"],
            "messages": [
                {
                    "text": "Want the link? Tap below and it's yours.",
                    "quick_replies": [{"title": "Send me the link", "next": "link"}],
                }
            ],
            "steps": {"link": [{"text": "Here you go: https://example.com/link"}]},
        },
        {
            "account": DEMO_USERNAME,
            "name": "Price question",
            "event": "dm",
            "match": "fuzzy",
            "keywords": ["price", "cost"],
            "messages": [{"text": "The guide is free; the course is 49 EUR."}],
        },
        {
            "account": DEMO_USERNAME,
            "name": "Thanks for the mention",
            "event": "story_mention",
            "match": "any",
            "messages": [{"text": "Thanks for the shout-out! 💜"}],
        },
        {
            "account": DEMO_USERNAME,
            "name": "Default reply",
            "event": "dm",
            "match": "any",
            "fires_on": "no_match",
            "messages": [{"text": "Thanks for your message! We'll answer soon."}],
        },
    ]
}


# What to type to see each demo trigger answer (README, "More of the demo's triggers").
DEMO_TRIES = {
    "Guide giveaway": 'simulate_comment "guide please": a public reply and a private reply.',
    "Link with a button": (
        'simulate_comment "link please": a private reply with a "Send me the link" button; '
        'then simulate_message "Send me the link": the link as a DM.'
    ),
    "Price question": 'simulate_message "how much is it? prcie?" (typos welcome): the price.',
    "Thanks for the mention": "simulate_message --kind story_mention: a thank-you, once a day.",
    "Default reply": 'simulate_message "hello": the default reply when nothing else matches.',
}


class Command(BaseCommand):
    help = (
        "Load demo data: a workspace, a connected demo account (talking to the local Graph "
        'API stand-in) and demo triggers (comment "GUIDE", a "LINK" flow with a button, a DM '
        "price question, a story-mention thank-you, a default reply); with DEBUG on, also an "
        "admin login."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-password", default="admin", help="Password of user 'admin'.")

    def handle(self, *args, **options) -> None:
        account, _ = account_connect(
            workspace_name=DEMO_WORKSPACE,
            ig_user_id=DEMO_ACCOUNT_ID,
            username=DEMO_USERNAME,
            access_token="demo-page-access-token",  # noqa: S106 - the stand-in accepts any token
            page_id=DEMO_PAGE_ID,
            login_kind=LoginKind.FACEBOOK,
            # Everything Facebook Login asks for, as a real connection would grant.
            scopes=list(oauth.FACEBOOK_LOGIN_SCOPES),
        )
        summary = triggers_import(parse_trigger_file(DEMO_TRIGGERS), actor_label="load_demo")
        self.stdout.write(
            f"Demo account @{account.username} ({account.ig_user_id}) in {DEMO_WORKSPACE!r}; "
            f"{len(DEMO_TRIGGERS['triggers'])} demo triggers: {summary.created} created, "
            f"{summary.updated} updated. Try them:"
        )
        for trigger in DEMO_TRIGGERS["triggers"]:
            self.stdout.write(f"  - {trigger['name']}: {DEMO_TRIES[trigger['name']]}")
        if not settings.DEBUG:
            raise CommandError("Not creating the demo admin login: DEBUG is off.")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        if created:
            user.is_staff = user.is_superuser = True
            user.set_password(options["admin_password"])
            user.save()
            self.stdout.write("Admin login: admin / " + options["admin_password"])

from django.core.management.base import BaseCommand, CommandError, CommandParser

from meta import oauth
from webhooks.subscriptions import (
    AppWebhooksCheck,
    AppWebhooksError,
    app_webhooks_check,
    app_webhooks_subscribe,
)


class Command(BaseCommand):
    help = (
        "Subscribe the Meta app (META_APP_ID, META_APP_SECRET) to the Instagram webhook fields "
        "the product handles, with this callback URL and META_VERIFY_TOKEN, through Meta's app "
        "subscriptions edge; Meta verifies the callback while saving, so the web app must be "
        "running there. --check changes nothing and exits non-zero naming what is missing or "
        "different."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--callback-url",
            required=True,
            help="This product's webhook URL: https://<your host>/webhooks/instagram/",
        )
        parser.add_argument(
            "--check", action="store_true", help="Only compare what Meta has with what is needed."
        )

    def handle(self, *args, **options) -> None:
        callback_url = options["callback_url"].strip()
        try:
            if options["check"]:
                check = app_webhooks_check(callback_url=callback_url)
            else:
                check = app_webhooks_subscribe(callback_url=callback_url)
        except AppWebhooksError as exc:
            raise CommandError(str(exc)) from None
        except oauth.OAuthError as exc:
            raise CommandError(f"Meta refused: {exc}") from None
        self._report(check)
        if not check.ok:
            raise CommandError(" ".join(check.problems))

    def _report(self, check: AppWebhooksCheck) -> None:
        subscription = check.subscription
        if subscription is not None:
            self.stdout.write(
                f"Instagram object: callback {subscription.callback_url}, "
                f"{'active' if subscription.active else 'inactive'}, "
                f"fields {', '.join(subscription.fields) or '(none)'}"
            )
        if check.ok:
            self.stdout.write("OK: the app receives every Instagram field the product handles.")

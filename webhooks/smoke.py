"""The walk against real Meta (``bin/meta-smoke``): the doctor, subscriptions, then a comment
answered with a public and a private reply, a DM keyword, and a quick-reply tap.

It runs on a deployed instance (its database, its running web and worker, its public webhook
URL) with a Meta test app, one Facebook-Login and one Instagram-Login test account connected,
and a test person who follows the prompts: comment, DM, tap. Each step prints one line in a
fixed format (docs/connecting.md, "Against real Meta") that an operator can paste into a
support request. Temporary triggers with a one-off code are created for the walk and removed
afterwards. ``SimulatedPerson`` plays the person by posting signed webhooks instead, so the
same walk can be rehearsed against the demo or the stand-in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from django.conf import settings
from django.utils import timezone

from accounts import connecting
from accounts.models import InstagramAccount
from accounts.selectors import account_by_reference
from messaging.models import FINAL_STATUSES, Delivery, DeliveryKind, DeliveryStatus
from meta import oauth, samples
from triggers.models import FlowRun, Trigger
from webhooks.doctor import doctor_run
from webhooks.subscriptions import AppWebhooksError, app_webhooks_subscribe

# What the walk needs in the environment; absent ones skip it with one line.
REQUIRED = (
    "META_SMOKE_CALLBACK_URL",
    "META_SMOKE_FACEBOOK_ACCOUNT",
    "META_SMOKE_INSTAGRAM_ACCOUNT",
    "META_SMOKE_PERSON",
)
TRIGGER_PREFIX = "meta-smoke"
TAP_TITLE = "Tap me"


@dataclass
class Line:
    """One printed result: ``[ok]   step          subject: detail``."""

    mark: str  # "ok", "FAIL", "warn", "wait", "skip"
    step: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.mark}]{' ' * (5 - len(self.mark))}{self.step:<15} {self.detail}"


@dataclass
class Person:
    """The test person, a human following the printed prompts."""

    username: str
    say: Callable[[Line], None]

    def comment(self, account: InstagramAccount, text: str) -> None:
        self.say(
            Line(
                "wait",
                "comment",
                f"as @{self.username}, comment {text!r} under any post of @{account.username}",
            )
        )

    def message(self, account: InstagramAccount, text: str) -> None:
        self.say(
            Line("wait", "dm", f"as @{self.username}, send @{account.username} the DM {text!r}")
        )

    def tap(self, account: InstagramAccount, title: str, payload: str) -> None:
        self.say(
            Line(
                "wait",
                "tap",
                f"as @{self.username}, tap {title!r} in @{account.username}'s private reply",
            )
        )


@dataclass
class SimulatedPerson(Person):
    """Plays the person by posting signed webhooks to the callback (a rehearsal)."""

    callback_url: str = ""
    igsid: str = field(
        default_factory=lambda: "9" + "".join(secrets.choice("0123456789") for _ in range(15))
    )

    def _post(self, body: dict) -> None:
        raw, headers = samples.signed(body, settings.META_APP_SECRET)
        requests.post(self.callback_url, data=raw, headers=headers, timeout=10).raise_for_status()

    def comment(self, account: InstagramAccount, text: str) -> None:
        super().comment(account, text)
        self._post(
            samples.comment_body(
                account_id=account.ig_user_id,
                text=text,
                from_id=self.igsid,
                from_username=self.username,
            )
        )

    def message(self, account: InstagramAccount, text: str) -> None:
        super().message(account, text)
        self._post(
            samples.message_body(account_id=account.ig_user_id, sender_id=self.igsid, text=text)
        )

    def tap(self, account: InstagramAccount, title: str, payload: str) -> None:
        super().tap(account, title, payload)
        self._post(
            samples.quick_reply_body(
                account_id=account.ig_user_id, sender_id=self.igsid, title=title, payload=payload
            )
        )


def missing_credentials(environ: dict[str, str]) -> list[str]:
    names = [name for name in REQUIRED if not environ.get(name)]
    return names + [n for n in ("META_APP_ID", "META_APP_SECRET") if not getattr(settings, n, "")]


def _delivery_line(step: str, delivery: Delivery) -> Line:
    who = f"@{delivery.account.username}"
    if delivery.status == DeliveryStatus.SENT:
        took = ""
        if delivery.sent_at and delivery.event_received_at:
            took = f" in {(delivery.sent_at - delivery.event_received_at).total_seconds():.1f} s"
        return Line("ok", step, f"{who}: sent{took} (Meta id {delivery.meta_response_id or '-'})")
    code = "-" if delivery.meta_code is None else str(delivery.meta_code)
    if delivery.meta_subcode is not None:
        code += f"/{delivery.meta_subcode}"
    trace = f" [fbtrace_id {delivery.meta_trace_id}]" if delivery.meta_trace_id else ""
    return Line(
        "FAIL",
        step,
        f"{who}: {delivery.status}, {delivery.reason or 'no reason'}, Meta {code}: "
        f"{delivery.meta_message or delivery.detail}{trace}",
    )


@dataclass
class SmokeWalk:
    person: Person
    say: Callable[[Line], None]
    wait_seconds: float = 180.0
    poll_seconds: float = 1.0
    lines: list[Line] = field(default_factory=list)

    def note(self, line: Line) -> None:
        self.lines.append(line)
        self.say(line)

    @property
    def failed(self) -> int:
        return sum(1 for line in self.lines if line.mark == "FAIL")

    # --- steps ---------------------------------------------------------------------------------
    def doctor(self, accounts: list[InstagramAccount], callback_url: str, *, final: bool) -> None:
        """Before the walk, problems are warnings (subscribing may fix them); after it, what
        is still wrong fails."""
        for finding in doctor_run(accounts=accounts, callback_url=callback_url):
            if final and finding.ok:
                continue
            detail = f"{finding.subject} {finding.check}: {finding.detail}"
            if not finding.ok and finding.fix:
                detail += f" | fix: {finding.fix}"
            mark = "ok" if finding.ok else ("FAIL" if final else "warn")
            self.note(Line(mark, "doctor" if not final else "doctor after", detail))

    def subscribe(self, accounts: list[InstagramAccount], callback_url: str) -> None:
        try:
            check = app_webhooks_subscribe(callback_url=callback_url)
            detail = ", ".join(check.subscription.fields) if check.subscription else ""
            self.note(
                Line(
                    "ok" if check.ok else "FAIL",
                    "subscribe",
                    f"app: {detail} {' '.join(check.problems)}".strip(),
                )
            )
        except (AppWebhooksError, oauth.OAuthError) as exc:
            self.note(Line("FAIL", "subscribe", f"app: {exc}"))
        for account in accounts:
            ok, error = connecting.account_subscribe(account=account, actor_label="meta_smoke")
            fields = ", ".join(account.webhook_fields)
            self.note(
                Line(
                    "ok" if ok else "FAIL",
                    "subscribe",
                    f"@{account.username}: {fields if ok else error}",
                )
            )

    def _wait_for(self, what: str, found: Callable[[], Delivery | None]) -> Delivery | None:
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            delivery = found()
            if delivery is not None and delivery.status in FINAL_STATUSES:
                return delivery
            time.sleep(self.poll_seconds)
        self.note(
            Line(
                "FAIL",
                what,
                f"nothing settled within {self.wait_seconds:.0f} s: did the "
                "webhook arrive? (meta_doctor: last webhook)",
            )
        )
        return None

    def _latest(self, trigger: Trigger, kind: str) -> Callable[[], Delivery | None]:
        def find() -> Delivery | None:
            return (
                Delivery.objects.select_related("account")
                .filter(trigger=trigger, kind=kind)
                .order_by("-pk")
                .first()
            )

        return find

    def comment_and_tap(self, account: InstagramAccount, code: str) -> None:
        keyword = f"smoke{code}"
        trigger = Trigger.objects.create(
            account=account,
            name=f"{TRIGGER_PREFIX} {code} comment",
            event="comment",
            keywords=[keyword],
            public_replies=[f"Smoke test {code}: check your DMs"],
            messages=[
                {
                    "text": f"Smoke test {code}",
                    "quick_replies": [{"title": TAP_TITLE, "next": "link"}],
                }
            ],
            extra={"steps": {"link": [{"text": f"Smoke test {code}: tapped"}]}},
            priority=10_000,
        )
        self.person.comment(account, keyword)
        for step, kind in (
            ("public reply", DeliveryKind.PUBLIC_REPLY),
            ("private reply", DeliveryKind.PRIVATE_REPLY),
        ):
            delivery = self._wait_for(step, self._latest(trigger, kind))
            if delivery is not None:
                self.note(_delivery_line(step, delivery))
        run = FlowRun.objects.filter(trigger=trigger).order_by("-pk").first()
        if run is None:
            return
        self.person.tap(account, TAP_TITLE, f"flow:{run.pk}:link")
        delivery = self._wait_for("tap", self._latest(trigger, DeliveryKind.MESSAGE))
        if delivery is not None:
            self.note(_delivery_line("after the tap", delivery))

    def dm_keyword(self, account: InstagramAccount, code: str) -> None:
        keyword = f"smokedm{code}"
        trigger = Trigger.objects.create(
            account=account,
            name=f"{TRIGGER_PREFIX} {code} dm",
            event="dm",
            keywords=[keyword],
            messages=[{"text": f"Smoke test {code}: DM keyword answered"}],
            priority=10_000,
        )
        self.person.message(account, keyword)
        delivery = self._wait_for("dm keyword", self._latest(trigger, DeliveryKind.MESSAGE))
        if delivery is not None:
            self.note(_delivery_line("dm keyword", delivery))


def smoke_run(
    *,
    environ: dict[str, str],
    say: Callable[[Line], None],
    simulate: bool = False,
    wait_seconds: float = 180.0,
) -> SmokeWalk | None:
    """The whole walk; None when credentials are missing (one "skip" line said why)."""
    missing = missing_credentials(environ)
    if missing:
        say(
            Line(
                "skip",
                "meta-smoke",
                f"set {', '.join(missing)} to run against real Meta "
                '(docs/connecting.md, "Against real Meta")',
            )
        )
        return None
    callback_url = environ["META_SMOKE_CALLBACK_URL"]
    references = (environ["META_SMOKE_FACEBOOK_ACCOUNT"], environ["META_SMOKE_INSTAGRAM_ACCOUNT"])
    person_name = environ["META_SMOKE_PERSON"].lstrip("@")
    person = (
        SimulatedPerson(person_name, say, callback_url=callback_url)
        if simulate
        else Person(person_name, say)
    )
    walk = SmokeWalk(person, say, wait_seconds=wait_seconds)
    say(
        Line(
            "ok",
            "meta-smoke",
            f"{timezone.now():%Y-%m-%d %H:%M} UTC, Graph {settings.META_GRAPH_URL}",
        )
    )
    accounts = []
    for reference in references:
        account = account_by_reference(reference)
        if account is None:
            walk.note(Line("FAIL", "accounts", f"{reference!r} is not a connected account"))
        else:
            accounts.append(account)
    if len(accounts) != len(references):
        return walk
    code = f"{secrets.randbelow(9000) + 1000}"
    walk.doctor(accounts, callback_url, final=False)
    walk.subscribe(accounts, callback_url)
    try:
        for account in accounts:
            walk.comment_and_tap(account, code)
            walk.dm_keyword(account, code)
    finally:
        Trigger.objects.filter(name__startswith=f"{TRIGGER_PREFIX} {code} ").delete()
    for account in accounts:
        account.refresh_from_db()
    walk.doctor(accounts, callback_url, final=True)
    return walk

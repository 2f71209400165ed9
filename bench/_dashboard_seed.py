"""Seed the dashboard benchmark's database (run inside Django by bench/dashboard.py):
workspaces, accounts, triggers, people, and --deliveries delivery records over 30 days with
what the console counts besides (read receipts, firings, interactions, link clicks), written
with INSERT ... SELECT generate_series so a million rows take seconds, not hours. Then the
daily figures are counted the way beat does, timed. Prints one JSON line for the driver."""

from __future__ import annotations

import json
import os
import time

from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.utils import timezone

from accounts.models import InstagramAccount, Membership, Role, Workspace
from config.console import rollups
from triggers.models import Trigger
from webhooks.models import WebhookEvent, WebhookEventPart

DELIVERIES = int(os.environ.get("SEED_DELIVERIES", "1000000"))
ACCOUNTS = int(os.environ.get("SEED_ACCOUNTS", "20"))
TRIGGERS_PER_ACCOUNT = int(os.environ.get("SEED_TRIGGERS", "5"))
DAYS = 30


def _sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def _session_for(user) -> str:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def main() -> None:
    started = time.monotonic()
    workspaces = [Workspace.objects.create(name=f"Client {n}") for n in range(3)]
    accounts = []
    for n in range(ACCOUNTS):
        account = InstagramAccount(
            workspace=workspaces[n % len(workspaces)],
            ig_user_id=f"178414{n:011d}",
            username=f"bench.account.{n}",
            last_webhook_at=timezone.now(),
        )
        account.access_token = f"bench-token-{n}"
        account.save()
        accounts.append(account)
    for account in accounts:
        for t in range(TRIGGERS_PER_ACCOUNT):
            Trigger.objects.create(
                account=account,
                name=f"Trigger {t}",
                event="comment",
                keywords=[f"word{t}"],
                public_replies=["Sent!"],
                messages=[
                    {"text": "Want it?", "quick_replies": [{"title": "Yes please", "next": "s"}]}
                ],
                extra={"steps": {"s": [{"text": "Here"}]}},
            )
    users = get_user_model()
    admin = users.objects.create_user("bench-admin", is_staff=True, is_superuser=True)
    support = users.objects.create_user("bench-support", is_staff=True)
    marketer = users.objects.create_user("bench-marketer", is_staff=True)
    Membership.objects.create(user=support, workspace=workspaces[0], role=Role.SUPPORT)
    Membership.objects.create(user=marketer, workspace=workspaces[0], role=Role.MARKETER)

    first_account = accounts[0].pk
    first_trigger = Trigger.objects.order_by("pk").values_list("pk", flat=True).first()
    # Contacts: one per 20 deliveries.
    contacts = max(1, DELIVERIES // 20)
    _sql(
        "INSERT INTO accounts_contact "
        "(account_id, igsid, username, name, conversation_closed_reason, created_at) "
        "SELECT %s + (n %% %s), 'p' || n, 'person.' || n, '', '', now() "
        "FROM generate_series(1, %s) AS n",
        [first_account, ACCOUNTS, contacts],
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) FROM accounts_contact")
        first_contact = cursor.fetchone()[0]
    # Deliveries: 90% sent, 5% failed, 4% skipped, 0.5% unknown, 0.5% still queued; finished
    # over the last 30 days; most private replies seen.
    _sql(
        """
        INSERT INTO messaging_delivery (
            workspace_id, account_id, trigger_id, contact_id, kind, recipient, comment_id,
            live_media_id, lane, payload, dedupe_key, status, reason, detail, attempts,
            meta_message, meta_trace_id, meta_response_id, created_at, finished_at, sent_at,
            seen_at, interaction_at, event_received_at)
        SELECT a.workspace_id, a.id,
               %(trigger)s + (n %% %(triggers)s),
               %(contact)s + (n %% %(contacts)s),
               CASE WHEN n %% 3 = 0 THEN 'public_reply' WHEN n %% 3 = 1 THEN 'private_reply'
                    ELSE 'message' END,
               'r' || n, 'c' || n, '', '', '{"text": "Here"}', 'k' || n,
               s.status, s.reason, '', 1, '', '',
               CASE WHEN s.status = 'sent' THEN 'm.' || n ELSE '' END,
               t.at, CASE WHEN s.status = 'queued' THEN NULL ELSE t.at END,
               CASE WHEN s.status = 'sent' THEN t.at END,
               CASE WHEN s.status = 'sent' AND n %% 3 = 1 AND n %% 5 < 3
                    THEN t.at + interval '3 minutes' END,
               t.at, t.at
        FROM generate_series(1, %(n)s) AS n
        JOIN accounts_instagramaccount a ON a.id = %(account)s + (n %% %(accounts)s)
        CROSS JOIN LATERAL (SELECT now() - (n %% (%(days)s * 86400)) * interval '1 second' AS at) t
        CROSS JOIN LATERAL (SELECT
            CASE WHEN n %% 200 < 180 THEN 'sent' WHEN n %% 200 < 190 THEN 'failed'
                 WHEN n %% 200 < 198 THEN 'skipped' WHEN n %% 200 = 198 THEN 'unknown'
                 ELSE 'queued' END AS status,
            CASE WHEN n %% 200 < 180 OR n %% 200 >= 198 THEN ''
                 ELSE (ARRAY['window_expired', 'meta_error', 'conversation_closed',
                             'content_rejected', 'rate_limited'])[1 + n %% 5] END AS reason) s
        """,
        {
            "trigger": first_trigger,
            "triggers": ACCOUNTS * TRIGGERS_PER_ACCOUNT,
            "contact": first_contact,
            "contacts": contacts,
            "n": DELIVERIES,
            "account": first_account,
            "accounts": ACCOUNTS,
            "days": DAYS,
        },
    )
    # Firings, interactions (comments and taps), link clicks: about a third as many.
    side = max(1, DELIVERIES // 3)
    _sql(
        "INSERT INTO triggers_triggerfiring (trigger_id, contact_id, fired_at, origin_key) "
        "SELECT %s + (n %% %s), %s + (n %% %s), now() - (n %% (30 * 86400)) * interval '1 s', "
        "'comment:' || n FROM generate_series(1, %s) AS n",
        [first_trigger, ACCOUNTS * TRIGGERS_PER_ACCOUNT, first_contact, contacts, side],
    )
    event = WebhookEvent.objects.create(raw_body="{}", dedupe_key="bench", state="processed")
    parts = WebhookEventPart.objects.bulk_create(
        WebhookEventPart(event=event, account=accounts[0], body="{}", interactions_read=True)
        for _ in range(max(1, side // 1000 + 1))
    )
    _sql(
        """
        INSERT INTO webhooks_interaction (event_id, part_id, position, account_id, igsid,
            username, kind, text, media_id, comment_id, parent_id, mid, occurred_at, outcome,
            trigger_id, result, contact_id)
        SELECT %s, %s + n / 1000, n %% 1000, %s + (n %% %s), 'p' || n, 'person.' || n,
               CASE WHEN n %% 4 = 0 THEN 'quick_reply' ELSE 'comment' END,
               CASE WHEN n %% 4 = 0 THEN 'Yes please' ELSE 'word1 please' END,
               '', 'c' || n, '', '', now() - (n %% (30 * 86400)) * interval '1 s', 'matched',
               %s + (n %% %s), '{}', NULL
        FROM generate_series(0, %s - 1) AS n
        """,
        [
            event.pk,
            parts[0].pk,
            first_account,
            ACCOUNTS,
            first_trigger,
            ACCOUNTS * TRIGGERS_PER_ACCOUNT,
            side,
        ],
    )
    _sql(
        "INSERT INTO messaging_linkclick (delivery_id, workspace_id, account_id, trigger_id, "
        "link_index, url, clicked_at) SELECT id, workspace_id, account_id, trigger_id, 0, "
        "'https://example.com', sent_at + interval '5 minutes' FROM messaging_delivery "
        "WHERE status = 'sent' AND id %% 15 = 0"
    )
    _sql("ANALYZE")
    seeded = time.monotonic() - started

    began = time.monotonic()
    rows = rollups.figures_recount_all()
    recount_all = time.monotonic() - began
    began = time.monotonic()
    rollups.figures_refresh()
    refresh = time.monotonic() - began
    _sql("ANALYZE console_dailyfigure")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM messaging_delivery")
        deliveries = cursor.fetchone()[0]
    print(
        "SEEDED "
        + json.dumps(
            {
                "deliveries": deliveries,
                "accounts": ACCOUNTS,
                "triggers": ACCOUNTS * TRIGGERS_PER_ACCOUNT,
                "figure_rows": rows,
                "seed_seconds": round(seeded, 1),
                "recount_all_seconds": round(recount_all, 2),
                "beat_refresh_seconds": round(refresh, 3),
                "sessions": {
                    "agency admin": _session_for(admin),
                    "support (1 workspace)": _session_for(support),
                    "marketer (1 workspace)": _session_for(marketer),
                },
                "failure_link_account": first_account,
            }
        )
    )


main()

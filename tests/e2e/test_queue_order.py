"""A real worker on Redis takes a flooded account's backlog only when nothing else waits.

Fairness is measured in bench/burst.py; this checks the mechanism it rests on: with events
already waiting in `events_bulk` (a viral account) and in `events` (quiet accounts), a
worker started afterwards processes the quiet ones first.
"""

import json
import os

import pytest
import redis
from django.conf import settings

from config.celery import app as celery_app
from meta.samples import comment_body
from tests.e2e.processes import current_database_url, start_worker, wait_until
from tests.factories import InstagramAccountFactory
from webhooks.models import EventState, WebhookEvent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# A broker database of its own: the session's worker must not take these messages.
BROKER_URL = os.environ.get("TEST_QUEUE_ORDER_BROKER_URL", "redis://127.0.0.1:6379/12")


def _stored_event(account, n: int) -> WebhookEvent:
    body = comment_body(account_id=account.ig_user_id, text=f"hello {n}", comment_id=f"77{n}")
    raw = json.dumps(body)
    return WebhookEvent.objects.create(raw_body=raw, dedupe_key=f"queue-order-{account.pk}-{n}")


def test_quiet_events_go_before_a_flooded_accounts_backlog(tmp_path):
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the queue order is a Redis transport option")
    redis.Redis.from_url(BROKER_URL).flushdb()
    viral, quiet = InstagramAccountFactory(), InstagramAccountFactory()
    backlog = [_stored_event(viral, n) for n in range(6)]
    quiet_events = [_stored_event(quiet, 100 + n) for n in range(2)]
    with celery_app.connection_for_write(BROKER_URL) as connection:
        for event in backlog:
            celery_app.send_task(
                "webhooks.process_event", (event.pk,), queue="events_bulk", connection=connection
            )
        for event in quiet_events:
            celery_app.send_task(
                "webhooks.process_event", (event.pk,), queue="events", connection=connection
            )

    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "META_GRAPH_URL": "http://127.0.0.1:9/v24.0",  # nothing matches: Meta is not called
    }
    worker = start_worker(env, tmp_path, concurrency=1)
    try:
        wait_until(
            lambda: not WebhookEvent.objects.filter(state=EventState.PENDING).exists(),
            30,
            "every event processed",
        )
    finally:
        worker.stop()

    order = list(WebhookEvent.objects.order_by("processed_at").values_list("pk", flat=True))
    # Taken in turn (kombu's default), the second quiet event would wait behind a viral one.
    assert order[:2] == [event.pk for event in quiet_events]
    assert sorted(order[2:]) == sorted(event.pk for event in backlog)

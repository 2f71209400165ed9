from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import DeliveryFactory, WebhookEventFactory
from webhooks.models import EventState, WebhookEvent

pytestmark = pytest.mark.django_db


def _old(state: str, days: int = 40) -> WebhookEvent:
    return WebhookEventFactory(state=state, received_at=timezone.now() - timedelta(days=days))


def test_purges_finished_old_events_and_keeps_the_rest():
    old_done = _old(EventState.PROCESSED)
    delivery = DeliveryFactory(event=old_done)
    kept = [
        _old(EventState.PENDING),
        _old(EventState.FAILED),
        _old(EventState.NO_MATCH, days=5),
    ]
    out = StringIO()
    call_command("purge_events", "--older-than-days", "30", stdout=out)
    assert "Deleted 1 event" in out.getvalue()
    assert set(WebhookEvent.objects.all()) == set(kept)
    delivery.refresh_from_db()
    assert delivery.event is None


def test_dry_run_deletes_nothing():
    _old(EventState.IGNORED)
    out = StringIO()
    call_command("purge_events", "--older-than-days", "30", "--dry-run", stdout=out)
    assert "1 event(s)" in out.getvalue()
    assert WebhookEvent.objects.count() == 1


def test_rejects_zero_days():
    with pytest.raises(CommandError):
        call_command("purge_events", "--older-than-days", "0")


def test_purge_deletes_in_batches_without_reading_raw_bodies(monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webhooks import services
    from webhooks.models import WebhookEventPart

    monkeypatch.setattr(services, "PURGE_BATCH", 2)
    events = [_old(EventState.PROCESSED) for _ in range(5)]
    WebhookEventPart.objects.create(event=events[0], body="{}")
    delivery = DeliveryFactory(event=events[1])
    kept = _old(EventState.PENDING)

    with CaptureQueriesContext(connection) as queries:
        call_command("purge_events", "--older-than-days", "30", stdout=StringIO())

    assert list(WebhookEvent.objects.all()) == [kept]
    assert not WebhookEventPart.objects.exists()
    delivery.refresh_from_db()
    assert delivery.event is None
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if "raw_body" in sql]  # bodies never loaded
    table = f'"{WebhookEvent._meta.db_table}"'
    event_deletes = [sql for sql in statements if sql.split(" WHERE ")[0].endswith(table)]
    event_deletes = [sql for sql in event_deletes if sql.startswith("DELETE")]
    assert len(event_deletes) == 3  # 2 + 2 + 1

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

"""The outbox relay (webhooks.relay): the webhook request only stores and NOTIFYs; one relay
at a time publishes what is stored, on a notification or by polling, and survives a broker
refusal, a lost connection and the loss of the active relay.

The relay uses a connection of its own, so these tests commit (transactional_db). Waits are
bounded (a relay thread is asynchronous); no assertion is about how long anything took.
"""

import json
import threading

import pytest
from django.utils import timezone
from kombu import Producer

from meta.samples import comment_body
from webhooks import relay as relay_module
from webhooks import services
from webhooks.models import WebhookEvent
from webhooks.relay import Relay, relay_connect, relay_publish_pending, relay_start_thread

URL = "/webhooks/instagram/"
WAIT = 15  # seconds: a bound for a relay thread to act, never an expectation


@pytest.fixture
def relay_mode(settings, transactional_db):
    settings.WEBHOOK_DISPATCH = "relay"
    return settings


@pytest.fixture
def published(monkeypatch):
    """What the relay hands to the broker: (event id, account ids, relay thread's name)."""
    record: list[tuple[int, list[str], str]] = []
    arrived = threading.Event()

    def publish(*, event_id: int, account_ids: list[str] | None = None, **_) -> None:
        record.append((event_id, account_ids, threading.current_thread().name))
        arrived.set()

    monkeypatch.setattr(relay_module, "webhook_event_publish", publish)
    record_wait = arrived
    return record, record_wait


@pytest.fixture
def relays(relay_mode, published):
    """Start relays on threads; all are stopped (and their connections closed) afterwards,
    before the test database is flushed."""
    started: list[tuple[Relay, threading.Thread]] = []

    def start(name: str, poll_seconds: float = 30.0) -> Relay:
        relay = Relay(name=name, poll_seconds=poll_seconds)
        thread = threading.Thread(target=relay.run, name=name, daemon=True)
        thread.start()
        started.append((relay, thread))
        return relay

    yield start
    for relay, _ in started:
        relay.stop()
    for _, thread in started:
        thread.join(WAIT)


def _receive(text: str = "guide please", account_id: str = "17841400000000001") -> WebhookEvent:
    body = comment_body(account_id=account_id, text=text)
    return services.webhook_event_receive(raw_body=json.dumps(body).encode()).event


def _wait_for(record, arrived, count: int = 1) -> None:
    while len(record) < count:
        arrived.clear()
        if len(record) >= count:
            return
        assert arrived.wait(WAIT), f"nothing published; got {record}"


def test_the_request_stores_and_notifies_but_publishes_nothing(
    relay_mode, client, sign, monkeypatch, django_assert_num_queries
):
    publishes = []
    monkeypatch.setattr(Producer, "publish", lambda *a, **kw: publishes.append(a))
    monkeypatch.setattr(services, "webhook_event_publish", lambda **kw: publishes.append(kw))
    raw, headers = sign(comment_body(account_id="17841400000000001", text="guide please"))
    with relay_connect() as listener:
        listener.execute(f"LISTEN {services.RELAY_CHANNEL}")
        # One statement: the INSERT and its NOTIFY.
        with django_assert_num_queries(1):
            response = client.post(
                URL, data=raw, content_type="application/json", **_meta_headers(headers)
            )
        assert response.status_code == 200
        notes = list(listener.notifies(timeout=WAIT, stop_after=1))
    event = WebhookEvent.objects.get()
    assert publishes == []
    assert event.dispatched_at is None
    assert [(note.channel, note.payload) for note in notes] == [
        (services.RELAY_CHANNEL, str(event.pk))
    ]


def _meta_headers(headers: dict) -> dict:
    return {"HTTP_X_HUB_SIGNATURE_256": headers["X-Hub-Signature-256"]}


def test_a_redelivery_sends_no_second_notification(relay_mode):
    first = _receive()
    with relay_connect() as listener:
        listener.execute(f"LISTEN {services.RELAY_CHANNEL}")
        again = services.webhook_event_receive(raw_body=first.raw_body.encode())
        assert again.duplicate
        assert list(listener.notifies(timeout=0.5)) == []


def test_request_mode_publishes_in_the_request(settings, transactional_db, monkeypatch):
    settings.WEBHOOK_DISPATCH = "request"
    queued = []
    monkeypatch.setattr(services, "webhook_event_publish", lambda **kw: queued.append(kw))
    event = _receive()
    assert queued == [{"event_id": event.pk, "account_ids": ["17841400000000001"]}]
    event.refresh_from_db()
    assert event.dispatched_at is not None


def test_the_relay_publishes_a_stored_event_on_its_notification(relays, published):
    record, arrived = published
    relay = relays("relay-a")  # polls every 30 s: only the notification wakes it in time
    assert relay.active.wait(WAIT)
    event = _receive()
    _wait_for(record, arrived)
    assert record == [(event.pk, ["17841400000000001"], "relay-a")]
    event.refresh_from_db()
    assert event.dispatched_at is not None


def test_the_poll_finds_an_event_whose_notification_was_missed(relays, published):
    record, arrived = published
    relay = relays("relay-a", poll_seconds=0.2)
    assert relay.active.wait(WAIT)
    # Stored without a NOTIFY (as if it were lost): only the poll can find it.
    event = WebhookEvent.objects.create(raw_body="{}", dedupe_key="missed", account_ids=["7"])
    _wait_for(record, arrived)
    assert record == [(event.pk, ["7"], "relay-a")]


def test_only_one_relay_is_active_and_publishes(relays, published):
    record, arrived = published
    first = relays("relay-a")
    assert first.active.wait(WAIT)
    second = relays("relay-b")
    assert second.standing_by.wait(WAIT)
    assert not second.active.is_set()
    events = [_receive(f"guide {n}") for n in range(3)]
    _wait_for(record, arrived, count=3)
    assert sorted(record) == [(e.pk, ["17841400000000001"], "relay-a") for e in events]


def test_another_relay_takes_over_when_the_active_ones_connection_closes(relays, published):
    record, arrived = published
    first = relays("relay-a")
    assert first.active.wait(WAIT)
    second = relays("relay-b", poll_seconds=0.2)
    assert second.standing_by.wait(WAIT)
    first.stop()  # its process stops: the connection closes, PostgreSQL frees the lock
    assert second.active.wait(WAIT)
    event = _receive()
    _wait_for(record, arrived)
    assert record == [(event.pk, ["17841400000000001"], "relay-b")]


def test_the_relay_reconnects_after_losing_its_database_connection(relays, published):
    record, arrived = published
    relay = relays("relay-a")
    assert relay.active.wait(WAIT)
    pid = relay.backend_pid
    with relay_connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # Back with a new session, holding the lock again.
    WebhookEvent.objects.create(raw_body="{}", dedupe_key="while-away", account_ids=[])
    _wait_for(record, arrived)
    assert relay.backend_pid not in (None, pid)
    assert relay.active.is_set()
    event = _receive()
    _wait_for(record, arrived, count=2)
    assert record[-1][0] == event.pk


def test_an_event_the_broker_refused_is_published_on_the_next_try(relay_mode, monkeypatch):
    event = _receive()

    def refuse(**kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(relay_module, "webhook_event_publish", refuse)
    with relay_connect() as conn:
        outcome = relay_publish_pending(conn)
        assert (outcome.published, outcome.refused) == (0, 1)
        event.refresh_from_db()
        assert event.dispatched_at is None  # claimable again

        queued = []
        monkeypatch.setattr(
            relay_module, "webhook_event_publish", lambda **kw: queued.append(kw["event_id"])
        )
        assert relay_publish_pending(conn).published == 1
        assert relay_publish_pending(conn).published == 0  # handed over once
    assert queued == [event.pk]


def _old_event_and_both_publishers(monkeypatch) -> list[str]:
    """An event received long ago (the relay was down); the sweeper's and the relay's
    publishes recorded by who made them, the broker's queue as if empty."""
    event = _receive()
    WebhookEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timezone.timedelta(seconds=120)
    )
    queued = []
    monkeypatch.setattr(services, "webhook_event_publish", lambda **kw: queued.append("sweeper"))
    monkeypatch.setattr(relay_module, "webhook_event_publish", lambda **kw: queued.append("relay"))
    monkeypatch.setattr(services, "intake_backlog", lambda: 0)
    return queued


def test_the_sweeper_does_not_requeue_what_the_relay_just_handed_over(relay_mode, monkeypatch):
    # Handed over by the relay only now.
    queued = _old_event_and_both_publishers(monkeypatch)
    with relay_connect() as conn:
        assert relay_publish_pending(conn).published == 1
    assert services.webhook_events_requeue_pending(older_than_seconds=15) == 0
    assert queued == ["relay"]


def test_the_relay_does_not_repeat_what_the_sweeper_queued(relay_mode, monkeypatch):
    queued = _old_event_and_both_publishers(monkeypatch)
    assert services.webhook_events_requeue_pending(older_than_seconds=15) == 1
    with relay_connect() as conn:
        assert relay_publish_pending(conn).published == 0
    assert queued == ["sweeper"]


def test_no_relay_thread_when_the_request_publishes(settings):
    settings.WEBHOOK_DISPATCH = "request"
    assert relay_start_thread(name="test") is None

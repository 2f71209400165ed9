"""Statements compiled once and bound per call (config/prepared.py) run exactly what the ORM
would build with the same values, and read the same rows into the same objects."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

import messaging.pacer
import messaging.services
import triggers.services
import webhooks.services
from config.prepared import SHAPE, PreparedRead, PreparedStatement, registered
from messaging.models import Delivery, DeliveryStatus
from tests.factories import DeliveryFactory, InstagramAccountFactory, TriggerFactory

pytestmark = pytest.mark.django_db


def _values(statement, account, delivery, now):
    """Real values for each argument a statement of the hot path takes."""
    known = {
        "delivery_id": delivery.pk,
        "event_id": delivery.pk + 1,
        "account_id": account.pk,
        "now": now,
        "lease_until": now + timedelta(seconds=30),
        "most": 4,
        "instagram_ids": [account.ig_user_id, "17841499999999999"],
    }
    return {name: known[name] for name in statement.kinds}


def _comparable(params: list) -> list:
    # JSON parameters are adapter objects (psycopg's Jsonb) without equality: compare what
    # they hold.
    return [getattr(param, "obj", param) for param in params]


def test_every_prepared_statement_binds_to_what_the_orm_builds():
    account = InstagramAccountFactory()
    delivery = DeliveryFactory(account=account)
    # Those of the product (the tests below define their own).
    statements = [s for s in registered() if not s.name.startswith("tests.")]
    names = {statement.name for statement in statements}
    # The hot path's statements are all here (importing their modules registers them).
    assert {
        messaging.services._CLAIM.name,
        messaging.services._CLAIMED.name,
        messaging.pacer._ACCOUNT_AND_SENDS.name,
        webhooks.services._ACCOUNTS_WITH_VERSIONS.name,
        triggers.services._NEXT_POST_WAITING.name,
        webhooks.services._EVENT_LOCKED.name,
    } <= names
    for statement in statements:
        for shift in (0, 1):  # the second call binds new values into the cached statement
            values = _values(statement, account, delivery, timezone.now() + timedelta(shift))
            bound_sql, bound = statement.bound_sql(**values)
            fresh_sql, fresh = statement.fresh_sql(**values)
            assert bound_sql == fresh_sql, statement.name
            assert _comparable(bound) == _comparable(fresh), statement.name


def test_a_prepared_read_gives_the_orm_objects_with_related_rows_and_annotations():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"])
    delivery = DeliveryFactory(account=account, dispatched_at=timezone.now())
    DeliveryFactory(account=account, comment_id=delivery.comment_id, dedupe_key="twin")

    (read,) = messaging.services._CLAIMED.fetch(delivery_id=delivery.pk)
    expected = messaging.services._claimed_read(delivery.pk).get()
    assert read.pk == expected.pk and read.payload == expected.payload
    assert read.private_reply_used is expected.private_reply_used is False  # twin is queued
    assert read.account.username == account.username  # select_related, no extra query
    assert read.contact_id == delivery.contact_id and read.contact.pk == delivery.contact_id

    for _ in range(2):
        (found,) = webhooks.services._ACCOUNTS_WITH_VERSIONS.fetch(
            instagram_ids=[account.ig_user_id]
        )
        assert found.pk == account.pk and found.workspace.pk == account.workspace_id
        assert found.trigger_versions == (
            webhooks.services._accounts_with_versions([account.ig_user_id]).get().trigger_versions
        )
    assert messaging.services._CLAIMED.first(delivery_id=-5) is None


def test_the_claim_statement_moves_a_dispatched_delivery_to_sending():
    delivery = DeliveryFactory(dispatched_at=timezone.now())
    claimed = messaging.services.delivery_claim(delivery_id=delivery.pk)
    assert claimed is not None and claimed.status == DeliveryStatus.SENDING
    assert claimed.lease_expires_at > claimed.sending_started_at
    # Claimed already: a second claim finds nothing to move.
    assert messaging.services.delivery_claim(delivery_id=delivery.pk) is None
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENDING


def test_a_builder_that_computes_with_an_argument_is_refused():
    # `delivery_id + 1` would be compiled in as a constant: refused, not silently wrong.
    computed = PreparedStatement(
        lambda delivery_id: Delivery.objects.filter(pk=delivery_id + 1).query.sql_with_params(),
        delivery_id=int,
    )
    assert connection.vendor == "postgresql"  # elsewhere every call is built afresh
    with pytest.raises(ValueError, match="delivery_id"):
        computed.bound_sql(delivery_id=5)


def test_a_shape_argument_is_compiled_in_per_value():
    limited = PreparedRead(
        lambda status, most: Delivery.objects.filter(status=status).order_by("pk")[:most],
        status=str,
        most=SHAPE,
    )
    DeliveryFactory.create_batch(3)
    assert len(limited.fetch(status=DeliveryStatus.QUEUED, most=2)) == 2
    assert len(limited.fetch(status=DeliveryStatus.QUEUED, most=3)) == 3
    assert limited.fetch(status=DeliveryStatus.SENT, most=3) == []


def test_the_connection_prepares_a_statement_it_runs_often():
    """Django turns psycopg's prepared statements off unless asked; the settings ask
    (DATABASE_PREPARE_THRESHOLD), so PostgreSQL stops parsing and planning hot statements."""
    delivery = DeliveryFactory()
    for _ in range(8):
        messaging.services._CLAIMED.fetch(delivery_id=delivery.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("messaging_delivery" in statement for statement in prepared), prepared


# --- config/rawsql.py: UPDATE and INSERT text made once per shape ---------------------------------
def test_a_row_update_changes_what_the_orm_update_would():
    from config import rawsql
    from messaging.models import DeliveryAttempt

    sent_at = timezone.now()
    ours, theirs = DeliveryFactory(), DeliveryFactory()
    for delivery in (ours, theirs):
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.SENDING, sending_started_at=None, attempts=2
        )
    where = {"id": ours.pk, "status": DeliveryStatus.SENDING, "sending_started_at": None}
    fields = {"status": DeliveryStatus.SENT, "sent_at": sent_at, "attempts": rawsql.Add(1)}
    fields |= {"payload": {"text": "new ü"}, "next_attempt_at": None, "meta_code": None}
    sql, params = rawsql.row_update_sql(Delivery, where, fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.rowcount == 1
    Delivery.objects.filter(
        pk=theirs.pk, status=DeliveryStatus.SENDING, sending_started_at=None
    ).update(
        status=DeliveryStatus.SENT,
        sent_at=sent_at,
        attempts=F("attempts") + 1,
        payload={"text": "new ü"},
        next_attempt_at=None,
        meta_code=None,
    )
    compared = ["status", "sent_at", "attempts", "payload", "next_attempt_at", "meta_code"]
    ours_now, theirs_now = (
        Delivery.objects.values(*compared).get(pk=pk) for pk in (ours.pk, theirs.pk)
    )
    assert ours_now == theirs_now and ours_now["attempts"] == 3
    # A condition that no longer holds changes nothing.
    with connection.cursor() as cursor:
        cursor.execute(*rawsql.row_update_sql(Delivery, {**where, "status": "queued"}, fields))
        assert cursor.rowcount == 0
    assert DeliveryAttempt.objects.count() == 0


def test_an_insert_stores_what_bulk_create_would():
    from config import rawsql

    account = InstagramAccountFactory()
    made = [DeliveryFactory.build(account=account, contact=None) for _ in range(2)]
    sql, params = rawsql.insert_sql(made)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING id", params)
        ids = [row[0] for row in cursor.fetchall()]
    stored = Delivery.objects.filter(pk__in=ids).order_by("pk")
    assert [d.dedupe_key for d in stored] == [d.dedupe_key for d in made]
    assert all(d.created_at is not None for d in stored)  # auto_now_add filled
    assert all(d.payload == {"text": "Here is the guide"} for d in stored)
    # Conflicts ignored when asked: the same rows again insert nothing.
    with connection.cursor() as cursor:
        cursor.execute(rawsql.insert_sql(made, ignore_conflicts=True)[0], params)
        assert cursor.rowcount == 0


def test_update_rows_says_how_many_rows_it_changed():
    from config import rawsql

    delivery = DeliveryFactory(attempts=1)
    assert rawsql.update_rows(Delivery, {"id": delivery.pk}, {"attempts": rawsql.Add(2)}) == 1
    assert rawsql.update_rows(Delivery, {"id": -1}, {"attempts": rawsql.Add(2)}) == 0
    assert Delivery.objects.get(pk=delivery.pk).attempts == 3

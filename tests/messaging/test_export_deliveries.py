"""export_deliveries: delivery records on stdout, as INTERFACE.md lists them."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from messaging.models import DeliveryKind, DeliveryReason, DeliveryStatus
from tests.factories import (
    DeliveryFactory,
    InstagramAccountFactory,
    TriggerFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

INTERFACE_FIELDS = {
    "id",
    "workspace",
    "account",
    "trigger",
    "kind",
    "recipient",
    "contact",
    "comment_id",
    "status",
    "reason",
    "attempts",
    "meta_code",
    "meta_subcode",
    "meta_message",
    "event_received_at",
    "sent_at",
    "created_at",
}


def export(*args: str) -> str:
    stdout = io.StringIO()
    call_command("export_deliveries", *args, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def export_json(*args: str) -> list[dict]:
    return json.loads(export("--format", "json", *args))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def failed_private_reply():
    trigger = TriggerFactory(name="Guide giveaway", account__username="acme.studio")
    return DeliveryFactory(
        account=trigger.account,
        workspace=trigger.account.workspace,
        trigger=trigger,
        contact__igsid="848067410000001",
        kind=DeliveryKind.PRIVATE_REPLY,
        comment_id="17867301270000001",
        recipient="17867301270000001",
        status=DeliveryStatus.FAILED,
        reason=DeliveryReason.WINDOW_EXPIRED,
        attempts=1,
        meta_code=10,
        meta_subcode=2534022,
        meta_message="This message is sent outside of allowed window.",
        event_received_at=at("2026-11-25T10:00:01"),
        created_at=at("2026-11-25T10:00:02"),
    )


# --- JSON ---------------------------------------------------------------------------------------
def test_json_is_one_array_of_objects_with_the_interface_fields():
    DeliveryFactory()
    DeliveryFactory(kind=DeliveryKind.PUBLIC_REPLY)

    records = export_json()

    assert isinstance(records, list)
    assert len(records) == 2
    for record in records:
        assert isinstance(record, dict)
        assert record.keys() >= INTERFACE_FIELDS


def test_json_is_the_default_format():
    DeliveryFactory()

    assert json.loads(export()) == export_json()


def test_json_record_values():
    delivery = failed_private_reply()

    (record,) = export_json()

    assert record["id"] == delivery.pk
    assert record["workspace"] == delivery.workspace.name
    assert record["account"] == "acme.studio"
    assert record["trigger"] == "Guide giveaway"
    assert record["kind"] == "private_reply"
    assert record["recipient"] == "17867301270000001"
    assert record["contact"] == "848067410000001"
    assert record["comment_id"] == "17867301270000001"
    assert record["status"] == "failed"
    assert record["reason"] == "window_expired"
    assert record["attempts"] == 1
    assert record["meta_code"] == 10
    assert record["meta_subcode"] == 2534022
    assert record["meta_message"] == "This message is sent outside of allowed window."
    assert datetime.fromisoformat(record["event_received_at"]) == at("2026-11-25T10:00:01")
    assert datetime.fromisoformat(record["created_at"]) == at("2026-11-25T10:00:02")
    assert record["sent_at"] is None


def test_json_record_of_a_sent_message():
    account = InstagramAccountFactory()
    delivery = DeliveryFactory(
        account=account,
        kind=DeliveryKind.MESSAGE,
        comment_id="",
        recipient="848067410000002",
        contact__igsid="848067410000002",
        dedupe_key="message:1",
        status=DeliveryStatus.SENT,
        attempts=1,
        sent_at=at("2026-11-25T10:00:03"),
    )

    (record,) = export_json()

    assert record["id"] == delivery.pk
    assert record["kind"] == "message"
    assert record["recipient"] == "848067410000002"
    assert record["contact"] == "848067410000002"
    assert record["status"] == "sent"
    assert record["reason"] == ""
    assert record["trigger"] is None
    assert not record["comment_id"]
    assert datetime.fromisoformat(record["sent_at"]) == at("2026-11-25T10:00:03")


def test_json_of_no_deliveries_is_an_empty_array():
    assert export_json() == []


def test_json_keeps_non_ascii_text():
    DeliveryFactory(meta_message="Nachricht abgelehnt: “zu lang” 🙅")

    (record,) = export_json()

    assert record["meta_message"] == "Nachricht abgelehnt: “zu lang” 🙅"


# --- CSV ----------------------------------------------------------------------------------------
def test_csv_has_a_header_and_one_row_per_delivery():
    failed_private_reply()
    DeliveryFactory()

    rows = list(csv.DictReader(io.StringIO(export("--format", "csv"))))

    assert len(rows) == 2
    assert rows[0].keys() >= INTERFACE_FIELDS


def test_csv_row_values():
    delivery = failed_private_reply()

    (row,) = csv.DictReader(io.StringIO(export("--format", "csv")))

    assert row["id"] == str(delivery.pk)
    assert row["account"] == "acme.studio"
    assert row["trigger"] == "Guide giveaway"
    assert row["kind"] == "private_reply"
    assert row["status"] == "failed"
    assert row["reason"] == "window_expired"
    assert row["meta_code"] == "10"
    assert row["meta_subcode"] == "2534022"
    assert row["sent_at"] == ""
    assert datetime.fromisoformat(row["created_at"]) == at("2026-11-25T10:00:02")


def test_csv_of_no_deliveries_is_only_the_header():
    lines = export("--format", "csv").splitlines()

    assert len(lines) == 1
    assert set(lines[0].split(",")) >= INTERFACE_FIELDS


def test_csv_quotes_commas_quotes_and_newlines():
    text = 'Invalid parameter, "message"\nsecond line'
    DeliveryFactory(meta_message=text)

    (row,) = csv.DictReader(io.StringIO(export("--format", "csv")))

    assert row["meta_message"] == text


def test_unknown_format_is_an_error():
    with pytest.raises(CommandError):
        export("--format", "xml")


# --- --since ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2026-11-25T10:00:00Z", ["10:00", "12:00"]),
        ("2026-11-25T10:00:00+00:00", ["10:00", "12:00"]),
        ("2026-11-25T12:00:00+02:00", ["10:00", "12:00"]),
        ("2026-11-25T12:00:01+02:00", ["12:00"]),
        ("2026-11-25T05:00:01-05:00", ["12:00"]),
        ("2026-11-25T10:00:00.000001Z", ["12:00"]),
        ("2026-11-25", ["10:00", "12:00"]),
        ("2026-11-24", ["yesterday 23:59", "10:00", "12:00"]),
        ("2026-11-26", []),
    ],
)
def test_since_keeps_deliveries_created_at_or_after_it(since, expected):
    for label, created_at in [
        ("yesterday 23:59", "2026-11-24T23:59:59"),
        ("10:00", "2026-11-25T10:00:00"),
        ("12:00", "2026-11-25T12:00:00"),
    ]:
        DeliveryFactory(meta_message=label, created_at=at(created_at))

    records = export_json("--since", since)

    assert [record["meta_message"] for record in records] == expected


def test_since_applies_to_csv_too():
    DeliveryFactory(created_at=at("2026-11-24T09:00:00"))
    recent = DeliveryFactory(created_at=at("2026-11-25T09:00:00"))

    rows = list(csv.DictReader(io.StringIO(export("--format", "csv", "--since", "2026-11-25"))))

    assert [row["id"] for row in rows] == [str(recent.pk)]


@pytest.mark.parametrize(
    "since", ["yesterday", "2026-13-01", "25/11/2026", "2026-11-25T25:00:00Z", "now"]
)
def test_bad_since_is_an_error(since):
    DeliveryFactory()

    with pytest.raises(CommandError, match="--since") as excinfo:
        export("--since", since)

    assert "\n" not in str(excinfo.value)


# --- --workspace --------------------------------------------------------------------------------
def test_workspace_filter():
    acme = WorkspaceFactory(name="Acme")
    mine = DeliveryFactory(account=InstagramAccountFactory(workspace=acme))
    DeliveryFactory()

    records = export_json("--workspace", "Acme")

    assert [record["id"] for record in records] == [mine.pk]


def test_unknown_workspace_is_an_error():
    with pytest.raises(CommandError, match="Nowhere"):
        export("--workspace", "Nowhere")


def test_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as excinfo:
        call_command("export_deliveries", "--help")

    assert excinfo.value.code == 0
    help_text = capsys.readouterr().out
    assert "--format" in help_text
    assert "--since" in help_text


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_stops_early_ends_the_export_quietly():
    # `export_deliveries | head -1` ended in a BrokenPipeError traceback (issue 12).
    import subprocess
    import sys

    from tests.e2e.processes import BASE_DIR, current_database_url

    account = InstagramAccountFactory()
    DeliveryFactory.create_batch(300, account=account, payload={"text": "x" * 500})
    env = {**__import__("os").environ, "DATABASE_URL": current_database_url()}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "export_deliveries", "--format", "csv"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"id,")  # the reader takes a line, then goes
    process.stdout.close()
    _, errors = process.communicate(timeout=60)

    assert b"Traceback" not in errors, errors.decode()
    assert b"BrokenPipeError" not in errors, errors.decode()
    assert process.returncode == 0

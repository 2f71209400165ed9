"""meta/lookups.py: reading Meta's answers about a send whose own answer was lost."""

from datetime import UTC, datetime, timedelta

import pytest
import responses

from meta.client import GraphClient
from meta.lookups import find_comment_reply, find_sent_message, parse_time

BASE = "https://graph.test/v24.0"
SINCE = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def meta():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def client() -> GraphClient:
    return GraphClient(BASE, "token", timeout=(1, 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-12-05T10:00:05+0000", SINCE + timedelta(seconds=5)),
        ("2026-12-05T10:00:05Z", SINCE + timedelta(seconds=5)),
        (int((SINCE + timedelta(seconds=5)).timestamp()), SINCE + timedelta(seconds=5)),
        (str(int(SINCE.timestamp())), SINCE),
        ("soon", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_time_reads_meta_s_two_formats(raw, expected):
    assert parse_time(raw) == expected


def lookup(**overrides):
    fields = {
        "owner_id": "100",
        "user_id": "66",
        "text": "Here is the guide",
        "since": SINCE,
        "our_ids": {"1784"},
    }
    return find_sent_message(client(), **{**fields, **overrides})


def test_a_read_that_fails_on_the_way_is_tried_again(meta):
    meta.get(f"{BASE}/100/conversations", status=500, json={"error": {"code": 1}})
    meta.get(f"{BASE}/100/conversations", json={"data": [{"id": "t1"}]})
    meta.get(f"{BASE}/t1", json={"id": "t1", "messages": {"data": []}})

    found = lookup()

    assert found.found is False
    assert len(found.calls) == 3


def test_a_busier_thread_than_meta_lets_us_read_cannot_tell(meta):
    recent = [{"id": f"m{n}", "created_time": f"2026-12-05T10:00:{n:02d}+0000"} for n in range(20)]
    meta.get(f"{BASE}/100/conversations", json={"data": [{"id": "t1"}]})
    meta.get(f"{BASE}/t1", json={"id": "t1", "messages": {"data": recent}})

    found = lookup()

    assert found.found is None
    assert "too busy" in found.checked
    assert len(found.calls) == 2  # no budget spent on details that could not settle it


def test_only_our_message_with_this_text_counts(meta):
    meta.get(f"{BASE}/100/conversations", json={"data": [{"id": "t1"}]})
    listed = [
        {"id": "m2", "created_time": "2026-12-05T10:00:09+0000"},
        {"id": "m1", "created_time": "2026-12-05T10:00:05+0000"},
    ]
    meta.get(f"{BASE}/t1", json={"id": "t1", "messages": {"data": listed}})
    meta.get(f"{BASE}/m2", json={"id": "m2", "from": {"id": "66"}, "message": "Here is the guide"})
    meta.get(
        f"{BASE}/m1",
        json={
            "id": "m1",
            "created_time": 1796464805,
            "from": {"id": "1784"},
            "message": "Here is the guide",
        },
    )

    found = lookup()

    assert (found.found, found.item_id) == (True, "m1")
    assert "message m1" in found.checked


def test_a_reply_by_someone_else_with_our_text_is_not_ours(meta):
    meta.get(
        f"{BASE}/c1/replies",
        json={"data": [{"id": "r1", "text": "Sent!", "from": {"id": "999", "username": "x"}}]},
    )

    found = find_comment_reply(
        client(), comment_id="c1", text="Sent!", since=SINCE, our_ids={"1784"}
    )

    assert found.found is False

"""Webhook bodies built from the shapes documented in meta-api.md section 2."""

import copy
from datetime import UTC, datetime

import pytest

from meta.payloads import (
    CommentEvent,
    MentionEvent,
    MessagingEvent,
    MessagingKind,
    PayloadError,
    UnknownEvent,
    iter_entry_account_ids,
    parse_webhook,
    to_datetime,
)

ACCOUNT = "17841430541631416"
IGSID = "848067418322071"
TS_S = 1776339591
TS_MS = 1569262485349

# Section 2.2: a real comment payload.
COMMENT_BODY = {
    "object": "instagram",
    "entry": [
        {
            "id": ACCOUNT,
            "time": TS_S,
            "changes": [
                {
                    "field": "comments",
                    "value": {
                        "from": {"id": IGSID, "username": "m_waqarsikandar"},
                        "media": {"id": "18050310947722369", "media_product_type": "FEED"},
                        "id": "17867301270523379",
                        "text": "LINK",
                    },
                }
            ],
        }
    ],
}


def messaging_body(item: dict, *, key: str = "messaging", entry_time: int = 1569262486134) -> dict:
    return {"object": "instagram", "entry": [{"id": ACCOUNT, "time": entry_time, key: [item]}]}


def message_item(message: dict, **extra) -> dict:
    return {
        "sender": {"id": IGSID},
        "recipient": {"id": ACCOUNT},
        "timestamp": TS_MS,
        "message": {"mid": "aWdfZAG1faXRlbTox", **message},
        **extra,
    }


def sibling_item(**sibling) -> dict:
    return {"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT}, "timestamp": TS_MS, **sibling}


def only(body: dict):
    events = parse_webhook(body)
    assert len(events) == 1, events
    return events[0]


# -- times ------------------------------------------------------------------------------------


def test_to_datetime_seconds():
    assert to_datetime(TS_S) == datetime(2026, 4, 16, 11, 39, 51, tzinfo=UTC)


def test_to_datetime_milliseconds():
    value = to_datetime(TS_MS)
    assert value == datetime(2019, 9, 23, 18, 14, 45, 349000, tzinfo=UTC)
    assert value.tzinfo is UTC


@pytest.mark.parametrize("value", [str(TS_MS), float(TS_MS), f"{TS_S}"])
def test_to_datetime_accepts_strings_and_floats(value):
    assert to_datetime(value).tzinfo is UTC
    assert to_datetime(value).year in (2019, 2026)


def test_ms_threshold():
    # 10**11 seconds would be year 5138: anything above is milliseconds.
    assert to_datetime(10**11).year > 5000
    assert to_datetime(10**11 + 1).year == 1973


@pytest.mark.parametrize("value", ["soon", "", None, True, float("nan"), [1]])
def test_to_datetime_rejects_non_times(value):
    with pytest.raises(PayloadError):
        to_datetime(value)


# -- comments ---------------------------------------------------------------------------------


def test_real_comment_payload():
    event = only(COMMENT_BODY)
    assert isinstance(event, CommentEvent)
    assert event.account_id == ACCOUNT
    assert event.field == "comments"
    assert event.comment_id == "17867301270523379"
    assert event.text == "LINK"
    assert event.from_id == IGSID
    assert event.from_username == "m_waqarsikandar"
    assert event.media_id == "18050310947722369"
    assert event.media_product_type == "FEED"
    assert event.parent_id == ""
    assert event.ad_id == ""
    assert not event.is_reply
    assert not event.from_account
    assert event.occurred_at == datetime(2026, 4, 16, 11, 39, 51, tzinfo=UTC)
    assert event.raw == COMMENT_BODY["entry"][0]["changes"][0]["value"]


def _comment_body(**value_changes) -> dict:
    body = copy.deepcopy(COMMENT_BODY)
    value = body["entry"][0]["changes"][0]["value"]
    for key, new in value_changes.items():
        if new is None:
            value.pop(key, None)
        else:
            value[key] = new
    return body


def test_reply_comment_with_parent_id():
    event = only(_comment_body(parent_id="17800000000000000"))
    assert event.parent_id == "17800000000000000"
    assert event.is_reply


def test_comment_with_comment_id_instead_of_id():
    event = only(_comment_body(id=None, comment_id="17811111111111111"))
    assert isinstance(event, CommentEvent)
    assert event.comment_id == "17811111111111111"


def test_live_comment():
    body = _comment_body(media={"id": "m1", "media_product_type": "LIVE"})
    body["entry"][0]["changes"][0]["field"] = "live_comments"
    event = only(body)
    assert isinstance(event, CommentEvent)
    assert event.field == "live_comments"
    assert event.media_product_type == "LIVE"


def test_comment_on_ad_keeps_ad_id():
    media = {"id": "m1", "media_product_type": "AD", "ad_id": "2385", "ad_title": "Spring"}
    event = only(_comment_body(media=media))
    assert event.ad_id == "2385"
    assert event.media_product_type == "AD"


def test_own_reply_coming_back_is_flagged():
    event = only(_comment_body(**{"from": {"id": ACCOUNT, "username": "acme"}}))
    assert event.from_account


def test_comment_without_id_becomes_unknown():
    event = only(_comment_body(id=None))
    assert isinstance(event, UnknownEvent)
    assert event.field == "comments"
    assert "comment id" in event.note


def test_comment_without_from_or_media_is_tolerated():
    event = only(_comment_body(**{"from": None, "media": None}))
    assert isinstance(event, CommentEvent)
    assert (event.from_id, event.media_id) == ("", "")


def test_numeric_ids_become_strings():
    body = _comment_body(id=17867301270523379)
    body["entry"][0]["id"] = 17841430541631416
    event = only(body)
    assert event.comment_id == "17867301270523379"
    assert event.account_id == ACCOUNT


def test_mentions_field():
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": ACCOUNT,
                "time": TS_S,
                "changes": [
                    {"field": "mentions", "value": {"media_id": "1791", "comment_id": "1792"}}
                ],
            }
        ],
    }
    event = only(body)
    assert isinstance(event, MentionEvent)
    assert (event.media_id, event.comment_id) == ("1791", "1792")
    assert event.account_id == ACCOUNT


def test_dashboard_test_event_is_unknown():
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": "0",
                "time": TS_S,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "sender": {"id": "12334"},
                            "recipient": {"id": "23245"},
                            "timestamp": "1527459824",
                            "message": {"mid": "random_mid", "text": "random_text"},
                        },
                    }
                ],
            }
        ],
    }
    event = only(body)
    assert isinstance(event, UnknownEvent)
    assert event.account_id == "0"
    assert event.field == "messages"
    assert "test event" in event.note


def test_unhandled_change_field_is_unknown():
    body = copy.deepcopy(COMMENT_BODY)
    body["entry"][0]["changes"][0]["field"] = "story_insights"
    event = only(body)
    assert isinstance(event, UnknownEvent)
    assert event.field == "story_insights"
    assert "not handled" in event.note


@pytest.mark.parametrize("change", [{"field": "comments"}, {"field": "comments", "value": "x"}, 7])
def test_malformed_change_becomes_unknown(change):
    body = {"object": "instagram", "entry": [{"id": ACCOUNT, "time": TS_S, "changes": [change]}]}
    event = only(body)
    assert isinstance(event, UnknownEvent)
    assert event.note


# -- messaging --------------------------------------------------------------------------------


def test_plain_text_message_from_docs():
    event = only(messaging_body(message_item({"text": "price?"})))
    assert isinstance(event, MessagingEvent)
    assert event.kind is MessagingKind.MESSAGE
    assert event.account_id == ACCOUNT
    assert event.sender_id == IGSID
    assert event.recipient_id == ACCOUNT
    assert event.mid == "aWdfZAG1faXRlbTox"
    assert event.text == "price?"
    assert event.payload == ""
    assert event.attachments == ()
    assert event.referral is None
    assert not event.standby
    assert event.opens_window
    assert not event.is_echo
    # The item's own timestamp wins over entry.time.
    assert event.occurred_at == datetime(2019, 9, 23, 18, 14, 45, 349000, tzinfo=UTC)


def test_message_without_timestamp_uses_entry_time():
    item = message_item({"text": "hi"})
    del item["timestamp"]
    event = only(messaging_body(item, entry_time=TS_S))
    assert event.occurred_at == to_datetime(TS_S)


def test_message_without_any_time_uses_receipt_time():
    body = {"object": "instagram", "entry": [{"id": ACCOUNT, "messaging": [message_item({})]}]}
    del body["entry"][0]["messaging"][0]["timestamp"]
    before = datetime.now(UTC)
    event = only(body)
    assert before <= event.occurred_at <= datetime.now(UTC)


def test_echo():
    item = message_item({"text": "Thanks!", "is_echo": True})
    item["sender"], item["recipient"] = item["recipient"], item["sender"]
    event = only(messaging_body(item))
    assert event.kind is MessagingKind.ECHO
    assert event.is_echo
    assert not event.opens_window
    assert event.sender_id == ACCOUNT


def test_echo_wins_over_everything_else():
    item = message_item(
        {"is_echo": True, "quick_replies": [], "quick_reply": {"payload": "X"}, "text": "t"}
    )
    assert only(messaging_body(item)).kind is MessagingKind.ECHO


def test_deleted():
    event = only(messaging_body(message_item({"is_deleted": True})))
    assert event.kind is MessagingKind.DELETED
    assert not event.opens_window


def test_unsupported_still_opens_window():
    event = only(messaging_body(message_item({"is_unsupported": True})))
    assert event.kind is MessagingKind.UNSUPPORTED
    assert event.opens_window


def test_story_reply():
    story = {"id": "18000000000000000", "url": "https://lookaside.fbsbx.com/story.jpg"}
    event = only(messaging_body(message_item({"text": "love this", "reply_to": {"story": story}})))
    assert event.kind is MessagingKind.STORY_REPLY
    assert event.story_id == story["id"]
    assert event.story_url == story["url"]
    assert event.text == "love this"
    assert event.opens_window


def test_story_mention():
    url = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"
    attachments = [{"type": "story_mention", "payload": {"url": url}}]
    event = only(messaging_body(message_item({"attachments": attachments})))
    assert event.kind is MessagingKind.STORY_MENTION
    assert event.story_url == url
    assert event.text == ""
    assert event.attachments == tuple(attachments)
    assert event.opens_window


def test_quick_reply():
    message = {"text": "Yes please", "quick_reply": {"payload": "FLOW_42_YES"}}
    event = only(messaging_body(message_item(message)))
    assert event.kind is MessagingKind.QUICK_REPLY
    assert event.payload == "FLOW_42_YES"
    assert event.text == "Yes please"
    assert event.opens_window


def test_reply_to_a_message():
    event = only(messaging_body(message_item({"text": "this", "reply_to": {"mid": "m_prev"}})))
    assert event.kind is MessagingKind.MESSAGE
    assert event.reply_to_mid == "m_prev"


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file", "share", "ig_reel", "reel"])
def test_media_attachments_are_plain_messages(kind):
    attachments = [{"type": kind, "payload": {"url": "https://cdn/x"}}, "junk"]
    event = only(messaging_body(message_item({"attachments": attachments})))
    assert event.kind is MessagingKind.MESSAGE
    assert event.attachments == ({"type": kind, "payload": {"url": "https://cdn/x"}},)


def test_message_with_referral_from_ad():
    referral = {"ref": "spring", "source": "ADS", "type": "OPEN_THREAD", "ad_id": "1"}
    event = only(messaging_body(message_item({"text": "hi", "referral": referral})))
    assert event.kind is MessagingKind.MESSAGE
    assert event.referral == referral


def test_postback():
    postback = {"mid": "m_pb", "title": "Get the link", "payload": "SEND_LINK"}
    event = only(messaging_body(sibling_item(postback=postback)))
    assert event.kind is MessagingKind.POSTBACK
    assert event.text == "Get the link"
    assert event.payload == "SEND_LINK"
    assert event.mid == "m_pb"
    assert event.opens_window


def test_reaction():
    reaction = {"mid": "m_1", "action": "react", "reaction": "love", "emoji": "\u2764"}
    event = only(messaging_body(sibling_item(reaction=reaction)))
    assert event.kind is MessagingKind.REACTION
    assert event.mid == "m_1"
    assert not event.opens_window
    assert event.raw["reaction"]["emoji"] == "\u2764"


def test_read():
    event = only(messaging_body(sibling_item(read={"mid": "m_1"})))
    assert event.kind is MessagingKind.READ
    assert event.mid == "m_1"
    assert not event.opens_window


def test_referral_without_message():
    referral = {"ref": "igme-link", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    event = only(messaging_body(sibling_item(referral=referral)))
    assert event.kind is MessagingKind.REFERRAL
    assert event.referral == referral
    assert event.opens_window


def test_standby_message():
    event = only(messaging_body(message_item({"text": "hi"}), key="standby"))
    assert isinstance(event, MessagingEvent)
    assert event.standby
    assert event.kind is MessagingKind.MESSAGE


def test_unknown_messaging_item_is_kept():
    item = sibling_item(message_edit={"mid": "m", "text": "new", "num_edit": 1})
    event = only(messaging_body(item))
    assert isinstance(event, UnknownEvent)
    assert event.field == "messaging"
    assert "message_edit" in event.note


def test_non_dict_messaging_item_is_unknown():
    event = only(messaging_body("oops"))  # type: ignore[arg-type]
    assert isinstance(event, UnknownEvent)


def test_messaging_kind_values():
    assert {k.value for k in MessagingKind} == {
        "message",
        "story_reply",
        "story_mention",
        "quick_reply",
        "postback",
        "reaction",
        "read",
        "referral",
        "echo",
        "deleted",
        "unsupported",
    }


# -- batches and envelopes --------------------------------------------------------------------


def test_batch_of_many_entries_keeps_order():
    body = {
        "object": "instagram",
        "entry": [
            COMMENT_BODY["entry"][0],
            {
                "id": "17841400000000002",
                "time": 1569262486134,
                "messaging": [
                    message_item({"text": "one"}),
                    sibling_item(read={"mid": "m"}),
                ],
                "standby": [message_item({"text": "two"})],
            },
            {
                "id": "17841400000000003",
                "time": TS_S,
                "changes": COMMENT_BODY["entry"][0]["changes"],
            },
        ],
    }
    events = parse_webhook(body)
    assert [type(e).__name__ for e in events] == [
        "CommentEvent",
        "MessagingEvent",
        "MessagingEvent",
        "MessagingEvent",
        "CommentEvent",
    ]
    assert [e.account_id for e in events] == [
        ACCOUNT,
        "17841400000000002",
        "17841400000000002",
        "17841400000000002",
        "17841400000000003",
    ]
    assert events[3].standby
    assert iter_entry_account_ids(body) == {ACCOUNT, "17841400000000002", "17841400000000003"}


def test_one_bad_item_does_not_fail_the_batch():
    body = copy.deepcopy(COMMENT_BODY)
    body["entry"][0]["changes"].insert(0, {"field": "comments", "value": {"text": "no id"}})
    events = parse_webhook(body)
    assert isinstance(events[0], UnknownEvent)
    assert isinstance(events[1], CommentEvent)


def test_page_object_is_accepted():
    body = copy.deepcopy(COMMENT_BODY)
    body["object"] = "page"
    assert isinstance(only(body), CommentEvent)


def test_empty_entry_list():
    assert parse_webhook({"object": "instagram", "entry": []}) == []
    assert iter_entry_account_ids({"object": "instagram", "entry": []}) == set()


def test_entry_without_items_is_unknown():
    event = only({"object": "instagram", "entry": [{"id": ACCOUNT, "time": TS_S}]})
    assert isinstance(event, UnknownEvent)


def test_entry_with_non_list_changes_is_unknown():
    body = {"object": "instagram", "entry": [{"id": ACCOUNT, "time": TS_S, "changes": {"a": 1}}]}
    event = only(body)
    assert isinstance(event, UnknownEvent)
    assert event.field == "changes"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (None, "JSON object"),
        ([], "JSON object"),
        ("text", "JSON object"),
        ({"entry": []}, "object"),
        ({"object": "user", "entry": []}, "'user'"),
        ({"object": "instagram"}, "no 'entry'"),
        ({"object": "instagram", "entry": {"id": "1"}}, "must be a list"),
        ({"object": "instagram", "entry": ["x"]}, "entry 0"),
        ({"object": "instagram", "entry": [{"id": "1", "changes": []}, 5]}, "entry 1"),
    ],
)
def test_malformed_envelopes_raise(body, match):
    with pytest.raises(PayloadError, match=match):
        parse_webhook(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, set()),
        ([], set()),
        ({"object": "instagram"}, set()),
        ({"object": "instagram", "entry": {"id": "1"}}, set()),
        (
            {"object": "instagram", "entry": ["x", {"id": "1"}, {"id": ""}, {"id": 2}, {}]},
            {"1", "2"},
        ),
        ({"object": "user", "entry": [{"id": "1"}]}, {"1"}),
    ],
)
def test_iter_entry_account_ids_never_raises(body, expected):
    # Intake tags the stored event with these before parsing; a broken body must still be stored.
    assert iter_entry_account_ids(body) == expected


def test_payload_error_is_a_value_error():
    assert issubclass(PayloadError, ValueError)


def test_events_are_frozen():
    event = only(COMMENT_BODY)
    with pytest.raises(AttributeError):
        event.text = "changed"  # type: ignore[misc]

"""Property-based fuzzing of webhook intake and payload parsing (issue 12, point 2).

Whatever a signed body holds, intake answers 200 (stored) or 400 (refused, saying why), never
500; a stored body is processed into an outcome for each item without a traceback; parsing
raises nothing but PayloadError, and what it hands on is storable (no NUL, no lone surrogate,
ids of at most 64 characters). Bodies: random JSON, Meta's real shapes (meta/samples.py) with
parts replaced, removed or wrapped, deep nesting, and odd encodings (UTF-16/32, a BOM, raw
surrogate bytes, NUL and surrogate escapes).

Bounded for CI: FUZZ_EXAMPLES examples per test (default 150; `FUZZ_EXAMPLES=5000 bin/test
tests/webhooks/test_fuzz.py` for a long run).
"""

import json
import logging
import os

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta import samples
from meta.payloads import (
    MAX_ID_LENGTH,
    CommentEvent,
    MentionEvent,
    MessagingEvent,
    PayloadError,
    parse_webhook,
)
from meta.signatures import sign_body
from tests.factories import InstagramAccountFactory, TriggerFactory
from webhooks.models import EventState, WebhookEvent
from webhooks.services import webhook_event_process

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
URL = "/webhooks/instagram/"
ACCOUNT_ID = "17841400000099001"

# Strings with what breaks storage and encoding: NUL, lone surrogates, quotes, emoji.
odd_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\ud800", "\udfff", "\\", '"', "é", "😀", "\u2028", "0"]),
        st.characters(),
    ),
    max_size=30,
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
)
json_value = st.recursive(
    json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(odd_text, children, max_size=4)
    ),
    max_leaves=25,
)


def _real_shapes() -> list[dict]:
    sender = "6601000000000001"
    common = {"account_id": ACCOUNT_ID, "sender_id": sender}
    return [
        samples.comment_body(account_id=ACCOUNT_ID, text="guide please"),
        samples.live_comment_body(account_id=ACCOUNT_ID, text="guide"),
        samples.message_body(**common, text="price?"),
        samples.story_reply_body(**common, text="love it"),
        samples.story_mention_body(**common),
        samples.quick_reply_body(**common, title="Send me the link", payload="flow:1:link"),
        samples.postback_body(**common, title="Yes", payload="yes"),
        samples.echo_body(account_id=ACCOUNT_ID, recipient_id=sender, text="hi"),
        samples.deleted_body(**common),
        samples.reaction_body(**common),
        samples.read_body(**common),
        samples.referral_body(**common),
    ]


REAL_SHAPES = _real_shapes()


@st.composite
def mutated_real_shape(draw) -> object:
    """One of Meta's real bodies with a few parts replaced, removed or wrapped in a list."""
    body = json.loads(json.dumps(draw(st.sampled_from(REAL_SHAPES))))
    for _ in range(draw(st.integers(1, 4))):
        # Walk down to a random container, then change one of its members.
        node = body
        for _ in range(draw(st.integers(0, 5))):
            members = list(node.values()) if isinstance(node, dict) else node
            inner = [m for m in members if isinstance(m, dict | list) and m]
            if not inner:
                break
            node = draw(st.sampled_from(inner))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["replace", "remove", "wrap"]))
        if action == "replace":
            node[key] = draw(json_value)
        elif action == "remove":
            del node[key]
        else:
            node[key] = [node[key]]
    return body


def deep(depth: int, kind: str) -> str:
    inner = "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth
    return '{"object": "instagram", "entry": [%s]}' % inner  # noqa: UP031


@st.composite
def raw_body(draw) -> bytes:
    """Bytes a signed POST may carry: JSON of any shape, in any encoding, or not JSON at all."""
    source = draw(st.sampled_from(["random", "real", "real", "deep", "junk"]))
    if source == "junk":
        return draw(st.binary(max_size=200))
    if source == "deep":
        text = deep(draw(st.integers(1, 3000)), draw(st.sampled_from(["list", "object"])))
    else:
        value = draw(json_value if source == "random" else mutated_real_shape())
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    encoding = draw(
        st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32", "raw"])
    )
    if encoding == "raw":  # lone surrogates as their (invalid) UTF-8 bytes
        return text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "surrogatepass")


def _storable(text: str) -> bool:
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def _post(client, raw: bytes):
    return client.post(
        URL,
        raw,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign_body(raw, django_settings.META_APP_SECRET)},
    )


@pytest.fixture
def account(db):
    account = InstagramAccountFactory(ig_user_id=ACCOUNT_ID)
    TriggerFactory(account=account, keywords=["guide"])
    return account


@pytest.fixture
def tracebacks(caplog):
    caplog.set_level(logging.WARNING)
    return lambda: [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@FUZZ
@given(raw=raw_body())
def test_intake_answers_200_or_400_and_processing_never_crashes(raw, client, account, tracebacks):
    response = _post(client, raw)

    assert response.status_code in (200, 400), (response.status_code, raw[:200])
    if response.status_code == 400:
        assert response.content, "a refusal says why"
        return
    event = WebhookEvent.objects.get(raw_body=raw.decode("utf-8"))
    assert all(_storable(i) and len(i) <= MAX_ID_LENGTH for i in event.account_ids)
    if event.state == EventState.PENDING:
        event = webhook_event_process(event_id=event.pk)
    assert event.state in (EventState.PROCESSED, EventState.NO_MATCH, EventState.IGNORED), (
        event.state,
        event.error,
    )
    assert event.error == ""
    assert all(item["outcome"] for item in event.result)
    assert tracebacks() == []


@FUZZ
@given(body=st.one_of(json_value, mutated_real_shape()))
def test_parsing_raises_only_payload_error_and_hands_on_storable_values(body):
    try:
        events = parse_webhook(body)
    except PayloadError as exc:
        assert _storable(str(exc))
        return
    for event in events:
        assert _storable(event.account_id) and len(event.account_id) <= MAX_ID_LENGTH
        ids, texts = [], []
        if isinstance(event, CommentEvent):
            ids = [event.comment_id, event.from_id, event.media_id, event.parent_id]
            texts = [event.text, event.from_username, event.field]
        elif isinstance(event, MessagingEvent):
            ids = [event.sender_id, event.recipient_id, event.story_id]
            texts = [event.text, event.payload, event.mid, event.story_url]
        elif isinstance(event, MentionEvent):
            ids = [event.comment_id, event.media_id]
        else:
            texts = [event.note, event.field]
        assert all(_storable(i) and len(i) <= MAX_ID_LENGTH for i in ids), ids
        assert all(_storable(t) for t in texts), texts

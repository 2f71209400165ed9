"""Shared by the event and flow tests: an account, Meta answering every send, processing."""

import json
import re

import pytest

from tests.conftest import GRAPH
from tests.factories import InstagramAccountFactory
from webhooks import services

PERSON = "1789000000000001"


@pytest.fixture
def account():
    return InstagramAccountFactory()


@pytest.fixture
def graph(mocked_graph, account):
    """Meta answering every send; `sent()` lists what reached it, `messages()` only DMs."""
    mocked_graph.add(
        "POST",
        re.compile(rf"{GRAPH}/\d+/messages"),
        json={"recipient_id": PERSON, "message_id": "m.ok"},
    )
    mocked_graph.add("POST", re.compile(rf"{GRAPH}/\d+/replies"), json={"id": "17900000000000001"})

    def sent() -> list[dict]:
        out = []
        for call in mocked_graph.calls:
            if call.request.method != "POST":
                continue
            if call.request.url.endswith("/replies"):
                out.append({"public_reply": call.request.url.split("/")[-2]})
            else:
                out.append(json.loads(call.request.body))
        return out

    mocked_graph.sent = sent
    mocked_graph.messages = lambda: [item for item in sent() if "public_reply" not in item]
    return mocked_graph


@pytest.fixture
def process(django_capture_on_commit_callbacks):
    """Store and process a webhook body the way the worker does, on-commit work inline."""

    def _process(body: dict):
        with django_capture_on_commit_callbacks(execute=True):
            event = services.webhook_event_receive(raw_body=json.dumps(body).encode()).event
        event.refresh_from_db()
        return event

    return _process

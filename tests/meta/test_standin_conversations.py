"""The stand-in remembers what was sent, and answers Meta's Conversations API and a comment's
replies with it, so a client can learn what became of a send whose answer was lost.

Shapes follow Meta's "Get Conversations" guides:
https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/conversations-api
(Instagram Login: GET /<IG_ID>/conversations?platform=instagram&user_id=<IGSID> -> {"data":
[{"id"}]}, GET /<CONVERSATION_ID>?fields=messages -> {"messages": {"data": [{"id",
"created_time"}]}, "id"}, GET /<MESSAGE_ID>?fields=id,created_time,from,to,message) and
https://developers.facebook.com/docs/messenger-platform/conversations (Facebook Login: the
same on /PAGE-ID/conversations?platform=instagram).
"""

from __future__ import annotations

import time

import pytest

from meta.standin import StandIn, StandInControl
from tests.meta.test_standin import PAGE, TOKEN, Graph

PERSON = "6601000000000001"


@pytest.fixture(scope="module")
def standin():
    server = StandIn(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def control(standin):
    ctl = StandInControl(standin.url)
    ctl.reset()
    ctl.register_account(TOKEN, PAGE, username="acme.studio")
    yield ctl
    ctl.close()


@pytest.fixture
def graph(standin, control) -> Graph:
    return Graph(standin.url)


def conversation_of(graph: Graph, person: str) -> list[dict]:
    response = graph.get(
        f"/{PAGE}/conversations", params={"platform": "instagram", "user_id": person}
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_a_sent_dm_is_in_the_conversation_with_its_details(graph):
    assert conversation_of(graph, PERSON) == []
    sent = graph.send(PERSON, {"text": "Here is the guide"}).json()

    (conversation,) = conversation_of(graph, PERSON)
    thread = graph.get(f"/{conversation['id']}", params={"fields": "messages"}).json()
    assert thread["id"] == conversation["id"]
    (listed,) = thread["messages"]["data"]
    assert listed["id"] == sent["message_id"]
    assert set(listed) == {"id", "created_time"}

    details = graph.get(
        f"/{listed['id']}", params={"fields": "id,created_time,from,to,message"}
    ).json()
    assert details["message"] == "Here is the guide"
    assert details["from"] == {"id": PAGE, "username": "acme.studio"}
    assert details["to"]["data"][0]["id"] == PERSON
    assert details["created_time"].endswith("+0000")


def test_a_private_reply_opens_the_conversation_with_the_commenter(graph, control):
    control.register_comment("17900000000000123", PERSON)
    graph.private_reply("17900000000000123", text="Thanks for commenting")

    (conversation,) = conversation_of(graph, PERSON)
    thread = graph.get(f"/{conversation['id']}", params={"fields": "messages"}).json()
    (listed,) = thread["messages"]["data"]
    details = graph.get(f"/{listed['id']}", params={"fields": "message"}).json()
    assert details == {"id": listed["id"], "message": "Thanks for commenting"}


def test_messages_are_listed_newest_first_and_only_the_20_most_recent_are_kept(graph):
    mids = [graph.send(PERSON, {"text": f"n{i}"}).json()["message_id"] for i in range(22)]

    (conversation,) = conversation_of(graph, PERSON)
    listed = graph.get(f"/{conversation['id']}", params={"fields": "messages"}).json()
    assert [m["id"] for m in listed["messages"]["data"]] == mids[::-1][:20]
    # Meta cannot read older messages: neither can a client of the stand-in.
    assert graph.get(f"/{mids[0]}", params={"fields": "message"}).status_code == 400


def test_a_dropped_answer_still_leaves_the_message_in_the_conversation(graph, control):
    control.add_fault("send_message", drop=True, apply=True)
    with pytest.raises(Exception):  # noqa: B017 - the connection is cut
        graph.send(PERSON, {"text": "lost answer"})

    (conversation,) = conversation_of(graph, PERSON)
    (listed,) = graph.get(f"/{conversation['id']}", params={"fields": "messages"}).json()[
        "messages"
    ]["data"]
    details = graph.get(f"/{listed['id']}", params={"fields": "message"}).json()
    assert details["message"] == "lost answer"


def test_a_public_reply_is_among_the_comment_replies(graph):
    reply = graph.post("/17900000000000456/replies", data={"message": "Sent! Check your DMs"})
    replies = graph.get(
        "/17900000000000456/replies", params={"fields": "id,text,timestamp,from"}
    ).json()["data"]
    assert replies == [
        {
            "id": reply.json()["id"],
            "text": "Sent! Check your DMs",
            "timestamp": replies[0]["timestamp"],
            "from": {"id": PAGE, "username": "acme.studio"},
        }
    ]


def test_the_conversations_api_limit_is_enforced_per_account(graph, control):
    control.set_limits(conversations_per_second=2)
    codes = [
        graph.get(f"/{PAGE}/conversations", params={"user_id": PERSON}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 400]
    assert control.stats()["violations"]["by_kind"] == {"conversations_per_second": 1}
    time.sleep(1.05)
    assert graph.get(f"/{PAGE}/conversations", params={"user_id": PERSON}).status_code == 200


def test_a_fault_with_a_probability_hits_about_that_share(graph, control):
    control.add_fault("conversations", status=500, times=None, probability=0.3, seed=7)
    codes = [
        graph.get(f"/{PAGE}/conversations", params={"user_id": PERSON}).status_code
        for _ in range(200)
    ]
    assert 40 <= codes.count(500) <= 80
    assert set(codes) == {200, 500}

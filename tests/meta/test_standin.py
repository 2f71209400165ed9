"""The Graph API stand-in (meta/standin): endpoints, Meta-shaped errors, faults, limits, control."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from meta.standin import StandIn, StandInControl
from meta.standin.state import fake_commenter_id

TOKEN = "EAAtesttoken123"
PAGE = "17841400000000001"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Graph:
    """A tiny Graph client for the tests: every call has a timeout and the test token."""

    def __init__(self, url: str, token: str | None = TOKEN, version: str = "/v24.0") -> None:
        self.base = url + version
        self.token = token
        self.session = requests.Session()

    def call(self, method: str, path: str, timeout: float = 5.0, **kwargs: Any):
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(
            method, self.base + path, headers=headers, timeout=timeout, **kwargs
        )

    def post(self, path: str, **kwargs: Any):
        return self.call("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any):
        return self.call("GET", path, **kwargs)

    def private_reply(self, comment_id: str, text: str = "Here is the link", **kwargs: Any):
        body = {"recipient": {"comment_id": comment_id}, "message": {"text": text}}
        return self.post(f"/{PAGE}/messages", json=body, **kwargs)

    def send(self, recipient: str, message: dict[str, Any], **kwargs: Any):
        body = {"recipient": {"id": recipient}, "message": message}
        return self.post(f"/{PAGE}/messages", json=body, **kwargs)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standin") / "requests.jsonl"


@pytest.fixture(scope="module")
def standin(log_path: Path):
    server = StandIn(host="127.0.0.1", port=0, log_file=log_path).start()
    yield server
    server.stop()


@pytest.fixture
def control(standin: StandIn):
    ctl = StandInControl(standin.url)
    ctl.reset()
    yield ctl
    ctl.close()


@pytest.fixture
def graph(standin: StandIn, control: StandInControl) -> Graph:
    return Graph(standin.url)


def assert_meta_error(
    response: requests.Response, code: int, subcode: int | None = None, status: int = 400
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error.get("error_subcode") == subcode
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    assert isinstance(error["is_transient"], bool)
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,}", error["fbtrace_id"])
    return error


# --- server basics ------------------------------------------------------------------------------
def test_url_points_at_a_listening_server(standin: StandIn, control: StandInControl) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", standin.url)
    assert standin.port > 0
    assert control.health() is True


def test_context_manager_and_stop_close_keep_alive_connections() -> None:
    with StandIn(port=0) as server:
        session = requests.Session()
        ok = session.get(server.url + "/_standin/health", timeout=5)
        assert ok.json() == {"ok": True}
        url = server.url
    # The pooled keep-alive connection must not be answered any more after stop().
    with pytest.raises(requests.ConnectionError):
        session.get(url + "/_standin/health", timeout=2)


# --- comment replies ---------------------------------------------------------------------------
def test_comment_reply_accepts_form_json_and_query(graph: Graph, control: StandInControl) -> None:
    ids = [
        graph.post("/1790001/replies", data={"message": "Thanks!"}).json()["id"],
        graph.post("/1790001/replies", json={"message": "Thanks!"}).json()["id"],
        graph.post("/1790001/replies", params={"message": "Thanks!"}).json()["id"],
    ]
    assert all(re.fullmatch(r"\d{15,}", i) for i in ids)
    assert len(set(ids)) == 3

    logged = control.requests(endpoint="comment_reply")
    assert [e["node"] for e in logged] == ["1790001"] * 3
    assert logged[0]["body"] == {"message": "Thanks!"}
    assert logged[2]["query"] == {"message": "Thanks!"}
    assert logged[0]["token"] == "EAAt…"
    assert logged[0]["method"] == "POST"
    assert logged[0]["path"] == "/v24.0/1790001/replies"
    assert logged[0]["status"] == 200
    assert logged[0]["response"] == {"id": ids[0]}
    assert isinstance(logged[0]["time"], float)
    assert [e["seq"] for e in logged] == sorted(e["seq"] for e in logged)


@pytest.mark.parametrize("body", [{}, {"message": ""}, {"message": "   "}])
def test_comment_reply_without_message_is_code_100(graph: Graph, body: dict[str, str]) -> None:
    error = assert_meta_error(graph.post("/1790002/replies", data=body), 100)
    assert error["message"] == "(#100) The parameter message is required"
    assert error["is_transient"] is False
    assert error["type"] == "OAuthException"


# --- private replies ---------------------------------------------------------------------------
def test_private_reply_once_per_comment(graph: Graph, control: StandInControl) -> None:
    control.register_comment("1790010", "848067418322071")
    first = graph.private_reply("1790010")
    assert first.status_code == 200
    assert first.json()["recipient_id"] == "848067418322071"
    assert first.json()["message_id"].startswith("aWdfZAG")

    second = graph.private_reply("1790010", text="again")
    error = assert_meta_error(second, 10, 2534025)
    assert "private reply" in error["message"]

    stats = control.stats()
    assert stats["endpoints"]["private_reply"] == 2
    assert stats["errors"]["private_reply"] == 1
    assert stats["duplicates"]["private_replies"] == 1
    assert control.comments()["private_replied"]["1790010"] == first.json()["message_id"]


def test_private_reply_unregistered_commenter_gets_a_deterministic_id(graph: Graph) -> None:
    answer = graph.private_reply("1790011").json()
    assert answer["recipient_id"] == fake_commenter_id("1790011")
    assert re.fullmatch(r"\d{16}", answer["recipient_id"])
    assert answer["recipient_id"] != graph.private_reply("1790012").json()["recipient_id"]


def test_private_reply_form_encoded_json_strings(graph: Graph, control: StandInControl) -> None:
    form = {
        "recipient": json.dumps({"comment_id": "1790013"}),
        "message": json.dumps({"text": "hi"}),
    }
    assert graph.post(f"/{PAGE}/messages", data=form).status_code == 200
    logged = control.wait_for("private_reply", 1)
    assert logged[0]["body"]["recipient"] == {"comment_id": "1790013"}
    assert logged[0]["body"]["message"] == {"text": "hi"}


def test_private_reply_with_quick_replies_is_accepted(graph: Graph) -> None:
    message = {
        "text": "Want the link?",
        "quick_replies": [{"content_type": "text", "title": "Yes please", "payload": "YES"}],
    }
    body = {"recipient": {"comment_id": "1790014"}, "message": message}
    assert graph.post(f"/{PAGE}/messages", json=body).status_code == 200


# --- Send API ----------------------------------------------------------------------------------
def test_send_message_answers_recipient_and_unique_mids(
    graph: Graph, control: StandInControl
) -> None:
    mids = set()
    for i in range(5):
        response = graph.send("6201", {"text": f"hello {i}"})
        assert response.status_code == 200
        assert response.json()["recipient_id"] == "6201"
        mids.add(response.json()["message_id"])
    assert len(mids) == 5
    assert all(re.fullmatch(r"aWdfZAG[A-Za-z0-9_-]+", m) for m in mids)
    assert control.stats()["endpoints"] == {"send_message": 5}
    assert control.stats()["duplicates"]["send_messages"] == 0


def test_identical_messages_count_as_duplicates(graph: Graph, control: StandInControl) -> None:
    graph.send("6202", {"text": "same"})
    graph.send("6202", {"text": "same"})
    graph.send("6203", {"text": "same"})  # another person: not a duplicate
    graph.send("6202", {"text": "different"})
    assert control.stats()["duplicates"]["send_messages"] == 1


def test_send_me_messages_counts_under_the_token_account(
    graph: Graph, control: StandInControl
) -> None:
    control.register_account(TOKEN, id="17841499999", user_id="27000000001", username="shop")
    body = {"recipient": {"id": "6204"}, "message": {"text": "hi"}}
    assert graph.post("/me/messages", json=body).status_code == 200
    entry = control.requests(endpoint="send_message")[0]
    assert entry["node"] == "me"
    assert entry["sender"] == "17841499999"
    assert control.stats()["nodes"] == {"17841499999": {"send_message": 1}}


def test_send_templates_and_attachments(graph: Graph) -> None:
    button = {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": "Pick one",
                "buttons": [
                    {"type": "web_url", "url": "https://example.com", "title": "Open"},
                    {"type": "postback", "payload": "MORE", "title": "More"},
                ],
            },
        }
    }
    generic = {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"title": "Shoe"}]},
        }
    }
    image = {"attachment": {"type": "image", "payload": {"url": "https://example.com/a.png"}}}
    for message in (button, generic, image):
        assert graph.send("6205", message).status_code == 200, message


def test_sender_action(graph: Graph, control: StandInControl) -> None:
    body = {"recipient": {"id": "6206"}, "sender_action": "typing_on"}
    response = graph.post(f"/{PAGE}/messages", json=body)
    assert response.status_code == 200
    assert response.json() == {"recipient_id": "6206"}
    assert control.requests()[-1]["endpoint"] == "sender_action"

    bad = graph.post(f"/{PAGE}/messages", json={"recipient": {"id": "6206"}, "sender_action": "x"})
    assert_meta_error(bad, 100)


LONG = "x" * 1001
QUICK = [{"content_type": "text", "title": f"opt {i}", "payload": str(i)} for i in range(14)]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"message": {"text": "hi"}}, "recipient"),
        ({"recipient": {"id": "6207"}}, "message"),
        ({"recipient": {}, "message": {"text": "hi"}}, "recipient"),
        ({"recipient": {"id": "6207"}, "message": {}}, "empty"),
        ({"recipient": {"id": "6207"}, "message": {"text": LONG}}, "1000"),
        ({"recipient": {"id": "6207"}, "message": {"text": "a", "quick_replies": QUICK}}, "13"),
        (
            {
                "recipient": {"id": "6207"},
                "message": {
                    "text": "a",
                    "quick_replies": [{"content_type": "text", "title": "t" * 21, "payload": "p"}],
                },
            },
            "20",
        ),
        (
            {
                "recipient": {"id": "6207"},
                "message": {"attachment": {"type": "image", "payload": {}}},
            },
            "url",
        ),
        (
            {
                "recipient": {"id": "6207"},
                "message": {
                    "attachment": {
                        "type": "template",
                        "payload": {"template_type": "button", "text": "t" * 641, "buttons": []},
                    }
                },
            },
            "640",
        ),
    ],
)
def test_send_validation_is_code_100(graph: Graph, body: dict[str, Any], needle: str) -> None:
    error = assert_meta_error(graph.post(f"/{PAGE}/messages", json=body), 100)
    assert needle in error["message"]


def test_limits_of_valid_messages_are_accepted(graph: Graph) -> None:
    assert graph.send("6208", {"text": "x" * 1000}).status_code == 200
    quick = [{"content_type": "text", "title": "t" * 20, "payload": str(i)} for i in range(13)]
    assert graph.send("6208", {"text": "pick", "quick_replies": quick}).status_code == 200


def test_invalid_private_reply_leaves_the_comment_unused(graph: Graph) -> None:
    assert_meta_error(graph.private_reply("1790015", text="x" * 1001), 100)
    assert graph.private_reply("1790015").status_code == 200


def test_invalid_json_body_is_code_100(graph: Graph) -> None:
    response = graph.post(
        f"/{PAGE}/messages", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_meta_error(response, 100)


# --- auth --------------------------------------------------------------------------------------
def test_missing_token_is_2500(standin: StandIn, control: StandInControl) -> None:
    anonymous = Graph(standin.url, token=None)
    error = assert_meta_error(anonymous.private_reply("1790020"), 2500)
    assert error["message"] == (
        "An active access token must be used to query information about the current user."
    )
    assert error["type"] == "OAuthException"
    assert "error_subcode" not in error
    # No side effect: the comment can still get its private reply.
    assert Graph(standin.url).private_reply("1790020").status_code == 200
    assert control.requests()[0]["token"] is None


def test_token_in_query_or_form(standin: StandIn, control: StandInControl) -> None:
    anonymous = Graph(standin.url, token=None)
    assert anonymous.get("/me", params={"access_token": TOKEN}).status_code == 200
    form = {"message": "hi", "access_token": TOKEN}
    assert anonymous.post("/1790021/replies", data=form).status_code == 200
    entries = control.requests()
    assert entries[0]["query"]["access_token"] == "EAAt…"  # masked in the log too
    assert entries[1]["body"]["access_token"] == "EAAt…"


def test_revoked_token_is_190_460(standin: StandIn, control: StandInControl) -> None:
    control.revoke_token("EAArevoked")
    revoked = Graph(standin.url, token="EAArevoked")
    for response in (revoked.get("/me"), revoked.send("6210", {"text": "hi"})):
        error = assert_meta_error(response, 190, 460)
        assert error["type"] == "OAuthException"
    assert Graph(standin.url).get("/me").status_code == 200


# --- reads ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["/v24.0", "/v21.0", ""])
def test_version_prefix_is_ignored(standin: StandIn, control: StandInControl, version: str) -> None:
    assert Graph(standin.url, version=version).get("/me").status_code == 200
    assert control.requests()[-1]["endpoint"] == "me"


def test_me_registered_and_synthetic(standin: StandIn, control: StandInControl) -> None:
    control.register_account(TOKEN, id="17841411111", user_id="25000000002", username="acme")
    me = Graph(standin.url).get("/me", params={"fields": "user_id,username"}).json()
    assert me == {"id": "17841411111", "user_id": "25000000002", "username": "acme"}

    other = Graph(standin.url, token="EAAother").get("/me").json()
    assert set(other) == {"id", "user_id", "username"}
    assert other == Graph(standin.url, token="EAAother").get("/me").json()
    assert other["id"] != "17841411111"


def test_profile_defaults_and_control(graph: Graph, control: StandInControl) -> None:
    fields = (
        "name,username,profile_pic,follower_count,is_user_follow_business,is_business_follow_user"
    )
    # User Profile API: no profile before the person messaged the account or tapped a button.
    refused = assert_meta_error(graph.get("/6301", params={"fields": fields}), 230)
    assert refused["message"] == "(#230) User consent is required to access user profile"
    control.record_consent("6301")
    default = graph.get("/6301", params={"fields": fields}).json()
    assert default["id"] == "6301"
    assert default["username"] == "user_6301"
    assert default["follower_count"] == 0
    assert default["is_user_follow_business"] is False
    assert default["is_business_follow_user"] is False
    assert set(default) == {"id", *fields.split(",")}

    control.set_profile("6301", username="anna", is_user_follow_business=True, follower_count=42)
    only = graph.get("/6301", params={"fields": "username,is_user_follow_business"}).json()
    assert only == {"username": "anna", "is_user_follow_business": True, "id": "6301"}
    assert control.requests()[-1]["endpoint"] == "profile"


def test_profile_unknown_field_is_code_100(graph: Graph, control: StandInControl) -> None:
    control.record_consent("6302")
    assert_meta_error(graph.get("/6302", params={"fields": "name,shoe_size"}), 100)


def test_subscribed_apps_on_a_page_take_page_fields(graph: Graph, control: StandInControl) -> None:
    # Page subscribed_apps: Page fields only; Instagram names are refused with error 100.
    refused = assert_meta_error(
        graph.post(f"/{PAGE}/subscribed_apps", params={"subscribed_fields": "feed,comments"}), 100
    )
    assert refused["message"].startswith("(#100) Param subscribed_fields[1] must be one of {feed,")
    assert refused["message"].endswith('- got "comments"')
    assert control.subscriptions() == {}

    fields = "feed,messages"
    assert graph.post(f"/{PAGE}/subscribed_apps", params={"subscribed_fields": fields}).json() == {
        "success": True
    }
    (listed,) = graph.get(f"/{PAGE}/subscribed_apps").json()["data"]
    assert listed["subscribed_fields"] == ["feed", "messages"]
    assert listed["id"] == "demo-app-id" and listed["name"]
    assert control.subscriptions() == {PAGE: fields.split(",")}
    assert graph.call("DELETE", f"/{PAGE}/subscribed_apps").json() == {"success": True}
    assert graph.get(f"/{PAGE}/subscribed_apps").json() == {"data": []}
    assert_meta_error(graph.post(f"/{PAGE}/subscribed_apps"), 100)
    assert control.stats()["endpoints"]["subscribed_apps"] == 6


def test_subscribed_apps_with_instagram_login_take_instagram_fields(
    standin: StandIn, control: StandInControl
) -> None:
    ig = Graph(standin.url, TOKEN, version="/ig/v24.0")
    assert_meta_error(ig.post("/me/subscribed_apps", params={"subscribed_fields": "feed"}), 100)
    fields = "comments,messages"
    assert ig.post("/me/subscribed_apps", params={"subscribed_fields": fields}).json() == {
        "success": True
    }
    assert ig.get("/me/subscribed_apps").json()["data"][0]["subscribed_fields"] == [
        "comments",
        "messages",
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/1784/media_insights_x"), ("POST", "/me"), ("GET", "/abc"), ("PUT", "/1/messages")],
)
def test_unknown_paths_are_100_33(graph: Graph, method: str, path: str) -> None:
    error = assert_meta_error(graph.call(method, path), 100, 33)
    assert error["message"].startswith(f"Unsupported {method.lower()} request")


# --- faults ------------------------------------------------------------------------------------
def test_error_fault_answers_without_side_effect(graph: Graph, control: StandInControl) -> None:
    window = {"code": 10, "error_subcode": 2534022, "message": "(#10) outside window"}
    fault = control.add_fault("private_reply", error=window)
    assert fault["times"] == 1
    error = assert_meta_error(graph.private_reply("1790030"), 10, 2534022)
    assert error["message"] == "(#10) outside window"
    assert error["is_transient"] is False

    entry = control.requests()[-1]
    assert entry["status"] == 400
    assert entry["response"]["error"]["error_subcode"] == 2534022
    assert entry["fault"] == fault["id"]
    # Consumed, and the comment's private reply was not used by the failed call.
    assert control.faults() == []
    assert graph.private_reply("1790030").status_code == 200


def test_faults_are_consumed_in_order_and_filtered(graph: Graph, control: StandInControl) -> None:
    control.add_fault("send_message", node="6401", error={"code": 551}, times=2)
    control.add_fault("send_message", error={"code": 10, "error_subcode": 2534022})
    assert graph.send("6402", {"text": "a"}).json()["error"]["code"] == 10  # second fault
    assert graph.send("6401", {"text": "a"}).json()["error"]["code"] == 551
    assert graph.send("6401", {"text": "b"}).json()["error"]["code"] == 551
    assert graph.send("6401", {"text": "c"}).status_code == 200
    # Faults on another endpoint do not touch this one.
    control.add_fault("comment_reply", status=500)
    assert graph.send("6401", {"text": "d"}).status_code == 200
    assert [f["endpoint"] for f in control.faults()] == ["comment_reply"]


def test_fault_until_cleared(graph: Graph, control: StandInControl) -> None:
    control.add_fault("any", status=500, times=None)
    for _ in range(3):
        assert graph.get("/me").status_code == 500
    assert control.faults()[0]["used"] == 3
    control.clear_faults()
    assert graph.get("/me").status_code == 200


def test_bare_5xx_fault(graph: Graph, control: StandInControl) -> None:
    control.add_fault("comment_reply", status=503)
    error = assert_meta_error(graph.post("/1790031/replies", data={"message": "x"}), 1, None, 503)
    assert error["message"] == "An unknown error occurred"
    assert error["is_transient"] is True


def test_delay_fault_applies_the_side_effect(graph: Graph, control: StandInControl) -> None:
    control.add_fault("private_reply", delay=0.6)
    with pytest.raises(requests.Timeout):
        graph.private_reply("1790032", timeout=0.2)
    # Meta got the first call: a retry is refused as a second private reply.
    assert_meta_error(graph.private_reply("1790032"), 10, 2534025)
    first = control.requests(endpoint="private_reply")[0]
    assert first["status"] == 200
    assert first["fault"] is not None


def test_delay_fault_then_normal_answer(graph: Graph, control: StandInControl) -> None:
    control.add_fault("send_message", delay=0.3)
    started = time.monotonic()
    response = graph.send("6403", {"text": "slow"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_drop_fault_closes_without_side_effect(graph: Graph, control: StandInControl) -> None:
    control.add_fault("private_reply", drop=True)
    with pytest.raises(requests.ConnectionError):
        graph.private_reply("1790033")
    entry = control.requests()[-1]
    assert entry["dropped"] is True
    assert entry["status"] is None
    assert graph.private_reply("1790033").status_code == 200
    assert control.stats()["errors"]["private_reply"] == 1


def test_drop_fault_with_apply(graph: Graph, control: StandInControl) -> None:
    control.add_fault("private_reply", drop=True, apply=True)
    with pytest.raises(requests.ConnectionError):
        graph.private_reply("1790034")
    assert_meta_error(graph.private_reply("1790034"), 10, 2534025)


def test_fault_control_validation(control: StandInControl) -> None:
    with pytest.raises(requests.HTTPError, match="endpoint"):
        control.add_fault("privat_reply", status=500)
    with pytest.raises(requests.HTTPError, match="at least one"):
        control.add_fault("private_reply")
    with pytest.raises(requests.HTTPError, match="times"):
        control.add_fault("private_reply", status=500, times=0)


# --- limits and usage headers ----------------------------------------------------------------
def _usage(response: requests.Response) -> tuple[dict[str, Any], dict[str, Any]]:
    buc = json.loads(response.headers["X-Business-Use-Case-Usage"])
    app = json.loads(response.headers["X-App-Usage"])
    return buc, app


def test_usage_headers_without_limits(graph: Graph) -> None:
    for response in (
        graph.send("6501", {"text": "a"}),
        graph.post("/1790040/replies", data={"message": "a"}),
        graph.post(f"/{PAGE}/messages", json={"message": {"text": "no recipient"}}),
    ):
        buc, app = _usage(response)
        (entries,) = buc.values()
        assert entries[0]["type"] == "instagram"
        assert entries[0]["call_count"] == 0
        assert entries[0]["estimated_time_to_regain_access"] == 0
        assert app == {"call_count": 0, "total_cputime": 1, "total_time": 1}
    assert PAGE in _usage(graph.send("6501", {"text": "b"}))[0]
    assert "X-App-Usage" not in graph.get("/me").headers


def test_send_per_second_limit(graph: Graph, control: StandInControl) -> None:
    assert control.set_limits(send_per_second=3) == {
        "send_per_second": 3,
        "private_replies_per_hour": None,
        "conversations_per_second": None,
    }
    statuses = [graph.send("6502", {"text": str(i)}).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    error = assert_meta_error(graph.send("6502", {"text": "4"}), 613)
    assert "rate limit" in error["message"]
    # Another account has its own window.
    other = {"recipient": {"id": "6502"}, "message": {"text": "x"}}
    assert graph.post("/99999/messages", json=other).status_code == 200

    stats = control.stats()
    assert stats["violations"]["total"] == 1
    assert stats["violations"]["per_node"] == {PAGE: 1}
    assert stats["violations"]["by_kind"] == {"send_per_second": 1}

    time.sleep(1.05)  # the 1 s window slides
    assert graph.send("6502", {"text": "5"}).status_code == 200


def test_private_replies_per_hour_limit(graph: Graph, control: StandInControl) -> None:
    control.set_limits(private_replies_per_hour=4)
    percents = []
    for i in range(4):
        response = graph.private_reply(f"17900500{i}")
        assert response.status_code == 200
        buc, app = _usage(response)
        percents.append(buc[PAGE][0]["call_count"])
        assert app["call_count"] == percents[-1]
    assert percents == [25, 50, 75, 100]
    assert buc[PAGE][0]["estimated_time_to_regain_access"] > 0

    error = assert_meta_error(graph.private_reply("179005009"), 80002)
    assert error["type"] == "OAuthException"
    # Send API calls are not part of the hourly private reply budget.
    assert graph.send("6503", {"text": "hi"}).status_code == 200
    assert control.stats()["violations"]["by_kind"] == {"private_replies_per_hour": 1}

    control.set_limits(private_replies_per_hour=None)
    assert control.limits() == {
        "send_per_second": None,
        "private_replies_per_hour": None,
        "conversations_per_second": None,
    }
    assert graph.private_reply("179005009").status_code == 200


def test_set_limits_validation(control: StandInControl) -> None:
    with pytest.raises(requests.HTTPError):
        control.set_limits(send_per_second=0)
    with pytest.raises(requests.HTTPError):
        control._call("POST", "limits", json={"per_minute": 1})


# --- control API -----------------------------------------------------------------------------
def test_requests_filters_and_clear(graph: Graph, control: StandInControl) -> None:
    graph.get("/me")
    mark = control.last_seq()
    graph.send("6601", {"text": "a"})
    graph.private_reply("1790060")
    after = control.requests(since=mark)
    assert [e["endpoint"] for e in after] == ["send_message", "private_reply"]
    assert [e["endpoint"] for e in control.requests(endpoint="private_reply")] == ["private_reply"]
    assert len(control.requests(limit=1)) == 1
    control.clear()
    assert control.requests() == []
    graph.get("/me")
    assert control.requests()[0]["seq"] > mark  # seq keeps growing across clears


def test_wait_for(graph: Graph, control: StandInControl) -> None:
    def later() -> None:
        time.sleep(0.2)
        graph.send("6602", {"text": "a"})
        graph.send("6602", {"text": "b"})

    thread = threading.Thread(target=later)
    thread.start()
    found = control.wait_for("send_message", 2, timeout=5)
    thread.join()
    assert len(found) == 2
    with pytest.raises(TimeoutError, match=r"received 0 'private_reply'.*expected 1"):
        control.wait_for("private_reply", 1, timeout=0.2)


def test_reset_forgets_everything(graph: Graph, control: StandInControl) -> None:
    control.set_limits(send_per_second=1)
    control.add_fault("me", status=500, times=None)
    control.revoke_token(TOKEN)
    control.set_profile("6603", username="zed")
    graph.private_reply("1790061")
    control.reset()
    assert control.requests() == []
    assert control.faults() == []
    assert control.limits() == {
        "send_per_second": None,
        "private_replies_per_hour": None,
        "conversations_per_second": None,
    }
    assert control.stats()["total"] == 0
    assert graph.get("/me").status_code == 200
    assert_meta_error(graph.get("/6603", params={"fields": "username"}), 230)  # consent gone
    control.record_consent("6603")
    assert graph.get("/6603", params={"fields": "username"}).json()["username"] == "user_6603"
    assert graph.private_reply("1790061").status_code == 200


def test_stats_per_endpoint_and_node(graph: Graph, control: StandInControl) -> None:
    graph.send("6604", {"text": "a"})
    graph.private_reply("1790062")
    graph.post("/99998/messages", json={"recipient": {"id": "6604"}, "message": {"text": "a"}})
    stats = control.stats()
    assert stats["total"] == 3
    assert stats["endpoints"] == {"send_message": 2, "private_reply": 1}
    assert stats["nodes"][PAGE] == {"send_message": 1, "private_reply": 1}
    assert stats["nodes"]["99998"] == {"send_message": 1}


def test_unknown_control_endpoint_and_bad_json(standin: StandIn, control: StandInControl) -> None:
    response = requests.get(standin.url + "/_standin/nope", timeout=5)
    assert response.status_code == 404
    assert "GET /_standin/requests" in response.json()["endpoints"]
    bad = requests.post(standin.url + "/_standin/faults", data=b"{", timeout=5)
    assert bad.status_code == 400
    assert "JSON" in bad.json()["error"]


def test_html_page(standin: StandIn, graph: Graph) -> None:
    graph.post("/1790063/replies", data={"message": "<b>hello</b>"})
    page = requests.get(standin.url + "/_standin/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<meta http-equiv="refresh" content="2">' in page.text
    assert "/v24.0/1790063/replies" in page.text
    assert "&lt;b&gt;hello" in page.text  # escaped
    assert "<b>hello" not in page.text


def test_log_file_has_every_request(graph: Graph, log_path: Path) -> None:
    graph.send("6605", {"text": "logged"})
    graph.get("/me", params={"access_token": TOKEN})
    lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    send = [
        e
        for e in lines
        if e["body"] == {"recipient": {"id": "6605"}, "message": {"text": "logged"}}
    ]
    assert len(send) == 1
    assert send[0]["endpoint"] == "send_message"
    assert send[0]["status"] == 200
    assert TOKEN not in log_path.read_text(encoding="utf-8")


# --- concurrency -------------------------------------------------------------------------------
def test_concurrent_private_replies_only_one_wins(
    standin: StandIn, control: StandInControl
) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        status = Graph(standin.url).private_reply("1790070").status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [400] * 15
    assert control.stats()["duplicates"]["private_replies"] == 15


def test_many_concurrent_sends_get_unique_mids(standin: StandIn, control: StandInControl) -> None:
    mids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        client = Graph(standin.url)
        for i in range(50):
            mid = client.send(f"67{n}", {"text": str(i)}).json()["message_id"]
            with lock:
                mids.append(mid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mids) == len(set(mids)) == 400
    assert control.stats()["endpoints"]["send_message"] == 400


# --- command line --------------------------------------------------------------------------------
def test_command_line(tmp_path: Path) -> None:
    log_file = tmp_path / "cli.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "meta.standin", "--port", "0", "--log-file", str(log_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        url = match.group(0)
        response = requests.get(url + "/v24.0/me", params={"access_token": TOKEN}, timeout=5)
        assert response.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    entries = [json.loads(x) for x in log_file.read_text(encoding="utf-8").splitlines()]
    assert [e["endpoint"] for e in entries] == ["me"]


def test_registered_media_answers_its_publish_time(graph: Graph, control: StandInControl) -> None:
    control.register_media("18000000000000099", timestamp="2026-11-25T10:00:00+0000")
    response = graph.get("/18000000000000099", params={"fields": "timestamp"})
    assert response.status_code == 200
    assert response.json() == {"id": "18000000000000099", "timestamp": "2026-11-25T10:00:00+0000"}

import json
import socket
import threading
from collections.abc import Iterator
from http.client import RemoteDisconnected
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ProtocolError

from meta import client as client_module
from meta.client import GraphClient, GraphResult, Outcome
from meta.errors import Reason
from meta.usage import Usage

BASE = "https://graph.instagram.com/v22.0"
TOKEN = "IGAAsecret-token-value"
ACCOUNT = "17841430541631416"
COMMENT = "17867301270523379"
IGSID = "848067418322071"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def graph() -> GraphClient:
    return GraphClient(BASE, TOKEN)


def meta_error(code, subcode=None, *, message="(#10) Error", transient=False, trace="AbCdEf"):
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": transient,
        "fbtrace_id": trace,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def last_body(rsps: responses.RequestsMock) -> dict:
    return json.loads(rsps.calls[-1].request.body)


# -- successful calls ------------------------------------------------------------------------


def test_reply_to_comment(rsps, graph):
    rsps.post(
        f"{BASE}/{COMMENT}/replies",
        json={"id": "17900000000000001"},
        match=[
            matchers.header_matcher(AUTH),
            matchers.urlencoded_params_matcher({"message": "Sent you a DM!"}),
        ],
    )
    result = graph.reply_to_comment(COMMENT, "Sent you a DM!")
    assert result.ok
    assert result.outcome is Outcome.SENT
    assert result.response_id == "17900000000000001"
    assert result.http_status == 200
    assert result.reason is None
    assert not result.retryable
    assert result.request_summary == f"POST /{COMMENT}/replies"
    assert result.data == {"id": "17900000000000001"}
    assert result.duration_ms >= 0
    assert '"id"' in result.response_excerpt


def test_send_private_reply(rsps, graph):
    message = {"text": "Here is the link: https://example.com"}
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        json={"recipient_id": IGSID, "message_id": "aWdfZAG1faXRlbTox"},
        match=[
            matchers.header_matcher(AUTH),
            matchers.json_params_matcher(
                {"recipient": {"comment_id": COMMENT}, "message": message}, strict_match=True
            ),
        ],
    )
    result = graph.send_private_reply(ACCOUNT, COMMENT, message)
    assert result.ok
    assert result.response_id == "aWdfZAG1faXRlbTox"
    assert result.recipient_id == IGSID
    assert result.request_summary == f"POST /{ACCOUNT}/messages"
    assert rsps.calls[0].request.headers["Content-Type"] == "application/json"


def test_send_message(rsps, graph):
    message = {
        "text": "Hi!",
        "quick_replies": [{"content_type": "text", "title": "Yes", "payload": "Y"}],
    }
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        json={"recipient_id": IGSID, "message_id": "mid.1"},
        match=[
            matchers.header_matcher(AUTH),
            matchers.json_params_matcher(
                {"recipient": {"id": IGSID}, "messaging_type": "RESPONSE", "message": message},
                strict_match=True,
            ),
        ],
    )
    result = graph.send_message(ACCOUNT, IGSID, message)
    assert result.ok
    assert (result.response_id, result.recipient_id) == ("mid.1", IGSID)


def test_send_message_with_tag(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", json={"recipient_id": IGSID, "message_id": "m"})
    graph.send_message(
        ACCOUNT, IGSID, {"text": "A human here"}, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT"
    )
    assert last_body(rsps) == {
        "recipient": {"id": IGSID},
        "messaging_type": "MESSAGE_TAG",
        "message": {"text": "A human here"},
        "tag": "HUMAN_AGENT",
    }


def test_get_profile(rsps, graph):
    fields = "name,username,profile_pic,follower_count,is_user_follow_business"
    profile = {"name": "W", "username": "m_waqarsikandar", "is_user_follow_business": True}
    rsps.get(
        f"{BASE}/{IGSID}",
        json={**profile, "id": IGSID},
        match=[matchers.header_matcher(AUTH), matchers.query_param_matcher({"fields": fields})],
    )
    result = graph.get(f"/{IGSID}", params={"fields": fields})
    assert result.ok
    assert result.response_id == IGSID
    assert result.data["is_user_follow_business"] is True
    assert result.request_summary == f"GET /{IGSID}?fields={fields}"


def test_get_me(rsps, graph):
    rsps.get(f"{BASE}/me", json={"id": "1", "user_id": ACCOUNT, "username": "acme"})
    result = graph.get("/me", params={"fields": "user_id,username"})
    assert result.ok
    assert result.data["user_id"] == ACCOUNT


def test_post_generic_with_query_style_form(rsps, graph):
    rsps.post(f"{BASE}/me/subscribed_apps", json={"success": True})
    result = graph.post("/me/subscribed_apps", data={"subscribed_fields": "comments,messages"})
    assert result.ok
    assert result.response_id == ""
    assert result.data == {"success": True}


def test_delete(rsps, graph):
    rsps.delete(f"{BASE}/{COMMENT}", json={"success": True})
    assert graph.delete(f"/{COMMENT}").ok


@pytest.mark.parametrize("base", [BASE, BASE + "/"])
@pytest.mark.parametrize("path", ["/me", "me"])
def test_base_url_with_or_without_trailing_slash(rsps, base, path):
    rsps.get(f"{BASE}/me", json={"id": "1"})
    result = GraphClient(base, TOKEN).get(path)
    assert result.ok
    assert rsps.calls[0].request.url == f"{BASE}/me"
    assert result.request_summary == "GET /me"


def test_sent_without_id_keeps_data(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", json={"recipient_id": IGSID})
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.SENT
    assert result.response_id == ""
    assert result.data == {"recipient_id": IGSID}


def test_sent_with_non_json_2xx_body(rsps, graph):
    rsps.post(f"{BASE}/{COMMENT}/replies", body="true", content_type="text/plain")
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.outcome is Outcome.SENT
    assert result.data == {}
    assert result.response_excerpt == "true"


def test_token_never_in_summary_or_url(rsps, graph):
    rsps.get(f"{BASE}/{IGSID}", json={"id": IGSID})
    result = graph.get(f"/{IGSID}", params={"fields": "name", "access_token": TOKEN})
    assert TOKEN not in result.request_summary
    assert "access_token=***" in result.request_summary
    assert TOKEN not in repr(graph)


def test_token_in_response_body_is_redacted_from_excerpt(rsps, graph):
    rsps.get(f"{BASE}/refresh_access_token", json={"access_token": "NEWTOKEN", "expires_in": 5})
    result = graph.get("/refresh_access_token", params={"grant_type": "ig_refresh_token"})
    assert result.data["access_token"] == "NEWTOKEN"  # the caller still gets it
    assert "NEWTOKEN" not in result.response_excerpt


def test_response_excerpt_is_capped(rsps, graph):
    rsps.get(f"{BASE}/me", json={"id": "1", "blob": "x" * 5000})
    result = graph.get("/me")
    assert len(result.response_excerpt) == 2000


def test_usage_headers_are_parsed_on_success(rsps, graph):
    rsps.post(
        f"{BASE}/{COMMENT}/replies",
        json={"id": "1"},
        headers={
            "X-App-Usage": json.dumps({"call_count": 91, "total_cputime": 15, "total_time": 12}),
            "X-Business-Use-Case-Usage": json.dumps(
                {ACCOUNT: [{"type": "instagram", "call_count": 28, "total_cputime": 25,
                            "total_time": 25, "estimated_time_to_regain_access": 0}]}
            ),
        },
    )  # fmt: skip
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.usage == Usage(
        app_call_count=91, app_total_cputime=15, app_total_time=12, buc_max_percent=28
    )
    assert result.usage.max_percent == 91
    assert result.retry_after_seconds is None


def test_no_usage_headers(rsps, graph):
    rsps.get(f"{BASE}/me", json={"id": "1"})
    assert graph.get("/me").usage is None


# -- Meta's refusals -----------------------------------------------------------------------


def test_permission_error(rsps, graph):
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        status=403,
        json=meta_error(10, message="(#10) Application does not have permission for this action"),
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert not result.ok
    assert result.reason is Reason.PERMISSION_MISSING
    # No permission named and no subcode: this person or the account? Ambiguous (a breaker
    # decides), never an account hold on one refusal.
    assert result.ambiguous
    assert not result.account_problem
    assert result.missing_scope == ""
    assert not result.retryable
    assert result.code == 10
    assert result.subcode is None
    assert result.message == "(#10) Application does not have permission for this action"
    assert result.trace_id == "AbCdEf"
    assert result.http_status == 403


def test_code_230_names_pages_messaging(rsps, graph):
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        status=400,
        json=meta_error(
            230, message="(#230) Requires pages_messaging permission to manage the object"
        ),
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.reason is Reason.PERMISSION_MISSING
    assert result.account_problem and not result.ambiguous
    assert result.missing_scope == "pages_messaging"


def test_a_named_permission_is_carried(rsps, graph):
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        status=400,
        json=meta_error(
            200, message="(#200) Requires instagram_manage_messages permission to manage the object"
        ),
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.account_problem
    assert result.missing_scope == "instagram_manage_messages"


def test_window_expired(rsps, graph):
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        status=400,
        json=meta_error(
            10, 2534022, message="(#10) This message is sent outside of allowed window."
        ),
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.reason is Reason.WINDOW_EXPIRED
    assert (result.code, result.subcode) == (10, 2534022)
    assert not result.retryable
    assert not result.account_problem
    assert "outside of allowed window" in result.message


def test_already_replied(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=400, json=meta_error(10, 2534025))
    result = graph.send_private_reply(ACCOUNT, COMMENT, {"text": "hi"})
    assert result.reason is Reason.ALREADY_REPLIED


def test_token_invalid(rsps, graph):
    rsps.post(
        f"{BASE}/{COMMENT}/replies",
        status=401,
        json=meta_error(190, 463, message="Error validating access token: Session has expired"),
    )
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.reason is Reason.TOKEN_INVALID
    assert result.account_problem
    assert not result.retryable
    assert result.http_status == 401


def test_policy_block_pauses_account(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=400, json=meta_error(368))
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.reason is Reason.CONTENT_REJECTED
    assert result.pause_account


def test_throttled_with_usage_header_sets_retry_after(rsps, graph):
    buc = {ACCOUNT: [{"type": "instagram", "call_count": 100, "total_cputime": 40,
                      "total_time": 40, "estimated_time_to_regain_access": 7}]}  # fmt: skip
    rsps.post(
        f"{BASE}/{COMMENT}/replies",
        status=400,
        json=meta_error(80002, message="(#80002) There have been too many calls"),
        headers={"X-Business-Use-Case-Usage": json.dumps(buc)},
    )
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.reason is Reason.RATE_LIMITED
    assert result.retryable
    assert result.throttled
    assert result.retry_after_seconds == 7 * 60
    assert result.usage is not None
    assert result.usage.buc_max_percent == 100


def test_throttled_with_retry_after_header(rsps, graph):
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        status=400,
        json=meta_error(613),
        headers={"Retry-After": "30"},
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.throttled
    assert result.retry_after_seconds == 30.0


def test_throttled_without_any_wait(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=400, json=meta_error(4))
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.throttled
    assert result.retry_after_seconds is None


def test_http_429_without_graph_error_is_throttled(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=429, body="slow down")
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.reason is Reason.RATE_LIMITED
    assert result.throttled


def test_transient_flag(rsps, graph):
    rsps.post(
        f"{BASE}/{ACCOUNT}/messages",
        status=500,
        json=meta_error(2, message="An unexpected error has occurred.", transient=True),
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert result.reason is Reason.META_ERROR
    assert result.retryable
    assert not result.throttled
    assert result.code == 2


def test_unknown_code_marked_transient_is_retryable(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=400, json=meta_error(55555, transient=True))
    assert graph.send_message(ACCOUNT, IGSID, {"text": "hi"}).retryable


def test_non_json_502(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=502, body="<html>Bad Gateway</html>")
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert result.reason is Reason.META_ERROR
    assert result.retryable
    assert result.code is None
    assert result.data == {}
    assert "HTTP 502" in result.message
    assert result.response_excerpt == "<html>Bad Gateway</html>"


def test_non_json_4xx_is_not_retryable(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=404, body="Not Found")
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.reason is Reason.META_ERROR
    assert not result.retryable


def test_error_body_with_2xx_is_a_failure(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", status=200, json=meta_error(100, 2534014))
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert result.reason is Reason.RECIPIENT_INVALID


def test_string_codes_are_tolerated(rsps, graph):
    body = {
        "error": {"message": "m", "code": "190", "error_subcode": "460", "is_transient": "false"}
    }
    rsps.post(f"{BASE}/{COMMENT}/replies", status=400, json=body)
    result = graph.reply_to_comment(COMMENT, "x")
    assert (result.code, result.subcode) == (190, 460)
    assert result.reason is Reason.TOKEN_INVALID


# -- network failures ----------------------------------------------------------------------


def test_connect_timeout_is_failed_and_retryable(rsps, graph):
    rsps.post(f"{BASE}/{ACCOUNT}/messages", body=requests.exceptions.ConnectTimeout("slow"))
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert result.reason is Reason.META_ERROR
    assert "could not be reached" in result.message
    assert result.http_status is None
    assert result.request_summary == f"POST /{ACCOUNT}/messages"


def test_connection_refused_is_failed_and_retryable(rsps, graph):
    refused = requests.exceptions.ConnectionError(
        MaxRetryError(
            None,  # type: ignore[arg-type]
            f"{BASE}/{ACCOUNT}/messages",
            NewConnectionError(None, "Failed to establish a new connection: [Errno 111]"),  # type: ignore[arg-type]
        )
    )
    rsps.post(f"{BASE}/{ACCOUNT}/messages", body=refused)
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert "could not be reached" in result.message


def test_dns_failure_is_failed_and_retryable(rsps, graph):
    dns = requests.exceptions.ConnectionError(
        MaxRetryError(
            None,  # type: ignore[arg-type]
            BASE,
            NameResolutionError("graph.instagram.com", None, socket.gaierror("no name")),  # type: ignore[arg-type]
        )
    )
    rsps.post(f"{BASE}/{COMMENT}/replies", body=dns)
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.outcome is Outcome.FAILED
    assert result.retryable


def test_read_timeout_is_unknown(rsps):
    graph = GraphClient(BASE, TOKEN, timeout=(3.05, 10.0))
    rsps.post(f"{BASE}/{ACCOUNT}/messages", body=requests.exceptions.ReadTimeout("read"))
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.UNKNOWN
    assert not result.ok
    assert not result.retryable
    assert result.reason is Reason.META_ERROR
    assert result.message == (
        "Timed out after 10.0 s waiting for Meta's answer; the message may have been delivered."
    )


def test_connection_dropped_after_sending_is_unknown(rsps, graph):
    dropped = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection"))
    )
    rsps.post(f"{BASE}/{ACCOUNT}/messages", body=dropped)
    result = graph.send_private_reply(ACCOUNT, COMMENT, {"text": "hi"})
    assert result.outcome is Outcome.UNKNOWN
    assert not result.retryable


def test_chunked_encoding_error_is_unknown(rsps, graph):
    rsps.post(f"{BASE}/{COMMENT}/replies", body=requests.exceptions.ChunkedEncodingError("cut"))
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.outcome is Outcome.UNKNOWN


def test_read_timeout_on_a_get_is_failed_and_retryable(rsps, graph):
    # A read has no side effect at Meta, so a lost answer is simply retried.
    rsps.get(f"{BASE}/{IGSID}", body=requests.exceptions.ReadTimeout("read"))
    result = graph.get(f"/{IGSID}")
    assert result.outcome is Outcome.FAILED
    assert result.retryable


def test_other_request_errors_do_not_leak(rsps, graph):
    rsps.post(f"{BASE}/{COMMENT}/replies", body=requests.exceptions.TooManyRedirects("loop"))
    result = graph.reply_to_comment(COMMENT, "x")
    assert result.outcome is Outcome.FAILED
    assert not result.retryable


# -- real sockets: the exception chains requests raises for real ----------------------------


def _serve_once(handler) -> tuple[str, threading.Thread]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def run():
        conn, _ = server.accept()
        try:
            handler(conn)
        finally:
            conn.close()
            server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}/v22.0", thread


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    conn.settimeout(2)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_real_connection_refused_is_failed():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    graph = GraphClient(
        f"http://127.0.0.1:{port}/v22.0", TOKEN, timeout=1, session=requests.Session()
    )
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert result.outcome is Outcome.FAILED
    assert result.retryable


def test_real_read_timeout_is_unknown():
    done = threading.Event()

    def hang(conn):
        _read_request(conn)
        done.wait(3)

    base, thread = _serve_once(hang)
    graph = GraphClient(base, TOKEN, timeout=(1.0, 0.2), session=requests.Session())
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    done.set()
    thread.join(3)
    assert result.outcome is Outcome.UNKNOWN
    assert "0.2 s" in result.message


def test_real_disconnect_after_request_is_unknown():
    received: list[bytes] = []

    def close_without_answer(conn):
        received.append(_read_request(conn))

    base, thread = _serve_once(close_without_answer)
    graph = GraphClient(base, TOKEN, timeout=2, session=requests.Session())
    result = graph.reply_to_comment(COMMENT, "x")
    thread.join(3)
    assert result.outcome is Outcome.UNKNOWN
    request_line, _, rest = received[0].partition(b"\r\n")
    assert request_line.startswith(f"POST /v22.0/{COMMENT}/replies".encode())
    assert f"Authorization: Bearer {TOKEN}".encode() in rest


def test_real_form_body_is_sent():
    captured: list[bytes] = []

    def answer(conn):
        data = _read_request(conn)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        while len(body) < length:
            body += conn.recv(65536)
        captured.append(body)
        payload = b'{"id": "1790"}'
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + payload
        )

    base, thread = _serve_once(answer)
    result = GraphClient(base, TOKEN, session=requests.Session()).reply_to_comment(COMMENT, "héllo")
    thread.join(3)
    assert result.ok
    assert result.response_id == "1790"
    assert parse_qs(captured[0].decode()) == {"message": ["héllo"]}


# -- the shared session --------------------------------------------------------------------


def test_shared_session_is_reused_within_a_process(monkeypatch):
    monkeypatch.setattr(client_module, "_shared_session", None)
    first = client_module.shared_session()
    assert client_module.shared_session() is first
    assert GraphClient(BASE, TOKEN).session is first
    adapter = first.get_adapter("https://graph.instagram.com/")
    assert adapter._pool_maxsize == client_module.POOL_MAXSIZE
    assert adapter.max_retries.total == 0


def test_shared_session_is_recreated_after_fork(monkeypatch):
    monkeypatch.setattr(client_module, "_shared_session", None)
    parent = client_module.shared_session()
    monkeypatch.setattr(client_module.os, "getpid", lambda: -12345)
    child = client_module.shared_session()
    assert child is not parent


def test_given_session_is_used():
    session = requests.Session()
    assert GraphClient(BASE, TOKEN, session=session).session is session


def test_result_is_frozen():
    result = GraphResult(outcome=Outcome.SENT)
    assert result.ok
    assert result.data == {}
    with pytest.raises(AttributeError):
        result.outcome = Outcome.FAILED  # type: ignore[misc]


def test_timeout_list_from_settings_is_accepted(rsps):
    graph = GraphClient(BASE, TOKEN, timeout=[2, 5])  # type: ignore[arg-type]
    assert graph.timeout == (2.0, 5.0)
    rsps.post(f"{BASE}/{ACCOUNT}/messages", body=requests.exceptions.ReadTimeout("read"))
    result = graph.send_message(ACCOUNT, IGSID, {"text": "hi"})
    assert "5.0 s" in result.message


def test_token_in_exception_url_is_redacted(rsps, graph):
    error = requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool(host='graph.instagram.com', port=443): Max retries exceeded with "
        f"url: /v22.0/me?access_token={TOKEN}&fields=id (Caused by NewConnectionError('refused'))"
    )
    rsps.get(f"{BASE}/me", body=error)
    result = graph.get("/me", params={"access_token": TOKEN, "fields": "id"})
    assert result.outcome is Outcome.FAILED
    assert TOKEN not in result.response_excerpt
    assert TOKEN not in result.message
    assert "access_token=***" in result.response_excerpt

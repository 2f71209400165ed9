"""The Graph API client: every outbound call to Meta goes through ``GraphClient``.

It never raises for network or Meta errors: each call returns a ``GraphResult`` saying whether
Meta accepted (``SENT``), refused or was never reached (``FAILED``), or whether we cannot know
(``UNKNOWN``: the request may have reached Meta but no answer came back). The last matters because
a private reply is one-shot and a repeated DM reaches the person twice (meta-api.md section 6).
"""

from __future__ import annotations

import email.utils
import enum
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import IncompleteRead, RemoteDisconnected
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
)

from meta.errors import RATE_LIMITED, ErrorClass, Reason, classify_error, named_permission
from meta.usage import Usage, parse_usage_headers

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)
POOL_MAXSIZE = 20
EXCERPT_CHARS = 2_000

# Query or body keys whose values must never reach logs or attempt rows.
_SECRET_KEY_RE = re.compile(r"token|secret|password|appsecret_proof|^code$", re.IGNORECASE)
# Token-bearing fields in response bodies (OAuth exchanges answer with access tokens).
_SECRET_JSON_RE = re.compile(
    r'("(?:access_token|refresh_token|token|client_secret)"\s*:\s*)"[^"]*"', re.IGNORECASE
)
# The same in URLs quoted by exception messages ("...Max retries exceeded with url: /x?...").
_SECRET_QUERY_RE = re.compile(
    r"(?<![\w])((?:access_token|input_token|fb_exchange_token|client_secret|appsecret_proof|code)=)[^&\s'\"]*",
    re.IGNORECASE,
)

# Methods safe to repeat: a lost answer to a read cannot have changed anything at Meta.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Outcome(enum.StrEnum):
    SENT = "sent"  # Meta accepted.
    FAILED = "failed"  # Meta refused, or we certainly never reached it.
    UNKNOWN = "unknown"  # The request may have reached Meta, but no answer came back.


@dataclass(frozen=True)
class GraphResult:
    outcome: Outcome
    response_id: str = ""
    recipient_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    reason: Reason | None = None
    retryable: bool = False
    throttled: bool = False
    account_problem: bool = False
    pause_account: bool = False
    # An ambiguous permission refusal (code 10/200, no known subcode, no permission named).
    ambiguous: bool = False
    # The permission Meta says is missing (code 230, or named in its message), else "".
    missing_scope: str = ""
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    trace_id: str = ""
    retry_after_seconds: float | None = None
    usage: Usage | None = None
    duration_ms: float = 0.0
    request_summary: str = ""
    response_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT


# One pooled session per process. Keyed by pid because Celery's prefork workers inherit the
# parent's memory: sharing its sockets across forks would interleave traffic on one connection.
_session_lock = threading.Lock()
_shared_session: tuple[int, requests.Session] | None = None


def _new_session() -> requests.Session:
    session = requests.Session()
    # The environment's proxy and CA settings are read here and per origin (proxies_for), not
    # by requests on every call: with trust_env it scans the whole environment twice per
    # request (about a third of a call's CPU). Nor is ~/.netrc consulted: its credentials
    # would replace our Authorization header.
    session.trust_env = False
    if bundle := os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        session.verify = bundle
    # No automatic retries: a blind retry of a POST could send a DM twice; callers decide.
    adapter = HTTPAdapter(pool_connections=10, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


_proxies_by_origin: dict[str, dict[str, str]] = {}


def proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment names for this URL's origin (HTTPS_PROXY, NO_PROXY, ...),
    as requests would find them, read once per origin and process."""
    origin = "/".join(url.split("/", 3)[:3])
    found = _proxies_by_origin.get(origin)
    if found is None:
        found = _proxies_by_origin[origin] = requests.utils.get_environ_proxies(origin)
    return found


def shared_session() -> requests.Session:
    """The process's pooled session, created on first use (and again after a fork)."""
    global _shared_session
    pid = os.getpid()
    current = _shared_session
    if current is not None and current[0] == pid:
        return current[1]
    with _session_lock:
        if _shared_session is None or _shared_session[0] != pid:
            _shared_session = (pid, _new_session())
        return _shared_session[1]


def _redact_params(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    safe = {
        key: ("***" if _SECRET_KEY_RE.search(str(key)) else value) for key, value in params.items()
    }
    return "?" + urlencode(safe, doseq=True, safe=",*")


def _redact(text: str) -> str:
    return _SECRET_QUERY_RE.sub(r"\1***", _SECRET_JSON_RE.sub(r'\1"***"', text))


def as_int(value: Any) -> int | None:
    """An integer from Meta's JSON (numbers may come as strings), None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _retry_after_header(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    # Retry-After may also be an HTTP date.
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Walk an exception and what it wraps: requests and urllib3 nest errors in args/reason."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen or len(seen) > 50:
            continue
        seen.add(id(current))
        yield current
        nested = [*current.args, getattr(current, "reason", None)]
        nested += [current.__cause__, current.__context__]
        stack.extend(item for item in nested if isinstance(item, BaseException))


# Errors that prove the connection was never made, so nothing reached Meta.
_BEFORE_SENDING = (
    requests.exceptions.ConnectTimeout,
    ConnectTimeoutError,
    NewConnectionError,
    NameResolutionError,
)
# Errors where the connection broke after the request went out.
_AFTER_SENDING = (
    ProtocolError,
    RemoteDisconnected,
    IncompleteRead,
    ConnectionResetError,
    BrokenPipeError,
)


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    chain = list(_exception_chain(exc))
    if any(isinstance(item, _BEFORE_SENDING) for item in chain):
        return True
    # With no sign of a drop after sending (DNS, refused, TLS, proxy), nothing was delivered.
    return not any(isinstance(item, _AFTER_SENDING) for item in chain)


class GraphClient:
    """Calls the Graph API for one access token.

    ``base_url`` includes the version, e.g. ``https://graph.instagram.com/v22.0``; paths start
    with "/". The token goes in the Authorization header so it never appears in URLs or logs.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._access_token = access_token
        # Settings often hold the pair as a list; requests only understands a tuple.
        if isinstance(timeout, list | tuple):
            connect, read = timeout
            timeout = (float(connect), float(read))
        self.timeout: float | tuple[float, float] = timeout
        self._session = session

    def __repr__(self) -> str:
        # Keep the token out of reprs that land in logs and tracebacks.
        return f"GraphClient(base_url={self.base_url!r})"

    @property
    def session(self) -> requests.Session:
        return self._session if self._session is not None else shared_session()

    @property
    def _connect_timeout(self) -> float:
        return float(self.timeout[0] if isinstance(self.timeout, tuple) else self.timeout)

    @property
    def _read_timeout(self) -> float:
        return float(self.timeout[1] if isinstance(self.timeout, tuple) else self.timeout)

    # -- messaging and comments -------------------------------------------------------------

    def reply_to_comment(self, comment_id: str, text: str) -> GraphResult:
        """Public reply under a top-level comment; ``response_id`` is the new comment's id."""
        return self.post(f"/{comment_id}/replies", data={"message": text})

    def send_private_reply(
        self, sender_id: str, comment_id: str, message: dict[str, Any]
    ) -> GraphResult:
        """The one private reply a comment allows, sent to the commenter's inbox."""
        body = {"recipient": {"comment_id": comment_id}, "message": message}
        return self.post(f"/{sender_id}/messages", json=body)

    def send_message(
        self,
        sender_id: str,
        recipient_id: str,
        message: dict[str, Any],
        *,
        messaging_type: str = "RESPONSE",
        tag: str | None = None,
    ) -> GraphResult:
        """Send API message to an IGSID inside the 24 h window (``tag`` only for HUMAN_AGENT)."""
        body: dict[str, Any] = {
            "recipient": {"id": recipient_id},
            "messaging_type": messaging_type,
            "message": message,
        }
        if tag:
            body["tag"] = tag
        return self.post(f"/{sender_id}/messages", json=body)

    # -- generic calls ----------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> GraphResult:
        return self._request("GET", path, params=params)

    def post(
        self,
        path: str,
        *,
        data: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> GraphResult:
        return self._request("POST", path, data=data, json=json)

    def delete(self, path: str, params: dict[str, Any] | None = None) -> GraphResult:
        return self._request("DELETE", path, params=params)

    # -- internals --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> GraphResult:
        clean_path = path if path.startswith("/") else "/" + path
        summary = f"{method} {clean_path}{_redact_params(params)}"
        headers = {"Authorization": f"Bearer {self._access_token}", "Accept": "application/json"}
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + clean_path,
                params=params,
                data=data,
                json=json,
                headers=headers,
                timeout=self.timeout,
                proxies=proxies_for(self.base_url),
            )
        except requests.exceptions.RequestException as exc:
            return self._network_failure(method, exc, summary, started)
        duration_ms = (time.monotonic() - started) * 1000
        return self._from_response(response, summary, duration_ms)

    def _network_failure(
        self, method: str, exc: requests.exceptions.RequestException, summary: str, started: float
    ) -> GraphResult:
        duration_ms = (time.monotonic() - started) * 1000
        detail = _redact(f"{type(exc).__name__}: {exc}")[:EXCERPT_CHARS]
        has_side_effects = method.upper() not in _IDEMPOTENT_METHODS

        def result(outcome: Outcome, retryable: bool, message: str) -> GraphResult:
            return GraphResult(
                outcome=outcome,
                reason=Reason.META_ERROR,
                retryable=retryable,
                message=message,
                duration_ms=duration_ms,
                request_summary=summary,
                response_excerpt=detail,
            )

        if isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc):
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                message = (
                    f"Meta could not be reached: connecting timed out after "
                    f"{self._connect_timeout} s; nothing was sent."
                )
            else:
                message = f"Meta could not be reached ({type(exc).__name__}); nothing was sent."
            return result(Outcome.FAILED, True, message)

        if isinstance(
            exc,
            requests.exceptions.Timeout
            | requests.exceptions.ConnectionError
            | requests.exceptions.ChunkedEncodingError,
        ):
            if isinstance(exc, requests.exceptions.Timeout):
                waited = f"Timed out after {self._read_timeout} s waiting for Meta's answer"
            else:
                waited = "The connection to Meta dropped before its answer arrived"
            if not has_side_effects:
                # A read has no side effects at Meta: safe to repeat.
                return result(Outcome.FAILED, True, f"{waited}; the read can be retried.")
            return result(Outcome.UNKNOWN, False, f"{waited}; the message may have been delivered.")

        # Anything else (invalid URL, too many redirects...) is a configuration problem.
        return result(Outcome.FAILED, False, f"The request to Meta could not be made: {detail}")

    def _from_response(
        self, response: requests.Response, summary: str, duration_ms: float
    ) -> GraphResult:
        status = response.status_code
        text = response.text or ""
        excerpt = _redact(text[:EXCERPT_CHARS])
        usage = parse_usage_headers(response.headers)
        try:
            parsed = response.json() if text.strip() else None
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        error = body.get("error")

        common: dict[str, Any] = {
            "data": body,
            "http_status": status,
            "usage": usage,
            "duration_ms": duration_ms,
            "request_summary": summary,
            "response_excerpt": excerpt,
        }

        if 200 <= status < 300 and not isinstance(error, dict):
            # Meta accepted. A missing id is unusual but still a send: keep the data to inspect.
            response_id = body.get("id") or body.get("message_id") or ""
            return GraphResult(
                outcome=Outcome.SENT,
                response_id=str(response_id),
                recipient_id=str(body.get("recipient_id") or ""),
                **common,
            )

        error = error if isinstance(error, dict) else {}
        code = as_int(error.get("code"))
        subcode = as_int(error.get("error_subcode"))
        is_transient = _as_bool(error.get("is_transient"))
        message = str(error.get("message") or "")
        error_class: ErrorClass = classify_error(
            code, subcode, message=message, http_status=status, is_transient=is_transient
        )
        if code is None and status == 429:
            # No Graph error body, but the status alone says throttled (proxies, the stand-in).
            error_class = RATE_LIMITED

        missing_scope = ""
        if error_class.reason is Reason.PERMISSION_MISSING:
            missing_scope = error_class.scope or named_permission(message)
        if not message:
            shape = "an error it did not explain" if error else "a body that is not a Graph error"
            message = f"Meta answered HTTP {status} with {shape}. {error_class.description}"

        retry_after = None
        if error_class.throttled and usage is not None and usage.regain_access_seconds > 0:
            retry_after = float(usage.regain_access_seconds)
        if retry_after is None and (error_class.throttled or error_class.retryable):
            retry_after = _retry_after_header(response.headers)

        return GraphResult(
            outcome=Outcome.FAILED,
            reason=error_class.reason,
            retryable=error_class.retryable,
            throttled=error_class.throttled,
            account_problem=error_class.account_problem,
            pause_account=error_class.pause_account,
            ambiguous=error_class.ambiguous,
            missing_scope=missing_scope,
            code=code,
            subcode=subcode,
            message=message,
            trace_id=str(error.get("fbtrace_id") or ""),
            retry_after_seconds=retry_after,
            **common,
        )

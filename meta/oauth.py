"""Connecting an account: Meta's two OAuth logins, from the product's side (meta-api.md section 7).

Plain functions over ``requests`` with the Graph client's conventions (``meta.client``: the
process's pooled session, ``(connect, read)`` timeouts, tokens kept out of URLs where Meta allows
it and out of every message). Every Meta refusal, unreadable answer or network failure raises
``OAuthError`` carrying Meta's ``code``, ``subcode`` and ``fbtrace_id`` when there are any.

Facebook Login (a Page-linked Instagram account)::

    url = facebook_dialog_url(META_OAUTH_URL, app_id, redirect_uri, FACEBOOK_LOGIN_SCOPES, state)
    # ... the person comes back to redirect_uri: read_redirect(request.GET) ...
    short = facebook_exchange_code(META_GRAPH_URL, app_id, app_secret, redirect_uri, code)
    user = facebook_long_lived(META_GRAPH_URL, app_id, app_secret, short.access_token)
    pages = facebook_pages(META_GRAPH_URL, user.access_token)  # the person picks one
    subscribe_webhooks(META_GRAPH_URL, page.page_id, page.page_token)

Instagram Login (Business Login, no Page)::

    url = instagram_authorize_url(INSTAGRAM_OAUTH_URL, INSTAGRAM_APP_ID, redirect_uri,
                                  INSTAGRAM_LOGIN_SCOPES, state)
    short = instagram_exchange_code(INSTAGRAM_API_URL, ig_app_id, ig_secret, redirect_uri, code)
    token = instagram_long_lived(META_INSTAGRAM_GRAPH_URL, ig_secret, short.access_token)
    app_scoped_id, ig_user_id, username = instagram_me(META_INSTAGRAM_GRAPH_URL, token.access_token)
    subscribe_webhooks(META_INSTAGRAM_GRAPH_URL, "me", token.access_token)
    # later, at least 24 h after it was issued and before it expires:
    token = instagram_refresh(META_INSTAGRAM_GRAPH_URL, token.access_token)

Base URLs. Configured Graph bases include the version (``https://graph.instagram.com/v24.0``).
Meta serves Instagram's ``access_token`` and ``refresh_access_token`` without a version
(``https://graph.instagram.com/access_token``), so ``instagram_unversioned_base`` derives that
base by dropping a trailing ``/vNN[.N]`` segment and keeping everything before it: the stand-in's
``http://127.0.0.1:8001/ig/v24.0`` becomes ``http://127.0.0.1:8001/ig``. A base without a version
is used as it is. No separate setting is needed.

Ids with Instagram Login: the code exchange's ``user_id`` and ``/me``'s ``id`` are the
app-scoped id; ``/me``'s ``user_id`` is the professional account id that webhooks name in
``entry.id`` (meta-api.md 2.1). Keep both.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests

from meta.client import DEFAULT_TIMEOUT, as_int, proxies_for, shared_session

FACEBOOK_LOGIN_SCOPES: tuple[str, ...] = (
    "instagram_basic",
    "instagram_manage_comments",
    "instagram_manage_messages",
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_metadata",
    "pages_messaging",
    # Pages held by a Business Manager are listed by /me/accounts only with it (meta-api.md
    # section 1); asking always is what production integrations do.
    "business_management",
)
INSTAGRAM_LOGIN_SCOPES: tuple[str, ...] = (
    "instagram_business_basic",
    "instagram_business_manage_messages",
    "instagram_business_manage_comments",
)
# The Instagram fields the product handles (meta-api.md section 2, "Subscribing"): set at app
# level for the object "instagram", and per account with Instagram Login's /me/subscribed_apps.
WEBHOOK_FIELDS: tuple[str, ...] = (
    "comments",
    "live_comments",
    "messages",
    "messaging_postbacks",
    "messaging_seen",
    "message_reactions",
    "messaging_referral",
)
# Facebook Login: the app is installed on the Page with a Page field; Meta refuses Instagram
# field names there (error 100), and the Instagram fields then flow as set at app level.
PAGE_WEBHOOK_FIELDS: tuple[str, ...] = ("feed",)
INSTAGRAM_OBJECT = "instagram"
# Page tasks the person needs for the product to answer comments and messages (section 7).
REQUIRED_PAGE_TASKS: tuple[str, ...] = ("MESSAGING", "MODERATE")

PAGES_FIELDS = "id,name,access_token,tasks,instagram_business_account{id,username}"
PAGES_PER_REQUEST = 100
MAX_PAGE_REQUESTS = 50  # a guard against a paging loop, far above any real person's Pages
# Instagram appends "#_" to the redirect (meta-api.md section 7); it is not part of the code.
_CODE_SUFFIX = "#_"
_VERSION_SEGMENT = re.compile(r"/v\d+(?:\.\d+)?/?$")
# Token-looking values quoted in error texts, masked before they reach a message.
_SECRET_TEXT = re.compile(
    r"((?:access_token|input_token|fb_exchange_token|client_secret|code)=)[^&\s'\"]*",
    re.IGNORECASE,
)

Timeout = float | tuple[float, float]


class OAuthError(Exception):
    """Meta refused an OAuth or account call, answered something unreadable, or was unreachable.

    ``code``/``subcode`` are Meta's (``None`` when the answer had none, e.g. a network failure);
    ``http_status`` is ``None`` when no answer came. ``retryable`` is true for network failures,
    5xx answers and errors Meta marks transient: the same call may work later.
    """

    def __init__(
        self,
        message: str,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str = "",
        *,
        http_status: int | None = None,
        error_type: str = "",
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.error_type = error_type
        self.retryable = retryable

    @property
    def token_invalid(self) -> bool:
        """The token is expired, revoked or unusable: the person has to connect again."""
        return self.code in (190, 102, 104)

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"(code {self.code}" + (f"/{self.subcode})" if self.subcode else ")"))
        if self.fbtrace_id:
            parts.append(f"[fbtrace_id {self.fbtrace_id}]")
        return " ".join(parts)


# --- results ----------------------------------------------------------------------------------
def _expires_at(obtained_at: float, expires_in: int | None) -> datetime | None:
    if not expires_in:
        return None
    return datetime.fromtimestamp(obtained_at + expires_in, tz=UTC)


@dataclass(frozen=True)
class Token:
    """An access token and how long it lives. ``expires_in`` None: Meta did not say."""

    access_token: str = field(repr=False)
    token_type: str = "bearer"  # noqa: S105 (a token type, not a token)
    expires_in: int | None = None
    obtained_at: float = field(default_factory=time.time)

    @property
    def expires_at(self) -> datetime | None:
        return _expires_at(self.obtained_at, self.expires_in)


@dataclass(frozen=True)
class InstagramToken:
    """Instagram Login's code exchange: a short-lived (1 hour) token and what was granted."""

    access_token: str = field(repr=False)
    user_id: str = ""  # the app-scoped id, not the id webhooks use: see instagram_me
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class PageChoice:
    """One Page the person can connect, with its Page token and linked Instagram account."""

    page_id: str
    name: str
    page_token: str = field(repr=False)
    tasks: tuple[str, ...] = ()
    ig_user_id: str = ""  # empty: no Instagram professional account is linked to the Page
    ig_username: str = ""

    @property
    def has_instagram(self) -> bool:
        return bool(self.ig_user_id)

    @property
    def missing_tasks(self) -> tuple[str, ...]:
        """Tasks the person lacks on this Page for the product to work (empty when fine)."""
        return tuple(t for t in REQUIRED_PAGE_TASKS if t not in self.tasks)


@dataclass(frozen=True)
class TokenInfo:
    """``debug_token``'s answer. ``expires_at`` None: never expires (Page tokens)."""

    is_valid: bool
    app_id: str = ""
    type: str = ""
    user_id: str = ""
    profile_id: str = ""  # the Page of a Page token
    scopes: tuple[str, ...] = ()
    granular_scopes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str = ""

    def missing(self, scopes: Iterable[str]) -> tuple[str, ...]:
        """Which of ``scopes`` the token was not granted (declined or removed later)."""
        return tuple(s for s in scopes if s not in self.scopes)


@dataclass(frozen=True)
class OAuthRedirect:
    """What Meta put on the redirect back to us: a code, or why there is none."""

    code: str = field(default="", repr=False)
    state: str = ""
    error: str = ""
    error_reason: str = ""
    error_description: str = ""

    @property
    def denied(self) -> bool:
        """The person pressed Cancel (or Meta refused) rather than granting."""
        return bool(self.error) or not self.code


# --- URLs and the redirect ----------------------------------------------------------------------
def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def _dialog_query(app_id: str, redirect_uri: str, scopes: Iterable[str], state: str) -> str:
    params = {
        "client_id": app_id,
        "redirect_uri": redirect_uri,
        "scope": ",".join(scopes),
        "state": state,
        "response_type": "code",
    }
    return urlencode(params, safe=",")


def facebook_dialog_url(
    oauth_base: str, app_id: str, redirect_uri: str, scopes: Iterable[str], state: str
) -> str:
    """Facebook Login's dialog: ``{META_OAUTH_URL}/dialog/oauth?...`` (base includes version)."""
    return (
        _join(oauth_base, "dialog/oauth") + "?" + _dialog_query(app_id, redirect_uri, scopes, state)
    )


def instagram_authorize_url(
    oauth_base: str, app_id: str, redirect_uri: str, scopes: Iterable[str], state: str
) -> str:
    """Instagram Login's authorize page: ``{INSTAGRAM_OAUTH_URL}/oauth/authorize?...``."""
    query = _dialog_query(app_id, redirect_uri, scopes, state)
    return _join(oauth_base, "oauth/authorize") + "?" + query


def clean_code(code: str) -> str:
    """An authorization code without the ``#_`` Instagram appends, and without whitespace."""
    code = code.strip()
    while code.endswith(_CODE_SUFFIX):
        code = code[: -len(_CODE_SUFFIX)]
    return code


def read_redirect(params: Mapping[str, Any]) -> OAuthRedirect:
    """The redirect's query parameters (e.g. Django's ``request.GET``), code cleaned."""

    def get(name: str) -> str:
        value = params.get(name)
        return value.strip() if isinstance(value, str) else ""

    return OAuthRedirect(
        code=clean_code(get("code")),
        state=get("state"),
        error=get("error"),
        error_reason=get("error_reason"),
        error_description=get("error_description"),
    )


def instagram_unversioned_base(ig_graph_base: str) -> str:
    """``https://graph.instagram.com/v24.0`` -> ``https://graph.instagram.com`` (see above)."""
    return _VERSION_SEGMENT.sub("", ig_graph_base.rstrip("/"))


# --- HTTP -----------------------------------------------------------------------------------------
def _redact(text: str) -> str:
    return _SECRET_TEXT.sub(r"\1***", text)


def _error_from(response: requests.Response, body: Any) -> OAuthError:
    """Meta's two error shapes: the Graph's ``{"error": {...}}`` and api.instagram.com's flat
    ``{"error_type", "code", "error_message"}``."""
    status = response.status_code
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = as_int(error.get("code"))
        transient = error.get("is_transient") in (True, "true")
        return OAuthError(
            _redact(str(error.get("message") or f"Meta answered HTTP {status}")),
            code,
            as_int(error.get("error_subcode")),
            str(error.get("fbtrace_id") or ""),
            http_status=status,
            error_type=str(error.get("type") or ""),
            # Not code 1: on these endpoints it also means "Error validating client secret."
            retryable=transient or status >= 500 or code == 2,
        )
    if isinstance(body, dict) and ("error_message" in body or "error_type" in body):
        return OAuthError(
            _redact(str(body.get("error_message") or f"Meta answered HTTP {status}")),
            as_int(body.get("code")),
            http_status=status,
            error_type=str(body.get("error_type") or ""),
            retryable=status >= 500,
        )
    what = "a body that is not JSON" if body is None else "an answer it did not explain"
    return OAuthError(
        f"Meta answered HTTP {status} with {what}.", http_status=status, retryable=status >= 500
    )


def _call(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    token: str | None = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if isinstance(timeout, list):
        timeout = (float(timeout[0]), float(timeout[1]))
    try:
        response = (session or shared_session()).request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=timeout,
            proxies=proxies_for(url),
        )
    except requests.RequestException as exc:
        # "from None": the original exception quotes the URL, with client_secret or a token.
        raise OAuthError(
            f"Meta could not be reached ({type(exc).__name__}): {_redact(str(exc))[:300]}",
            retryable=True,
        ) from None
    try:
        body = response.json() if response.content.strip() else None
    except ValueError:
        body = None
    failed = response.status_code >= 400 or (
        isinstance(body, dict) and ("error" in body or "error_message" in body)
    )
    if failed or not isinstance(body, dict):
        raise _error_from(response, body)
    return body


def _token(body: Mapping[str, Any]) -> Token:
    value = body.get("access_token")
    if not isinstance(value, str) or not value:
        raise OAuthError("Meta's answer has no access_token.")
    return Token(
        access_token=value,
        token_type=str(body.get("token_type") or "bearer"),
        expires_in=as_int(body.get("expires_in")),
    )


# --- Facebook Login ------------------------------------------------------------------------------
def facebook_exchange_code(
    graph_base: str,
    app_id: str,
    app_secret: str,
    redirect_uri: str,
    code: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> Token:
    """The redirect's code -> a short-lived user token. ``redirect_uri`` must be the dialog's."""
    params = {
        "client_id": app_id,
        "client_secret": app_secret,
        "redirect_uri": redirect_uri,
        "code": clean_code(code),
    }
    url = _join(graph_base, "oauth/access_token")
    return _token(_call("GET", url, params=params, timeout=timeout, session=session))


def facebook_long_lived(
    graph_base: str,
    app_id: str,
    app_secret: str,
    short_token: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> Token:
    """A short-lived user token -> a long-lived one (about 60 days; not refreshable by API)."""
    params = {
        "grant_type": "fb_exchange_token",
        "client_id": app_id,
        "client_secret": app_secret,
        "fb_exchange_token": short_token,
    }
    url = _join(graph_base, "oauth/access_token")
    return _token(_call("GET", url, params=params, timeout=timeout, session=session))


def facebook_pages(
    graph_base: str,
    user_token: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> list[PageChoice]:
    """Every Page the person granted, with Page token, tasks and linked Instagram account.

    Follows ``paging``; asks for the Instagram username by field expansion and, when Meta leaves
    it out, reads it with the Page token (a failure there leaves it empty rather than failing).
    Pages without an Instagram account are included (``has_instagram`` False).
    """
    url = _join(graph_base, "me/accounts")
    params: dict[str, Any] = {"fields": PAGES_FIELDS, "limit": PAGES_PER_REQUEST}
    choices: list[PageChoice] = []
    seen_cursors: set[str] = set()
    for _ in range(MAX_PAGE_REQUESTS):
        body = _call("GET", url, params=params, token=user_token, timeout=timeout, session=session)
        data = body.get("data")
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and item.get("id"):
                choices.append(_page_choice(item))
        paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
        cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
        after = cursors.get("after")
        # Meta's rule: only a "next" link means there is more.
        if not paging.get("next") or not isinstance(after, str) or after in seen_cursors:
            break
        seen_cursors.add(after)
        # Ask the configured base again with the cursor instead of following "next" as given:
        # the token stays in the header, never in a URL Meta built.
        params = {**params, "after": after}
    return [_with_username(graph_base, c, timeout, session) for c in choices]


def _page_choice(item: Mapping[str, Any]) -> PageChoice:
    ig = item.get("instagram_business_account")
    ig = ig if isinstance(ig, dict) else {}
    tasks = item.get("tasks")
    return PageChoice(
        page_id=str(item["id"]),
        name=str(item.get("name") or ""),
        page_token=str(item.get("access_token") or ""),
        tasks=tuple(str(t) for t in tasks) if isinstance(tasks, list) else (),
        ig_user_id=str(ig.get("id") or ""),
        ig_username=str(ig.get("username") or ""),
    )


def _with_username(
    graph_base: str, choice: PageChoice, timeout: Timeout, session: requests.Session | None
) -> PageChoice:
    if not choice.ig_user_id or choice.ig_username or not choice.page_token:
        return choice
    try:
        body = _call(
            "GET",
            _join(graph_base, choice.ig_user_id),
            params={"fields": "username"},
            token=choice.page_token,
            timeout=timeout,
            session=session,
        )
    except OAuthError:
        return choice  # the username is for display only; the id is what counts
    username = body.get("username")
    if not isinstance(username, str):
        return choice
    return PageChoice(
        choice.page_id, choice.name, choice.page_token, choice.tasks, choice.ig_user_id, username
    )


def debug_token(
    graph_base: str,
    app_id: str,
    app_secret: str,
    token: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> TokenInfo:
    """What Meta knows of a Facebook-Login token (user or Page): validity, scopes, expiry.

    An expired or revoked token is not an error here: ``is_valid`` is False and ``error_*`` say
    why. ``OAuthError`` means the check itself failed (wrong app credentials, network).
    """
    body = _call(
        "GET",
        _join(graph_base, "debug_token"),
        params={"input_token": token},
        # The app token goes in the header like any access token, keeping the secret out of URLs.
        token=f"{app_id}|{app_secret}",
        timeout=timeout,
        session=session,
    )
    data = body.get("data")
    if not isinstance(data, dict):
        raise OAuthError("debug_token answered without data.")
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    granular: list[tuple[str, tuple[str, ...]]] = []
    for item in data.get("granular_scopes") or []:
        if isinstance(item, dict) and item.get("scope"):
            targets = item.get("target_ids") or []
            granular.append((str(item["scope"]), tuple(str(t) for t in targets)))
    scopes = data.get("scopes")
    return TokenInfo(
        is_valid=data.get("is_valid") is True,
        app_id=str(data.get("app_id") or ""),
        type=str(data.get("type") or ""),
        user_id=str(data.get("user_id") or ""),
        profile_id=str(data.get("profile_id") or ""),
        scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        granular_scopes=tuple(granular),
        expires_at=_epoch(data.get("expires_at")),
        data_access_expires_at=_epoch(data.get("data_access_expires_at")),
        error_code=as_int(error.get("code")),
        error_subcode=as_int(error.get("subcode")),
        error_message=str(error.get("message") or ""),
    )


def _epoch(value: Any) -> datetime | None:
    seconds = as_int(value)
    # 0 means "never" for expires_at.
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


# --- Instagram Login -----------------------------------------------------------------------------
def _permissions(value: Any) -> tuple[str, ...]:
    # A list in the flat answer, one comma-separated string in the "data" one.
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list):
        return tuple(str(p) for p in value)
    return ()


def instagram_exchange_code(
    api_base: str,
    app_id: str,
    app_secret: str,
    redirect_uri: str,
    code: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> InstagramToken:
    """The redirect's code (``#_`` stripped here) -> a short-lived Instagram user token.

    Accepts both answers Meta documents: ``{"access_token", "user_id", "permissions"}`` and
    ``{"data": [{...}]}``; ``user_id`` may come as a number and is returned as a string.
    """
    form = {
        "client_id": app_id,
        "client_secret": app_secret,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
        "code": clean_code(code),
    }
    url = _join(api_base, "oauth/access_token")
    body = _call("POST", url, data=form, timeout=timeout, session=session)
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        body = data[0]
    token = _token(body)
    return InstagramToken(
        access_token=token.access_token,
        user_id=str(body.get("user_id") or ""),
        permissions=_permissions(body.get("permissions")),
    )


def instagram_long_lived(
    ig_graph_base: str,
    app_secret: str,
    short_token: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> Token:
    """A short-lived Instagram user token -> a long-lived one (60 days, refreshable)."""
    params = {
        "grant_type": "ig_exchange_token",
        "client_secret": app_secret,
        "access_token": short_token,
    }
    url = _join(instagram_unversioned_base(ig_graph_base), "access_token")
    return _token(_call("GET", url, params=params, timeout=timeout, session=session))


def instagram_refresh(
    ig_graph_base: str,
    long_token: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> Token:
    """A long-lived token at least 24 h old and not expired -> a fresh one (60 days again).

    An expired token cannot be refreshed (``OAuthError`` with ``token_invalid``): reconnect.
    """
    params = {"grant_type": "ig_refresh_token", "access_token": long_token}
    url = _join(instagram_unversioned_base(ig_graph_base), "refresh_access_token")
    return _token(_call("GET", url, params=params, timeout=timeout, session=session))


def instagram_me(
    ig_graph_base: str,
    token: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> tuple[str, str, str]:
    """``(id, user_id, username)`` of the token's account. ``user_id`` is the professional
    account id webhooks use; ``id`` the app-scoped one (they can differ: keep both). When Meta
    leaves ``user_id`` out, ``id`` stands in for it."""
    body = _call(
        "GET",
        _join(ig_graph_base, "me"),
        params={"fields": "id,user_id,username"},
        token=token,
        timeout=timeout,
        session=session,
    )
    account_id = str(body.get("id") or "")
    if not account_id:
        raise OAuthError("Meta's /me answer has no id.")
    return account_id, str(body.get("user_id") or account_id), str(body.get("username") or "")


# --- webhooks -------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """A local address: the one place a plain-HTTP callback makes sense (a local stand-in);
    Meta itself calls only HTTPS callbacks with a valid certificate."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _succeeded(body: Mapping[str, Any]) -> bool:
    # Meta answers {"success": true}, and on some edges {"success": "true"}.
    return body.get("success") in (True, "true")


def subscribe_webhooks(
    graph_base: str,
    node: str,
    token: str,
    fields: Iterable[str] = WEBHOOK_FIELDS,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> bool:
    """Subscribe one connected account to the app's webhooks (meta-api.md section 2).

    Facebook Login: ``node`` the Page id, with the Page token, on ``META_GRAPH_URL`` and
    ``PAGE_WEBHOOK_FIELDS``. Instagram Login: ``node`` "me", with the Instagram user token, on
    ``META_INSTAGRAM_GRAPH_URL`` and ``WEBHOOK_FIELDS``. Repeat after every reconnect, and read
    it back with ``subscribed_fields``. True when Meta answered ``success``; refusals raise.
    """
    body = _call(
        "POST",
        _join(graph_base, f"{node}/subscribed_apps"),
        data={"subscribed_fields": ",".join(fields)},
        token=token,
        timeout=timeout,
        session=session,
    )
    return _succeeded(body)


def subscribed_fields(
    graph_base: str,
    node: str,
    token: str,
    *,
    app_id: str = "",
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> tuple[str, ...] | None:
    """The fields our app is subscribed to on ``node`` (``GET .../subscribed_apps``).

    None when our app is not installed there. A Page lists every app it has installed, each
    with its ``id``: ours is found by ``app_id``; an entry without an id (Instagram Login) is
    the token's own app.
    """
    body = _call(
        "GET",
        _join(graph_base, f"{node}/subscribed_apps"),
        token=token,
        timeout=timeout,
        session=session,
    )
    data = body.get("data")
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("id") is not None and app_id and str(item["id"]) != app_id:
            continue
        fields = item.get("subscribed_fields")
        return tuple(str(f) for f in fields) if isinstance(fields, list) else ()
    return None


@dataclass(frozen=True)
class AppSubscription:
    """One object of the app's webhook subscriptions (``GET /{app-id}/subscriptions``)."""

    object: str
    callback_url: str
    active: bool
    fields: tuple[str, ...]


def app_subscriptions(
    graph_base: str,
    app_id: str,
    app_secret: str,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> list[AppSubscription]:
    """What the app's Webhooks product is set to, per object, read with the app token."""
    body = _call(
        "GET",
        _join(graph_base, f"{app_id}/subscriptions"),
        token=f"{app_id}|{app_secret}",
        timeout=timeout,
        session=session,
    )
    found = []
    data = body.get("data")
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        fields = item.get("fields") if isinstance(item.get("fields"), list) else []
        names = [f.get("name") if isinstance(f, dict) else f for f in fields]
        found.append(
            AppSubscription(
                object=str(item.get("object") or ""),
                callback_url=str(item.get("callback_url") or ""),
                active=item.get("active") in (True, "true"),
                fields=tuple(str(name) for name in names if name),
            )
        )
    return found


def app_subscribe(
    graph_base: str,
    app_id: str,
    app_secret: str,
    *,
    callback_url: str,
    verify_token: str,
    fields: Iterable[str] = WEBHOOK_FIELDS,
    object_type: str = INSTAGRAM_OBJECT,
    timeout: Timeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> bool:
    """Set the app's webhook subscription for one object (``POST /{app-id}/subscriptions``).

    Meta calls ``callback_url`` with the verification GET before it answers, so the callback
    must be reachable and answer the challenge with ``verify_token``; a failed verification
    is Meta's refusal (code 2200), raised as ``OAuthError``.
    """
    body = _call(
        "POST",
        _join(graph_base, f"{app_id}/subscriptions"),
        data={
            "object": object_type,
            "callback_url": callback_url,
            "verify_token": verify_token,
            "fields": ",".join(fields),
            "include_values": "true",
        },
        token=f"{app_id}|{app_secret}",
        timeout=timeout,
        session=session,
    )
    return _succeeded(body)

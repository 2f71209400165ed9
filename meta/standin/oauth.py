"""Meta's OAuth and account endpoints, played on the stand-in's one port (meta-api.md section 7).

Prefixes (the first path segment tells which Meta host a request is for):

- none, ``/vNN/...``: www.facebook.com and graph.facebook.com: ``dialog/oauth``,
  ``oauth/access_token``, ``debug_token``, ``me/accounts``, ``me/permissions``;
- ``/ig[/vNN]/...``: graph.instagram.com: ``access_token``, ``refresh_access_token``;
- ``/instagram/...``: www.instagram.com: ``oauth/authorize``;
- ``/instagram-api/...``: api.instagram.com: ``oauth/access_token`` (and ``oauth/authorize``).

The dialogs answer HTML (a consent page with "Continue" ``#standin-approve`` and "Cancel"
``#standin-cancel``) and 302 redirects; the rest answers JSON in Meta's shapes. Who logs in, what
they grant and what was issued lives in ``logins.py``. Every request is logged like Graph calls,
with tokens, secrets and codes masked.
"""

from __future__ import annotations

import base64
import html
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import GRAPH_METHOD, MISSING_TOKEN_MESSAGE, GraphError, InstagramApiError, from_fault
from .graph import (
    CANNOT_PARSE_TOKEN,
    FACEBOOK_HOST,
    INSTAGRAM_API_HOST,
    INSTAGRAM_HOST,
    INSTAGRAM_WEB_HOST,
    Outcome,
    extract_token,
    parse_request,
    split_path,
    token_host_error,
)
from .logins import (
    FACEBOOK,
    FACEBOOK_SCOPES,
    INSTAGRAM,
    INSTAGRAM_SCOPES,
    LONG_LIVED_SECONDS,
    PAGE,
    REFRESH_MIN_AGE_SECONDS,
    REQUIRED_INSTAGRAM_SCOPE,
    RETIRED_INSTAGRAM_SCOPES,
    USER,
    App,
    Grant,
    Logins,
    Person,
    Token,
    split_scopes,
)
from .state import (
    DEBUG_TOKEN,
    IG_AUTHORIZE,
    IG_EXCHANGE_TOKEN,
    IG_OAUTH_ACCESS_TOKEN,
    IG_REFRESH_TOKEN,
    ME_ACCOUNTS,
    ME_PERMISSIONS,
    OAUTH_ACCESS_TOKEN,
    OAUTH_DIALOG,
    UNKNOWN,
    Fault,
    State,
    mask_secrets,
    mask_token,
)

HTML_TYPE = "text/html; charset=utf-8"
DIALOGS = frozenset({OAUTH_DIALOG, IG_AUTHORIZE})
# Authorization codes are secrets too, but only on these endpoints: elsewhere "code" is an
# error code that must stay readable in the log.
_OAUTH_SECRET_KEYS = frozenset({"code"})

# Wording of Meta's OAuth errors: [doc] where Meta documents it, otherwise what production code
# reports [seen]; kept here so it is easy to correct.
CODE_USED = "This authorization code has been used."
CODE_EXPIRED = "This authorization code has expired."
CODE_INVALID = "Invalid verification code format."
REDIRECT_MISMATCH = (
    "Error validating verification code. Please make sure your redirect_uri is identical to "
    "the one you used in the OAuth dialog request"
)
BAD_SECRET = "Error validating client secret."  # noqa: S105 (an error text)
BAD_APP = "Error validating application. Invalid application ID."
INVALID_TOKEN = "Invalid OAuth access token."  # noqa: S105 (an error text)
# An error text, not a secret.
DEBUG_TOKEN_NEEDS_APP = (
    "(#100) You must provide an app access token, or a user access token that is an owner or "  # noqa: S105
    "developer of the app"
)
# [unsure]: Meta documents the 24 h rule, not the error it answers when it is broken.
REFRESH_TOO_EARLY = (
    "(#100) The access token can be refreshed only once it is at least 24 hours old "
    "(stand-in wording)"
)
REFRESH_SHORT_LIVED = (
    "(#100) Only a long-lived Instagram user access token can be refreshed (stand-in wording)"
)
FACEBOOK_DENIED = {
    "error": "access_denied",
    "error_reason": "user_denied",
    "error_description": "Permissions error",
}
INSTAGRAM_DENIED = {
    "error": "access_denied",
    "error_reason": "user_denied",
    "error_description": "The user denied your request.",
}
ME_ACCOUNTS_DEFAULT_FIELDS = ("access_token", "category", "name", "id", "tasks")
PAGE_FIELDS = frozenset({"id", "name", "access_token", "tasks", "category"})
IG_ACCOUNT_FIELDS = frozenset({"id", "username", "name"})
_CODE_IN_URL = re.compile(r"([?&]code=)([^&#]*)")
DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100


class DialogError(Exception):
    """A dialog refused: answered as an HTML error page, like Meta's."""

    def __init__(self, title: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{title}: {detail}")
        self.title = title
        self.detail = detail
        self.status = status


@dataclass
class Request:
    endpoint: str
    method: str
    host: str
    raw_path: str
    segments: list[str]
    query: dict[str, Any]
    body: Any
    params: dict[str, Any]  # query merged with a form body
    headers: Mapping[str, str]
    token: str | None


# --- routing ----------------------------------------------------------------------------------
def route(host: str, method: str, segments: list[str]) -> str | None:
    """The OAuth endpoint a request is for, or None for a Graph call (``graph.py``)."""
    path = "/".join(segments)
    if host == FACEBOOK_HOST:
        if path == "dialog/oauth" and method in ("GET", "POST"):
            return OAUTH_DIALOG
        if path == "oauth/access_token" and method in ("GET", "POST"):
            return OAUTH_ACCESS_TOKEN
        if path == "debug_token" and method == "GET":
            return DEBUG_TOKEN
        if path == "me/accounts" and method == "GET":
            return ME_ACCOUNTS
        if path == "me/permissions" and method in ("GET", "DELETE"):
            return ME_PERMISSIONS
    if host in (FACEBOOK_HOST, INSTAGRAM_HOST) and method == "GET":
        # Served by graph.instagram.com; on the Facebook prefix only when host checks are off
        # (the handlers refuse otherwise), for setups with one base URL for both logins.
        if path == "access_token":
            return IG_EXCHANGE_TOKEN
        if path == "refresh_access_token":
            return IG_REFRESH_TOKEN
    if host in (INSTAGRAM_WEB_HOST, INSTAGRAM_API_HOST):
        if path == "oauth/authorize" and method in ("GET", "POST"):
            return IG_AUTHORIZE
        if host == INSTAGRAM_API_HOST and path == "oauth/access_token":
            return IG_OAUTH_ACCESS_TOKEN
        return UNKNOWN  # nothing else lives on these hosts: never fall through to the Graph
    return None


def route_path(method: str, raw_path: str) -> str | None:
    host, segments = split_path(raw_path)
    return route(host, method, segments)


# --- helpers ------------------------------------------------------------------------------------
def _param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def _with_params(uri: str, extra: dict[str, str], fragment: str = "") -> str:
    """``uri`` with ``extra`` appended to its query (Meta keeps the redirect URI's own query)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), fragment))


def _redirect(location: str) -> Outcome:
    return Outcome(302, None, {"Location": location}, raw=b"", content_type=HTML_TYPE)


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def _uncursor(value: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode())
    except ValueError as exc:
        raise GraphError(100, "(#100) Invalid after cursor") from exc


def parse_fields(value: str) -> list[tuple[str, list[str] | None]]:
    """``a,b{c,d}`` -> [("a", None), ("b", ["c", "d"])] (one level of field expansion)."""
    fields: list[tuple[str, list[str] | None]] = []
    depth, start = 0, 0
    for i, char in enumerate(value + ","):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            item = value[start:i].strip()
            start = i + 1
            if not item:
                continue
            name, brace, rest = item.partition("{")
            subfields = [f.strip() for f in rest.rstrip("}").split(",") if f.strip()]
            fields.append((name.strip(), subfields if brace else None))
    if depth != 0:
        raise GraphError(100, f"(#100) Syntax error in fields: {value}")
    return fields


def _strings(value: Any) -> list[str] | None:
    """Checkbox values from a form: one string or a list of them."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


# --- token checks --------------------------------------------------------------------------------
def _issued_user_token(state: State, req: Request, login: str) -> Token | None:
    """The request's token when it is a valid issued user token of ``login``.

    Raises Meta's errors for a missing, revoked, expired or other-host token. Returns None for a
    token the stand-in never issued (allowed unless ``strict_tokens``).
    """
    if not req.token:
        raise GraphError(2500, MISSING_TOKEN_MESSAGE)
    if req.token in state.revoked:
        raise GraphError(190, subcode=460)
    issued = state.logins.tokens.get(req.token)
    if issued is None:
        if state.logins.settings.strict_tokens and req.token not in state.accounts:
            raise GraphError(190, CANNOT_PARSE_TOKEN)
        return None
    host_error = token_host_error(state, issued, req.host)
    if host_error is not None or issued.login != login:
        raise host_error or GraphError(190, CANNOT_PARSE_TOKEN)
    problem = state.logins.problem(issued)
    if problem is not None:
        raise GraphError(190, problem[1], subcode=problem[0])
    return issued


def _facebook_app(logins: Logins, params: Mapping[str, Any]) -> App:
    client_id = _param(params, "client_id")
    if not client_id:
        raise GraphError(101, "Missing client_id parameter.")
    app = logins.app_by_id(FACEBOOK, client_id)
    if app is None:
        raise GraphError(101, BAD_APP)
    if _param(params, "client_secret") != app.secret:
        raise GraphError(1, BAD_SECRET)
    return app


# --- the dialogs ---------------------------------------------------------------------------------
def _dialog(state: State, req: Request, login: str) -> Outcome:
    """Facebook's dialog/oauth and Instagram's oauth/authorize: same rules, Meta's two wordings."""
    logins = state.logins
    params = req.params
    client_id = _param(params, "client_id")
    app = logins.app_by_id(login, client_id)
    if app is None:
        if login == FACEBOOK:
            raise DialogError(
                "Invalid App ID", "The provided app ID does not look like a valid app ID."
            )
        raise DialogError("Invalid Request", "Request parameters are invalid: Invalid platform app")
    redirect_uri = _param(params, "redirect_uri")
    if not redirect_uri:
        raise DialogError("Invalid Request", "The parameter redirect_uri is required.")
    if not app.redirect_allowed(redirect_uri):
        raise DialogError(
            "URL Blocked",
            "This redirect failed because the redirect URI is not whitelisted in the app's "
            "Client OAuth Settings. Make sure Client and Web OAuth Login are on and add all "
            "your app domains as Valid OAuth Redirect URIs.",
        )
    response_type = _param(params, "response_type")
    if not response_type:
        raise DialogError("Invalid Request", "The parameter response_type is required.")
    if response_type != "code":
        raise DialogError(
            "Invalid Request",
            f"response_type={response_type} is not supported here: use response_type=code.",
        )
    requested = split_scopes(params.get("scope"))
    _check_scopes(login, requested)
    person = logins.person_logging_in()
    if login == INSTAGRAM and person.instagram is None:
        raise DialogError(
            "Not a professional account",
            f"{person.name} has no Instagram professional account to log in with.",
        )
    state_value = _param(params, "state")

    if req.method == "POST":
        decision = _param(params, "decision")
        if decision not in ("approve", "cancel"):
            raise DialogError("Invalid Request", "decision must be approve or cancel.")
        # Ticked boxes; a form with none ticked still sends "granted_present".
        chosen = _strings(params.get("granted"))
        if chosen is None and _param(params, "granted_present"):
            chosen = []
    else:
        consent = logins.settings.consent
        if consent == "ask":
            page = render_consent(login, app, person, requested, params)
            return Outcome(200, None, raw=page.encode(), content_type=HTML_TYPE)
        decision = "approve" if consent == "approve" else "cancel"
        chosen = None

    extra = {"state": state_value} if state_value else {}
    if decision == "cancel":
        denied = FACEBOOK_DENIED if login == FACEBOOK else INSTAGRAM_DENIED
        return _redirect(_with_params(redirect_uri, {**denied, **extra}))
    grant = logins.grant_for(login, app, person, requested, chosen)
    code = logins.issue_code(login, app, grant, redirect_uri)
    # Instagram appends "#_" after the query (meta-api.md section 7); the product strips it.
    fragment = "_" if login == INSTAGRAM else ""
    return _redirect(_with_params(redirect_uri, {"code": code.value, **extra}, fragment))


def _check_scopes(login: str, requested: list[str]) -> None:
    if login == INSTAGRAM:
        retired = [s for s in requested if s in RETIRED_INSTAGRAM_SCOPES]
        if retired:
            hints = ", ".join(f"{s} (now {RETIRED_INSTAGRAM_SCOPES[s]})" for s in retired)
            raise DialogError("Invalid Scopes", f"Retired in January 2025: {hints}.")
        if REQUIRED_INSTAGRAM_SCOPE not in requested:
            raise DialogError(
                "Invalid Request", f"The scope must include {REQUIRED_INSTAGRAM_SCOPE}."
            )
    known = FACEBOOK_SCOPES if login == FACEBOOK else INSTAGRAM_SCOPES
    invalid = [s for s in requested if s not in known]
    if invalid:
        raise DialogError(
            "Invalid Scopes",
            f"Invalid Scopes: {', '.join(invalid)}. This message is only shown to developers. "
            "Users of your app "
            "will ignore these permissions if present.",
        )


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 34em; margin: 3em auto; }}
.box {{ border: 1px solid #ccc; border-radius: 8px; padding: 1.2em 1.5em; }}
button {{ font-size: 1em; padding: 0.4em 1.2em; margin-right: 0.6em; }}
#standin-approve {{ background: #1877f2; color: white; border: none; border-radius: 4px; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
li {{ margin: 0.2em 0; }}
</style></head><body><div class="box">
{body}
</div><p><small>Meta stand-in: not Facebook, not Instagram.</small></p></body></html>
"""


def render_consent(
    login: str, app: App, person: Person, requested: list[str], params: Mapping[str, Any]
) -> str:
    """The consent page: who logs in, to which app, with which scopes (ticked per the person)."""
    esc = html.escape
    brand = "Facebook" if login == FACEBOOK else "Instagram"
    if login == FACEBOOK:
        assets = "".join(
            f"<li>Page <b>{esc(p.name)}</b> (<code>{esc(p.id)}</code>)"
            + (
                f", Instagram <b>@{esc(p.instagram.username)}</b> "
                f"(<code>{esc(p.instagram.id)}</code>)"
                if p.instagram
                else ", no Instagram account linked"
            )
            + "</li>"
            for p in person.pages
        )
        who = f"{esc(person.name)} (<code>{esc(person.id)}</code>)"
    else:
        account = person.instagram
        assert account is not None
        assets = (
            f"<li>Instagram <b>@{esc(account.username)}</b> (<code>{esc(account.id)}</code>)</li>"
        )
        who = f"@{esc(account.username)}"
    boxes = "".join(
        f'<li><label><input type="checkbox" name="granted" value="{esc(s)}" '
        f'id="standin-scope-{esc(s)}"{" checked" if _ticked(person, s) else ""}>'
        f" <code>{esc(s)}</code></label></li>"
        for s in requested
    )
    hidden = "".join(
        f'<input type="hidden" name="{esc(name)}" value="{esc(_param(params, name))}">'
        for name in ("client_id", "redirect_uri", "scope", "state", "response_type")
        if _param(params, name)
    )
    body = f"""<h1>Log in with {brand}</h1>
<p>Logged in as {who}.</p>
<p><b>{esc(app.name)}</b> (app id <code id="standin-app-id">{esc(app.app_id)}</code>) asks for:</p>
<form method="post">
{hidden}<input type="hidden" name="granted_present" value="1">
<ul id="standin-scopes">{boxes or "<li>no permissions</li>"}</ul>
<p>Assets:</p><ul>{assets or "<li>none</li>"}</ul>
<button type="submit" id="standin-approve" name="decision" value="approve">Continue</button>
<button type="submit" id="standin-cancel" name="decision" value="cancel">Cancel</button>
</form>"""
    return _page(f"Log in with {brand}", body)


def _ticked(person: Person, scope: str) -> bool:
    return person.scopes is None or scope in person.scopes


def render_error(title: str, detail: str) -> str:
    return _page(
        title, f'<h1>{html.escape(title)}</h1><p id="standin-error">{html.escape(detail)}</p>'
    )


# --- Facebook Login ----------------------------------------------------------------------------
def _facebook_dialog(state: State, req: Request) -> Outcome:
    return _dialog(state, req, FACEBOOK)


def _facebook_access_token(state: State, req: Request) -> Outcome:
    logins = state.logins
    params = req.params
    app = _facebook_app(logins, params)
    grant_type = _param(params, "grant_type")
    if grant_type == "fb_exchange_token":
        return _json(_fb_exchange(state, app, _param(params, "fb_exchange_token")))
    if grant_type == "client_credentials":
        return _json({"access_token": f"{app.app_id}|{app.secret}", "token_type": "bearer"})
    if grant_type not in ("", "authorization_code"):
        raise GraphError(100, f"(#100) Unsupported grant_type: {grant_type}")

    redirect_uri = _param(params, "redirect_uri")
    if not redirect_uri:
        raise GraphError(100, "Missing redirect_uri parameter.")
    value = _param(params, "code")
    if not value:
        raise GraphError(100, "Missing code parameter.")
    code = logins.codes.get(value)
    if code is None or code.login != FACEBOOK or code.app_id != app.app_id:
        raise GraphError(100, CODE_INVALID)
    if code.used:
        raise GraphError(100, CODE_USED, subcode=36009)
    if code.expires_at <= time.time():
        raise GraphError(100, CODE_EXPIRED, subcode=36007)
    if code.redirect_uri != redirect_uri:
        # The code stays usable: Meta checks it against the same redirect_uri, nothing else.
        raise GraphError(100, REDIRECT_MISMATCH, subcode=36008)
    code.used = True
    token = logins.issue_token(logins.grants[code.grant_id], long_lived=False, source="code")
    return _json(_token_answer(token))


def _fb_exchange(state: State, app: App, value: str) -> dict[str, Any]:
    logins = state.logins
    if not value:
        raise GraphError(100, "Missing fb_exchange_token parameter.")
    short = logins.tokens.get(value)
    if short is None or short.login != FACEBOOK:
        raise GraphError(190, INVALID_TOKEN)
    problem = logins.problem(short)
    if problem is not None:
        raise GraphError(190, problem[1], subcode=problem[0])
    grant = logins.grants[short.grant_id]
    if grant.app_id != app.app_id:
        raise GraphError(
            190,
            "Error validating access token: the token does not belong to application "
            f"{app.app_id}.",
        )
    if short.kind != USER:
        raise GraphError(
            100, "(#100) fb_exchange_token must be a user access token (stand-in wording)"
        )
    token = logins.issue_token(grant, long_lived=True, source="fb_exchange_token")
    return _token_answer(token)


def _token_answer(token: Token) -> dict[str, Any]:
    return {
        "access_token": token.value,
        "token_type": "bearer",
        "expires_in": token.expires_in(time.time()),
    }


def _debug_token(state: State, req: Request) -> Outcome:
    logins = state.logins
    # The caller's token: "APPID|SECRET", or a valid token of the app.
    caller = req.token or ""
    app: App | None = None
    if "|" in caller:
        app_id, _, secret = caller.partition("|")
        app = logins.app_for(app_id)
        if app is None or app.secret != secret:
            raise GraphError(190, "Invalid OAuth access token signature.")
    else:
        issued = logins.tokens.get(caller)
        if issued is None or logins.problem(issued) is not None:
            raise GraphError(100, DEBUG_TOKEN_NEEDS_APP)
        app = logins.app_for(logins.grants[issued.grant_id].app_id)
    assert app is not None
    input_token = _param(req.params, "input_token")
    if not input_token:
        raise GraphError(100, "(#100) The parameter input_token is required")
    return _json({"data": describe_token(state, app, input_token)})


def describe_token(state: State, app: App, value: str) -> dict[str, Any]:
    """debug_token's ``data`` for one token (meta-api.md section 7)."""
    logins = state.logins
    issued = logins.tokens.get(value)
    if issued is None:
        if value in state.revoked:
            return _invalid(
                190, "Error validating access token: The session has been invalidated.", 460
            )
        if logins.settings.strict_tokens and value not in state.accounts:
            return _invalid(190, INVALID_TOKEN)
        # A token registered through the control API or made up: valid, like on the Graph.
        account = state.account_for(value) or {}
        return {
            "app_id": app.app_id,
            "type": USER,
            "application": app.name,
            "data_access_expires_at": 0,
            "expires_at": 0,
            "is_valid": True,
            "scopes": sorted(FACEBOOK_SCOPES),
            "granular_scopes": [],
            "user_id": str(account.get("id", "")),
        }
    if issued.login == INSTAGRAM and logins.settings.check_token_host:
        # Instagram Login tokens mean nothing to graph.facebook.com (meta-api.md section 7).
        return _invalid(190, CANNOT_PARSE_TOKEN)
    grant = logins.grants[issued.grant_id]
    token_app = logins.app_for(grant.app_id)
    data: dict[str, Any] = {
        "app_id": grant.app_id,
        "type": issued.kind,
        "application": token_app.name if token_app else grant.app_id,
        "data_access_expires_at": int(issued.data_access_expires_at),
        "expires_at": int(issued.expires_at),
        "is_valid": True,
        "issued_at": int(issued.issued_at),
        "scopes": list(grant.scopes),
        "granular_scopes": _granular(logins, grant),
        "user_id": grant.person_id,
    }
    if issued.kind == PAGE:
        data["profile_id"] = issued.page_id
    problem = logins.problem(issued)
    if problem is not None:
        data["is_valid"] = False
        data["error"] = {"code": 190, "message": problem[1], "subcode": problem[0]}
    return data


def _invalid(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if subcode is not None:
        error["subcode"] = subcode
    return {"error": error, "is_valid": False, "scopes": []}


def _granular(logins: Logins, grant: Grant) -> list[dict[str, Any]]:
    person = logins.people.get(grant.person_id)
    pages = person.pages if person else []
    out: list[dict[str, Any]] = []
    for scope in grant.scopes:
        if scope.startswith("pages_"):
            out.append({"scope": scope, "target_ids": [p.id for p in pages]})
        elif scope.startswith("instagram_"):
            ids = [p.instagram.id for p in pages if p.instagram is not None]
            out.append({"scope": scope, "target_ids": ids})
        else:
            out.append({"scope": scope})
    return out


def _me_accounts(state: State, req: Request) -> Outcome:
    logins = state.logins
    issued = _issued_user_token(state, req, FACEBOOK)
    if issued is None:
        return _json({"data": []})  # a token nobody logged in with has no Pages
    if issued.kind == PAGE:
        raise GraphError(
            100, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)"
        )
    grant = logins.grants[issued.grant_id]
    person = logins.people.get(grant.person_id)
    # Without pages_show_list Meta lists nothing [unsure: it may answer an error instead].
    if person is None or "pages_show_list" not in grant.scopes:
        return _json({"data": []})

    raw_fields = _param(req.params, "fields")
    fields = (
        parse_fields(raw_fields) if raw_fields else [(f, None) for f in ME_ACCOUNTS_DEFAULT_FIELDS]
    )
    for name, sub in fields:
        if name not in PAGE_FIELDS and name != "instagram_business_account":
            raise GraphError(
                100, f"(#100) Tried accessing nonexisting field ({name}) on node type (Page)"
            )
        for subname in sub or []:
            if subname not in IG_ACCOUNT_FIELDS:
                raise GraphError(
                    100,
                    f"(#100) Tried accessing nonexisting field ({subname}) on node type (IGUser)",
                )
    limit_text = _param(req.params, "limit")
    limit = int(limit_text) if limit_text.isdigit() and int(limit_text) > 0 else DEFAULT_PAGE_LIMIT
    limit = min(limit, MAX_PAGE_LIMIT)
    after = _param(req.params, "after")
    start = _uncursor(after) + 1 if after else 0
    chunk = person.pages[start : start + limit]

    data = []
    for page in chunk:
        item: dict[str, Any] = {}
        for name, sub in fields:
            if name == "access_token":
                item["access_token"] = logins.page_token(issued, page).value
            elif name == "instagram_business_account":
                # The linked account shows only with instagram_basic granted.
                if page.instagram is not None and "instagram_basic" in grant.scopes:
                    view = page.instagram.graph_view()
                    item[name] = {k: view[k] for k in (sub or ["id"]) if k in view}
                    item[name].setdefault("id", page.instagram.id)
            else:
                item[name] = list(page.tasks) if name == "tasks" else getattr(page, name)
        item.setdefault("id", page.id)
        data.append(item)
    answer: dict[str, Any] = {"data": data}
    if data:
        end = start + len(chunk) - 1
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(end)}}
        if end + 1 < len(person.pages):
            paging["next"] = _next_url(req, _cursor(end), limit)
        answer["paging"] = paging
    return _json(answer)


def _next_url(req: Request, after: str, limit: int) -> str:
    host = req.headers.get("Host") or "127.0.0.1"
    query = {k: v for k, v in req.query.items() if k not in ("after", "before")}
    query.update({"limit": str(limit), "after": after})
    return f"http://{host}{req.raw_path}?{urlencode(query, doseq=True)}"


def _me_permissions(state: State, req: Request) -> Outcome:
    logins = state.logins
    issued = _issued_user_token(state, req, FACEBOOK)
    if issued is None:
        if req.method == "DELETE":
            return _json({"success": True})
        return _json(
            {"data": [{"permission": s, "status": "granted"} for s in sorted(FACEBOOK_SCOPES)]}
        )
    if issued.kind == PAGE:
        raise GraphError(
            100, "(#100) Tried accessing nonexisting field (permissions) on node type (Page)"
        )
    grant = logins.grants[issued.grant_id]
    if req.method == "DELETE":
        # The person removes the app: every token of the login stops working (190/458).
        logins.deauthorize(grant)
        return _json({"success": True})
    data = [{"permission": s, "status": "granted"} for s in grant.scopes]
    data += [{"permission": s, "status": "declined"} for s in grant.declined]
    return _json({"data": data})


# --- Instagram Login -----------------------------------------------------------------------------
def _instagram_authorize(state: State, req: Request) -> Outcome:
    return _dialog(state, req, INSTAGRAM)


def _instagram_code_exchange(state: State, req: Request) -> Outcome:
    logins = state.logins
    if req.method != "POST":
        raise InstagramApiError("The code exchange only accepts POST", status=405)
    params = req.params
    client_id = _param(params, "client_id")
    if not client_id:
        raise InstagramApiError("Missing required field client_id")
    app = logins.app_by_id(INSTAGRAM, client_id)
    if app is None:
        raise InstagramApiError("Invalid platform app")
    if _param(params, "client_secret") != app.secret:
        raise InstagramApiError(BAD_SECRET)
    grant_type = _param(params, "grant_type")
    if grant_type != "authorization_code":
        raise InstagramApiError(f"Invalid grant_type: {grant_type or '(missing)'}")
    redirect_uri = _param(params, "redirect_uri")
    if not redirect_uri:
        raise InstagramApiError("Missing required field redirect_uri")
    value = _param(params, "code")
    if not value:
        raise InstagramApiError("Missing required field code")
    code = logins.codes.get(value)
    if code is None or code.login != INSTAGRAM or code.app_id != app.app_id:
        # Also a code sent with the "#_" Instagram appends to the redirect still on it.
        raise InstagramApiError("Invalid authorization code")
    if code.used:
        raise InstagramApiError("This authorization code has been used")
    if code.expires_at <= time.time():
        raise InstagramApiError("This authorization code has expired")
    if code.redirect_uri != redirect_uri:
        raise InstagramApiError(REDIRECT_MISMATCH)
    code.used = True
    grant = logins.grants[code.grant_id]
    token = logins.issue_token(grant, long_lived=False, source="code")
    account = logins.ig_account(grant.ig_account_id or "")
    user_id = account.app_user_id if account else grant.person_id
    if logins.settings.instagram_token_shape == "data":  # noqa: S105 (a shape name)
        # The newer documented shape: wrapped, user_id a string, permissions one comma string.
        item = {
            "access_token": token.value,
            "user_id": user_id,
            "permissions": ",".join(grant.scopes),
        }
        return _json({"data": [item]})
    # The flat shape seen in production: user_id a JSON number, permissions a list.
    return _json(
        {"access_token": token.value, "user_id": int(user_id), "permissions": list(grant.scopes)}
    )


def _instagram_token(state: State, req: Request) -> Token:
    """The Instagram Login token in ``access_token``, checked like graph.instagram.com does."""
    if req.host == FACEBOOK_HOST and state.logins.settings.check_token_host:
        # graph.facebook.com has no such endpoint: it reads the path as an object id.
        raise _unsupported_get(req.segments[-1])
    value = _param(req.params, "access_token") or req.token or ""
    if not value:
        raise GraphError(2500, MISSING_TOKEN_MESSAGE)
    issued = state.logins.tokens.get(value)
    if issued is None or issued.login != INSTAGRAM:
        raise GraphError(190, CANNOT_PARSE_TOKEN)
    problem = state.logins.problem(issued)
    if problem is not None:
        raise GraphError(190, problem[1], subcode=problem[0])
    return issued


def _unsupported_get(node: str) -> GraphError:
    return GraphError(
        100,
        f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
        type_=GRAPH_METHOD,
    )


def _instagram_exchange(state: State, req: Request) -> Outcome:
    logins = state.logins
    short = _instagram_token(state, req)
    grant_type = _param(req.params, "grant_type")
    if grant_type != "ig_exchange_token":
        raise GraphError(100, f"(#100) Unsupported grant_type: {grant_type or '(missing)'}")
    grant = logins.grants[short.grant_id]
    app = logins.app_for(grant.app_id)
    if app is None or _param(req.params, "client_secret") != app.secret:
        raise GraphError(1, BAD_SECRET)
    token = logins.issue_token(grant, long_lived=True, source="ig_exchange_token")
    return _json(_token_answer(token))


def _instagram_refresh(state: State, req: Request) -> Outcome:
    logins = state.logins
    current = _instagram_token(state, req)
    grant_type = _param(req.params, "grant_type")
    if grant_type != "ig_refresh_token":
        raise GraphError(100, f"(#100) Unsupported grant_type: {grant_type or '(missing)'}")
    if not current.long_lived:
        raise GraphError(100, REFRESH_SHORT_LIVED)
    too_young = time.time() - current.issued_at < REFRESH_MIN_AGE_SECONDS
    if too_young and not logins.settings.allow_early_refresh:
        raise GraphError(100, REFRESH_TOO_EARLY)
    token = logins.issue_token(
        logins.grants[current.grant_id], long_lived=True, source="ig_refresh_token"
    )
    answer = _token_answer(token)
    answer["expires_in"] = min(answer["expires_in"], LONG_LIVED_SECONDS)
    return _json(answer)


def _unknown(state: State, req: Request) -> Outcome:
    raise DialogError("Not Found", f"Nothing is served at {req.raw_path} on this host.", 404)


def _json(body: dict[str, Any], status: int = 200) -> Outcome:
    return Outcome(status, body)


HANDLERS: dict[str, Callable[[State, Request], Outcome]] = {
    OAUTH_DIALOG: _facebook_dialog,
    OAUTH_ACCESS_TOKEN: _facebook_access_token,
    DEBUG_TOKEN: _debug_token,
    ME_ACCOUNTS: _me_accounts,
    ME_PERMISSIONS: _me_permissions,
    IG_AUTHORIZE: _instagram_authorize,
    IG_OAUTH_ACCESS_TOKEN: _instagram_code_exchange,
    IG_EXCHANGE_TOKEN: _instagram_exchange,
    IG_REFRESH_TOKEN: _instagram_refresh,
    UNKNOWN: _unknown,
}


# --- entry point -------------------------------------------------------------------------------
def handle_oauth(
    state: State,
    endpoint: str,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    raw_body: bytes,
) -> Outcome:
    """Answer one OAuth or account request (``endpoint`` from ``route``) and log it."""
    host, segments = split_path(raw_path)
    query, body, body_error, params = parse_request(query_string, headers, raw_body)
    token = extract_token(headers, params)
    req = Request(endpoint, method, host, raw_path, segments, query, body, params, headers, token)
    client_id = _param(params, "client_id")

    with state.lock:
        fault = state.take_fault(endpoint, {client_id} if client_id else set())
        if fault is not None and fault.answers_error:
            error = from_fault(fault.status, fault.error)
            outcome = _error_outcome(endpoint, error)
        elif fault is not None and fault.drop and not fault.apply:
            outcome = Outcome(None, None)
        else:
            outcome = _process(state, req, body_error)
            if fault is not None and fault.drop:
                outcome = Outcome(None, None)  # Meta acted; the answer is lost on the way back
        state.count(endpoint, client_id or None, outcome.status)
        state.record(_log_entry(req, outcome, fault))
    if fault is not None:
        outcome.delay = fault.delay
    return outcome


def _process(state: State, req: Request, body_error: str | None) -> Outcome:
    try:
        if body_error:
            raise GraphError(100, f"(#100) {body_error}")
        return HANDLERS[req.endpoint](state, req)
    except (GraphError, InstagramApiError, DialogError) as error:
        return _error_outcome(req.endpoint, error)


def _error_outcome(endpoint: str, error: Exception) -> Outcome:
    if isinstance(error, DialogError):
        page = render_error(error.title, error.detail).encode()
        return Outcome(error.status, None, raw=page, content_type=HTML_TYPE)
    if endpoint in DIALOGS and isinstance(error, GraphError):
        # A fault on a dialog: a browser gets a page, not JSON.
        page = render_error("Error", error.message).encode()
        return Outcome(error.status, None, raw=page, content_type=HTML_TYPE)
    if isinstance(error, InstagramApiError):
        return Outcome(error.status, error.body())
    assert isinstance(error, GraphError)
    return Outcome(error.status, error.body())


def _log_entry(req: Request, outcome: Outcome, fault: Fault | None) -> dict[str, Any]:
    response: Any = outcome.body
    if outcome.raw is not None:
        location = outcome.headers.get("Location")
        # A redirect logs where it went (code masked); a page logs only that it was one.
        response = {"redirect": _mask_location(location)} if location else {"html": outcome.status}
    masked_token = req.token
    if masked_token and "|" in masked_token:
        masked_token = masked_token.partition("|")[0] + "|…"  # an app token: keep the app id
    else:
        masked_token = mask_token(masked_token)
    return {
        "seq": 0,  # set by State.record
        "time": time.time(),
        "method": req.method,
        "host": req.host,
        "path": req.raw_path,
        "endpoint": req.endpoint,
        "node": None,
        "sender": _param(req.params, "client_id") or None,
        "token": masked_token,
        "query": mask_secrets(req.query, _OAUTH_SECRET_KEYS),
        "body": mask_secrets(req.body, _OAUTH_SECRET_KEYS),
        "status": outcome.status,
        "response": mask_secrets(response),
        "fault": fault.id if fault is not None else None,
        "dropped": outcome.status is None,
    }


def _mask_location(location: str) -> str:
    # Only the code is secret; the rest of the redirect stays readable (no re-encoding).
    return _CODE_IN_URL.sub(lambda m: m.group(1) + (mask_token(m.group(2)) or ""), location)

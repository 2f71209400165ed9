"""The stand-in's own control API under ``/_standin/`` (no auth: it only ever runs locally).

Tests and people use it to read what the stand-in received, to plan failures (faults), to set
Meta-like rate limits and to register accounts, profiles, commenters and revoked tokens; under
``/_standin/oauth/`` to configure the OAuth apps, define who logs in, and age, expire, revoke or
narrow the tokens the OAuth endpoints issued.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from typing import Any

from meta.signatures import make_signed_request

from .logins import FACEBOOK, INSTAGRAM, LOGINS, SUBCODE_SESSION_INVALIDATED, Grant, Token
from .state import Fault, State, mask_token

JSON = "application/json"
Response = tuple[int, str, bytes]


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _json(data: Any, status: int = 200) -> Response:
    return status, JSON, json.dumps(data, ensure_ascii=False, default=str).encode()


def _load(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(f"body is not valid JSON: {exc}") from exc


def _object(raw: bytes) -> dict[str, Any]:
    data = _load(raw)
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


def _required(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None or str(value) == "":
        raise ControlError(f"'{name}' is required")
    return str(value)


def _int_param(query: dict[str, str], name: str) -> int | None:
    if query.get(name) in (None, ""):
        return None
    try:
        return int(query[name])
    except ValueError as exc:
        raise ControlError(f"'{name}' must be an integer") from exc


# --- handlers: (state, query, raw body) -> response ---------------------------------------------
def _get_requests(state: State, query: dict[str, str], raw: bytes) -> Response:
    since = _int_param(query, "since")
    limit = _int_param(query, "limit")
    with state.lock:
        entries = state.entries(query.get("endpoint") or None, since, limit)
    return _json({"requests": entries})


def _delete_requests(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        state.log.clear()
    return _json({"success": True})


def _reset(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        state.reset()
    return _json({"success": True})


def _get_faults(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json({"faults": [f.to_dict() for f in state.faults]})


def _add_faults(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _load(raw)
    items = data if isinstance(data, list) else [data]
    with state.lock:
        try:
            faults = [Fault.from_json(item, state.new_fault_id()) for item in items]
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        state.faults.extend(faults)
        created = [f.to_dict() for f in faults]
    return _json(created if isinstance(data, list) else created[0])


def _clear_faults(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        state.faults.clear()
    return _json({"success": True})


def _get_limits(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json(state.limits.to_dict())


def _set_limits(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    unknown = set(data) - {
        "send_per_second",
        "private_replies_per_hour",
        "conversations_per_second",
    }
    if unknown:
        raise ControlError(f"unknown limit(s): {', '.join(sorted(unknown))}")
    for name, value in data.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ControlError(f"'{name}' must be a positive integer or null")
        if value is not None and value < 1:
            raise ControlError(f"'{name}' must be a positive integer or null")
    with state.lock:
        # Only the limits named in the body change; null switches one off.
        for name, value in data.items():
            setattr(state.limits, name, value)
        return _json(state.limits.to_dict())


def _get_stats(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json(state.stats())


def _clear_stats(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        state.clear_stats()
    return _json({"success": True})


def _get_profiles(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json({"profiles": state.profiles})


def _set_profile(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    igsid = _required(data, "igsid")
    fields = {k: v for k, v in data.items() if k != "igsid"}
    with state.lock:
        profile = state.profiles.setdefault(igsid, {})
        profile.update(fields)
        return _json({"igsid": igsid, **profile})


def _set_media(state: State, query: dict[str, str], raw: bytes) -> Response:
    """A post the Graph API knows: ``{"media_id", "timestamp", ...}`` (Meta's field names)."""
    data = _object(raw)
    media_id = _required(data, "media_id")
    live = data.get("live")
    fields = {k: v for k, v in data.items() if k not in ("media_id", "live")}
    with state.lock:
        media = state.media.setdefault(media_id, {"media_product_type": "FEED"})
        media.update(fields)
        if live is True:
            state.live_media.add(media_id)
            media["media_product_type"] = "LIVE"
        elif live is False:
            state.live_media.discard(media_id)
        return _json({"id": media_id, **media, "live": media_id in state.live_media})


def _add_consent(state: State, query: dict[str, str], raw: bytes) -> Response:
    """The person messaged an account or tapped a button: Meta lets their profile be read."""
    igsid = _required(_object(raw), "igsid")
    with state.lock:
        state.consented.add(igsid)
    return _json({"igsid": igsid, "consent": True})


def _get_app_subscriptions(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        apps = {
            app_id: {
                obj: {k: v for k, v in entry.items() if k != "verify_token"}
                for obj, entry in objects.items()
            }
            for app_id, objects in state.app_subscriptions.items()
        }
    return _json({"apps": apps})


def _get_accounts(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        accounts = [{"token": mask_token(t), **a} for t, a in state.accounts.items()]
    return _json({"accounts": accounts})


def _add_account(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    token = _required(data, "token")
    account_id = _required(data, "id")
    account = {k: v for k, v in data.items() if k != "token" and v is not None}
    account["id"] = account_id
    # Instagram Login's /me has a user_id that can differ from id (meta-api.md 2.1).
    account["user_id"] = str(data.get("user_id") or account_id)
    account.setdefault("username", f"standin_{account_id}")
    with state.lock:
        state.accounts[token] = account
    return _json(account)


def _revoke_token(state: State, query: dict[str, str], raw: bytes) -> Response:
    token = _required(_object(raw), "token")
    with state.lock:
        state.revoked.add(token)
        issued = state.logins.tokens.get(token)
        if issued is not None:
            issued.revoked = SUBCODE_SESSION_INVALIDATED  # so debug_token says so too
    return _json({"success": True, "token": mask_token(token)})


def _get_comments(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json({"authors": state.comment_authors, "private_replied": state.private_replied})


def _add_comment(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    comment_id = _required(data, "comment_id")
    from_id = _required(data, "from_id")
    # Meta's IG Comment fields; a comment is made now unless its timestamp says otherwise.
    fields = {k: v for k, v in data.items() if k not in ("comment_id", "from_id")}
    fields.setdefault("timestamp", time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()))
    fields["from"] = {"id": from_id, **(fields.get("from") or {})}
    with state.lock:
        state.comment_authors[comment_id] = from_id
        state.comments[comment_id] = fields
    return _json({"comment_id": comment_id, "from_id": from_id, **fields})


def _add_inbound_message(state: State, query: dict[str, str], raw: bytes) -> Response:
    """A person wrote to the account (``{"owner", "person", "text"}``): the conversation
    between them now exists, as it does at Meta before the account may answer, and the person
    has given the consent a profile read needs (User Profile API)."""
    data = _object(raw)
    owner, person = _required(data, "owner"), _required(data, "person")
    text = data.get("text") or ""
    if not isinstance(text, str):
        raise ControlError("'text' must be a string")
    with state.lock:
        mid = state.new_mid()
        state.remember_message(
            owner=owner,
            person=person,
            mid=mid,
            text=text,
            sender={"id": person, "username": f"user_{person}"},
            inbound=True,
        )
        conversation_id = state.conversation_ids[(owner, person)]
        state.consented.add(person)
    return _json({"message_id": mid, "conversation_id": conversation_id})


def _get_subscriptions(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json({"subscriptions": state.subscriptions})


# --- OAuth: apps, people, settings, tokens -------------------------------------------------------
def _get_apps(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json({login: app.to_dict() for login, app in state.logins.apps.items()})


def _set_apps(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    unknown = set(data) - set(LOGINS)
    if unknown:
        raise ControlError(
            f"unknown login(s): {', '.join(sorted(unknown))}; use facebook, instagram"
        )
    changes: dict[str, dict[str, Any]] = {}
    for login, fields in data.items():
        if not isinstance(fields, dict):
            raise ControlError(f"'{login}' must be an object")
        bad = set(fields) - {"app_id", "app_secret", "name", "redirect_uris"}
        if bad:
            raise ControlError(f"unknown app field(s): {', '.join(sorted(bad))}")
        for name in ("app_id", "app_secret", "name"):
            if name in fields and (not isinstance(fields[name], str) or not fields[name]):
                raise ControlError(f"'{login}.{name}' must be a non-empty string")
        uris = fields.get("redirect_uris")
        if uris is not None and (
            not isinstance(uris, list) or not all(isinstance(u, str) for u in uris)
        ):
            raise ControlError(f"'{login}.redirect_uris' must be a list of URLs")
        changes[login] = fields
    with state.lock:
        for login, fields in changes.items():
            app = state.logins.apps[login]
            app.app_id = fields.get("app_id", app.app_id)
            app.secret = fields.get("app_secret", app.secret)
            app.name = fields.get("name", app.name)
            if "redirect_uris" in fields:
                app.redirect_uris = list(fields["redirect_uris"])
        return _json({login: app.to_dict() for login, app in state.logins.apps.items()})


def _get_people(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        logins = state.logins
        people = [p.to_dict() for p in logins.people.values()]
        return _json({"people": people, "current": logins.current_person})


def _add_person(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    with state.lock:
        try:
            person = state.logins.add_person(data)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return _json({**person.to_dict(), "current": state.logins.current_person == person.id})


def _clear_people(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        state.logins.people.clear()
        state.logins.current_person = None
    return _json({"success": True})


def _get_settings(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        return _json(state.logins.settings.to_dict())


def _set_settings(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    with state.lock:
        try:
            state.logins.settings.update(data)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return _json(state.logins.settings.to_dict())


def _get_tokens(state: State, query: dict[str, str], raw: bytes) -> Response:
    filters = {k: query[k] for k in ("login", "kind", "person_id", "page_id") if query.get(k)}
    with state.lock:
        logins = state.logins
        tokens = [logins.describe(t) for t in logins.tokens.values()]
    tokens = [t for t in tokens if all(str(t.get(k)) == v for k, v in filters.items())]
    return _json({"tokens": tokens})


def _token_from(state: State, data: dict[str, Any]) -> Token:
    """The issued token a control call names: ``{"token": "<full value>"}`` or ``{"handle": 3}``."""
    if data.get("token") is None and data.get("handle") is None:
        raise ControlError(
            "'token' (the full value) or 'handle' (from GET /_standin/oauth/tokens) is required"
        )
    token = state.logins.find_token(
        data.get("token") if data.get("token") is not None else data.get("handle")
    )
    if token is None:
        raise ControlError(
            "no issued token matches (tokens registered with /_standin/accounts are not "
            "issued ones)",
            404,
        )
    return token


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"'{name}' must be a number (epoch seconds)")
    return float(value)


def _expire_token(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    with state.lock:
        token = _token_from(state, data)
        token.expires_at = time.time() - 1
        return _json(state.logins.describe(token))


def _update_token(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    unknown = set(data) - {
        "token",
        "handle",
        "issued_at",
        "expires_at",
        "data_access_expires_at",
        "age",
        "scopes",
    }
    if unknown:
        raise ControlError(f"unknown field(s): {', '.join(sorted(unknown))}")
    issued_at = _number(data, "issued_at")
    expires_at = _number(data, "expires_at")
    data_access = _number(data, "data_access_expires_at")
    age = _number(data, "age")
    scopes = data.get("scopes")
    if scopes is not None and (
        not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
    ):
        raise ControlError("'scopes' must be a list of scope names")
    with state.lock:
        token = _token_from(state, data)
        if age is not None:
            # Age the token keeping its lifetime: both ends move back together.
            shift = (time.time() - age) - token.issued_at
            token.issued_at += shift
            if token.expires_at:
                token.expires_at += shift
        if issued_at is not None:
            token.issued_at = issued_at
        if expires_at is not None:
            token.expires_at = expires_at
        if data_access is not None:
            token.data_access_expires_at = data_access
        if scopes is not None:
            # Scopes belong to the grant: every token of that login sees the change, like a
            # permission removed in the person's settings.
            grant = state.logins.grants[token.grant_id]
            grant.scopes = list(dict.fromkeys(scopes))
            grant.declined = [s for s in grant.requested if s not in grant.scopes]
        return _json(state.logins.describe(token))


def _revoke_issued(state: State, query: dict[str, str], raw: bytes) -> Response:
    data = _object(raw)
    subcode = data.get("subcode", SUBCODE_SESSION_INVALIDATED)
    if not isinstance(subcode, int) or isinstance(subcode, bool):
        raise ControlError("'subcode' must be an integer")
    with state.lock:
        token = _token_from(state, data)
        token.revoked = subcode
        return _json(state.logins.describe(token))


def _deauthorize(state: State, query: dict[str, str], raw: bytes) -> Response:
    """The person removes the app: tokens die (190/458) and Meta's callback body is returned."""
    data = _object(raw)
    with state.lock:
        logins = state.logins
        grant: Grant = logins.grants[_token_from(state, data).grant_id]
        revoked = logins.deauthorize(grant)
        user_id = grant.person_id
        if grant.login == INSTAGRAM and grant.ig_account_id:
            account = logins.ig_account(grant.ig_account_id)
            user_id = account.app_user_id if account else user_id
        secret = logins.apps[grant.login].secret
    payload = {"user_id": user_id, "issued_at": int(time.time())}
    return _json(
        {
            "revoked": revoked,
            "login": grant.login,
            "user_id": user_id,
            "signed_request": make_signed_request(payload, secret),
        }
    )


def _signed_request(state: State, query: dict[str, str], raw: bytes) -> Response:
    """A ``signed_request`` like Meta's callbacks carry, signed with the login's app secret."""
    data = _object(raw)
    login = data.pop("login", FACEBOOK)
    if login not in LOGINS:
        raise ControlError("'login' must be facebook or instagram")
    data.setdefault("issued_at", int(time.time()))
    with state.lock:
        secret = state.logins.apps[login].secret
    return _json({"signed_request": make_signed_request(data, secret), "payload": data})


def _health(state: State, query: dict[str, str], raw: bytes) -> Response:
    return _json({"ok": True})


def _page(state: State, query: dict[str, str], raw: bytes) -> Response:
    with state.lock:
        entries = state.entries(limit=100)
        stats = state.stats()
        faults = len(state.faults)
        limits = state.limits.to_dict()
    return 200, "text/html; charset=utf-8", render_page(entries, stats, faults, limits).encode()


ROUTES: dict[tuple[str, str], Callable[[State, dict[str, str], bytes], Response]] = {
    ("GET", ""): _page,
    ("GET", "health"): _health,
    ("GET", "requests"): _get_requests,
    ("DELETE", "requests"): _delete_requests,
    ("POST", "reset"): _reset,
    ("GET", "faults"): _get_faults,
    ("POST", "faults"): _add_faults,
    ("DELETE", "faults"): _clear_faults,
    ("GET", "limits"): _get_limits,
    ("POST", "limits"): _set_limits,
    ("GET", "stats"): _get_stats,
    ("DELETE", "stats"): _clear_stats,
    ("GET", "profiles"): _get_profiles,
    ("POST", "profiles"): _set_profile,
    ("POST", "media"): _set_media,
    ("POST", "consent"): _add_consent,
    ("GET", "app_subscriptions"): _get_app_subscriptions,
    ("GET", "accounts"): _get_accounts,
    ("POST", "accounts"): _add_account,
    ("POST", "tokens/revoke"): _revoke_token,
    ("GET", "comments"): _get_comments,
    ("POST", "comments"): _add_comment,
    ("GET", "subscriptions"): _get_subscriptions,
    ("POST", "conversations/messages"): _add_inbound_message,
    ("GET", "oauth/apps"): _get_apps,
    ("POST", "oauth/apps"): _set_apps,
    ("GET", "oauth/people"): _get_people,
    ("POST", "oauth/people"): _add_person,
    ("DELETE", "oauth/people"): _clear_people,
    ("GET", "oauth/settings"): _get_settings,
    ("POST", "oauth/settings"): _set_settings,
    ("GET", "oauth/tokens"): _get_tokens,
    ("POST", "oauth/tokens/expire"): _expire_token,
    ("POST", "oauth/tokens/update"): _update_token,
    ("POST", "oauth/tokens/revoke"): _revoke_issued,
    ("POST", "oauth/deauthorize"): _deauthorize,
    ("POST", "oauth/signed_request"): _signed_request,
}


def handle_control(
    state: State, method: str, subpath: str, query: dict[str, str], raw_body: bytes
) -> Response:
    """Answer one control request; ``subpath`` is the path after ``/_standin/``."""
    handler = ROUTES.get((method, subpath.strip("/")))
    if handler is None:
        known = sorted({f"{m} /_standin/{p}" for m, p in ROUTES})
        return _json({"error": "unknown control endpoint", "endpoints": known}, 404)
    try:
        return handler(state, query, raw_body)
    except ControlError as exc:
        return _json({"error": str(exc)}, exc.status)


# --- the HTML page ---------------------------------------------------------------------------
def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_page(
    entries: list[dict[str, Any]], stats: dict[str, Any], faults: int, limits: dict[str, Any]
) -> str:
    """Last requests, newest first, for a person watching the demo in a browser."""
    rows = []
    for e in reversed(entries):
        status = "dropped" if e["dropped"] else e["status"]
        css = "err" if e["dropped"] or (e["status"] or 0) >= 400 else "ok"
        clock = time.strftime("%H:%M:%S", time.localtime(e["time"]))
        rows.append(
            f"<tr class={css}><td>{e['seq']}</td><td>{clock}</td>"
            f"<td>{html.escape(e['method'])}</td><td>{html.escape(e['path'])}</td>"
            f"<td>{html.escape(e['endpoint'])}</td><td>{html.escape(str(status))}</td>"
            f"<td><code>{html.escape(_short(e['body']))}</code></td>"
            f"<td><code>{html.escape(_short(e['response']))}</code></td></tr>"
        )
    counts = ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(stats["endpoints"].items()))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Meta Graph API stand-in</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }}
tr.err td {{ background: #fde8e8; }}
code {{ white-space: pre-wrap; word-break: break-all; }}
</style></head><body>
<h1>Meta Graph API stand-in</h1>
<p>Requests received: {stats["total"]} ({counts or "none yet"}).
Rate-limit violations: {stats["violations"]["total"]}. Pending faults: {faults}.
Limits: {html.escape(json.dumps(limits))}.
JSON: <a href="/_standin/requests">requests</a>, <a href="/_standin/stats">stats</a>,
<a href="/_standin/faults">faults</a>. This page refreshes every 2 seconds.</p>
<table><thead><tr><th>#</th><th>time</th><th>method</th><th>path</th><th>endpoint</th>
<th>status</th><th>body</th><th>response</th></tr></thead>
<tbody>
{"".join(rows) or '<tr><td colspan="8">No requests yet.</td></tr>'}
</tbody></table></body></html>
"""

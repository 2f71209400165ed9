"""Webhook subscriptions, as strict as Meta about what goes where (meta-api.md section 2).

Two layers, both needed before Meta sends anything:

- the app's Webhooks product (``/{app-id}/subscriptions``, app access token ``{id}|{secret}``):
  which fields of which object, the callback URL and verify token. Meta checks the callback
  with the verification GET before it answers; so does the stand-in, outside the state lock;
- per account (``/{node}/subscribed_apps``): a Facebook Page takes only Page fields (``feed``,
  ``messages``...) and refuses Instagram field names with error 100; Instagram Login's
  ``/me/subscribed_apps`` takes the Instagram fields.

Docs: https://developers.facebook.com/docs/graph-api/reference/app/subscriptions/ ,
https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps ,
https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from meta import oauth

from .errors import GraphError, from_fault, invalid_param
from .state import APP_SUBSCRIPTIONS, State, mask_secrets, mask_token

# The Instagram object's fields (object "instagram") [doc: Instagram webhooks reference].
INSTAGRAM_FIELDS = (
    "comments",
    "live_comments",
    "mentions",
    "message_edit",
    "message_reactions",
    "messages",
    "messaging_handover",
    "messaging_optins",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_seen",
    "standby",
    "story_insights",
)
# Page fields (object "page") as Meta's error message lists them [seen]; the order is Meta's.
PAGE_FIELDS = (
    "feed",
    "mention",
    "name",
    "picture",
    "category",
    "description",
    "conversations",
    "inbox_labels",
    "standby",
    "message_mention",
    "messages",
    "message_reactions",
    "messaging_account_linking",
    "messaging_checkout_updates",
    "message_echoes",
    "message_deliveries",
    "messaging_optins",
    "messaging_optouts",
    "messaging_payments",
    "messaging_postbacks",
    "messaging_pre_checkouts",
    "message_reads",
    "messaging_referrals",
    "messaging_handovers",
    "messaging_policy_enforcement",
    "messaging_feedback",
    "group_feed",
    "leadgen",
    "live_videos",
    "ratings",
)
OBJECT_FIELDS: dict[str, tuple[str, ...]] = {"instagram": INSTAGRAM_FIELDS, "page": PAGE_FIELDS}
APP_TOKEN_REQUIRED = "(#15) This method must be called with an app access_token."  # noqa: S105
VERIFY_TIMEOUT_SECONDS = 5.0
VERSION = "v24.0"


def split_fields(value: Any) -> list[str]:
    if isinstance(value, list):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = value.split(",")
    else:
        return []
    return [f.strip() for f in items if f.strip()]


# --- per account: /{node}/subscribed_apps --------------------------------------------------------
def check_fields(
    fields: list[str], allowed: tuple[str, ...], param: str = "subscribed_fields"
) -> None:
    """Meta's error 100 for the first field the object does not have (a Page takes Page fields
    only: Instagram names there are refused, and the other way round)."""
    for index, name in enumerate(fields):
        if name not in allowed:
            raise invalid_param(
                f"(#100) Param {param}[{index}] must be one of {{{', '.join(allowed)}}} "
                f'- got "{name}"'
            )


# --- the app: /{app-id}/subscriptions --------------------------------------------------------
def is_app_subscriptions(host_segments: list[str]) -> bool:
    return len(host_segments) == 2 and host_segments[1] == "subscriptions"


def _app_for_token(state: State, app_id: str, token: str | None):
    if not token or "|" not in token:
        raise GraphError(15, APP_TOKEN_REQUIRED)
    token_app_id, _, secret = token.partition("|")
    app = state.logins.app_for(token_app_id)
    if app is None or app.secret != secret:
        raise GraphError(190, "Invalid OAuth access token signature.")
    if token_app_id != app_id:
        raise GraphError(
            100,
            f"Unsupported request. Object with ID '{app_id}' does not exist, cannot be loaded "
            "due to missing permissions, or does not support this operation.",
            subcode=33,
        )
    return app


def _callback_url(params: Mapping[str, Any]) -> str:
    url = params.get("callback_url")
    if not isinstance(url, str) or not url.strip():
        raise invalid_param("(#100) The parameter callback_url is required")
    parts = urlsplit(url.strip())
    # Meta requires HTTPS with a valid certificate [doc]; the stand-in lets a loopback HTTP
    # callback through so the product can be tried locally against it.
    if parts.scheme != "https" and not (
        parts.scheme == "http" and oauth.is_loopback(parts.hostname or "")
    ):
        raise invalid_param("(#100) Param callback_url must be a valid https URL")
    return url.strip()


def _validated(params: Mapping[str, Any]) -> tuple[str, list[str], str, str]:
    """(object, fields, callback_url, verify_token) of a POST, or Meta's error."""
    object_type = params.get("object")
    if object_type not in OBJECT_FIELDS:
        raise invalid_param(
            f"(#100) Param object must be one of {{{', '.join(sorted(OBJECT_FIELDS))}}}"
        )
    fields = split_fields(params.get("fields"))
    if not fields:
        raise invalid_param("(#100) The parameter fields is required")
    check_fields(fields, OBJECT_FIELDS[object_type], "fields")
    callback = _callback_url(params)
    verify_token = params.get("verify_token")
    if not isinstance(verify_token, str) or not verify_token:
        raise invalid_param("(#100) The parameter verify_token is required")
    return object_type, fields, callback, verify_token


def verify_callback(callback_url: str, verify_token: str) -> None:
    """Meta's verification request: GET the callback with a challenge; it must echo it."""
    challenge = str(secrets.randbelow(10**9) + 10**8)
    query = urlencode(
        {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    )
    separator = "&" if "?" in callback_url else "?"
    prefix = "(#2200) callback verification failed: The URL couldn't be validated."
    try:
        response = requests.get(f"{callback_url}{separator}{query}", timeout=VERIFY_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        reason = f"{prefix} Couldn't connect to server ({type(exc).__name__})."
        raise GraphError(2200, reason) from None
    if response.status_code != 200:
        raise GraphError(
            2200,
            f"{prefix} Callback verification failed with the following errors: "
            f"HTTP Status Code = {response.status_code}; HTTP Message = {response.reason}",
        )
    received = response.text.strip()
    if received != challenge:
        raise GraphError(
            2200,
            f'{prefix} Response does not match challenge, expected value="{challenge}", '
            f'received="{received[:40]}"',
        )


def _masked(token: str | None) -> str | None:
    # An app token keeps its app id readable; its secret never reaches the log.
    if token and "|" in token:
        return token.partition("|")[0] + "|…"
    return mask_token(token)


def _listing(state: State, app_id: str) -> dict[str, Any]:
    data = [
        {
            "object": object_type,
            "callback_url": entry["callback_url"],
            "active": entry["active"],
            "fields": [{"name": name, "version": VERSION} for name in entry["fields"]],
        }
        for object_type, entry in state.app_subscriptions.get(app_id, {}).items()
    ]
    return {"data": data}


def handle_app_subscriptions(
    state: State,
    method: str,
    app_id: str,
    raw_path: str,
    params: dict[str, Any],
    query: dict[str, Any],
    token: str | None,
) -> tuple[int | None, dict[str, Any] | None, float]:
    """Answer ``/{app-id}/subscriptions``; (status, body, delay). Takes the lock itself: the
    verification GET of a POST runs outside it (it may take seconds)."""
    with state.lock:
        fault = state.take_fault(APP_SUBSCRIPTIONS, {app_id})
    delay = fault.delay if fault is not None else 0.0
    status: int | None
    body: dict[str, Any] | None
    if fault is not None and fault.answers_error:
        error = from_fault(fault.status, fault.error)
        status, body = error.status, error.body()
    elif fault is not None and fault.drop and not fault.apply:
        status, body = None, None
    else:
        status, body = _answer(state, method, app_id, params, token)
        if fault is not None and fault.drop:
            status = None
    with state.lock:
        state.count(APP_SUBSCRIPTIONS, app_id, status)
        state.record(
            {
                "seq": 0,
                "time": time.time(),
                "method": method,
                "host": "facebook",
                "path": raw_path,
                "endpoint": APP_SUBSCRIPTIONS,
                "node": app_id,
                "sender": app_id,
                "token": _masked(token),
                "query": mask_secrets(query, frozenset({"verify_token"})),
                "body": mask_secrets(
                    {k: v for k, v in params.items() if k not in query},
                    frozenset({"verify_token"}),
                ),
                "status": status,
                "response": body,
                "fault": fault.id if fault is not None else None,
                "dropped": status is None,
            }
        )
    return status, body, delay


def _answer(
    state: State, method: str, app_id: str, params: dict[str, Any], token: str | None
) -> tuple[int, dict[str, Any]]:
    try:
        with state.lock:
            _app_for_token(state, app_id, token)
            if method == "GET":
                return 200, _listing(state, app_id)
            if method == "DELETE":
                object_type = params.get("object")
                subscriptions = state.app_subscriptions.get(app_id, {})
                if isinstance(object_type, str) and object_type:
                    subscriptions.pop(object_type, None)
                else:
                    subscriptions.clear()
                return 200, {"success": True}
            if method != "POST":
                raise invalid_param(f"(#100) Unsupported {method.lower()} request.")
            object_type, fields, callback, verify_token = _validated(params)
        verify_callback(callback, verify_token)  # outside the lock: it waits for our app
        with state.lock:
            entry = state.app_subscriptions.setdefault(app_id, {}).get(object_type)
            # New fields are added to those already set, as at Meta; the URL is replaced.
            known = list(entry["fields"]) if entry and entry["callback_url"] == callback else []
            state.app_subscriptions[app_id][object_type] = {
                "callback_url": callback,
                "verify_token": verify_token,
                "fields": known + [name for name in fields if name not in known],
                "active": True,
            }
        return 200, {"success": "true"}  # a string, as in Meta's sample answer
    except GraphError as error:
        return error.status, error.body()

"""``StandInControl``: a small client for the stand-in's control API, for tests and scripts."""

from __future__ import annotations

import time
from typing import Any

import requests

_UNSET: Any = object()


class StandInControl:
    """Wraps ``/_standin/...``; every method raises ``requests.HTTPError`` on a refused call."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(
            method, f"{self.url}/_standin/{path}", timeout=self.timeout, **kwargs
        )
        if response.status_code >= 400:
            raise requests.HTTPError(
                f"stand-in refused {method} /_standin/{path}: {response.status_code} "
                f"{response.text}",
                response=response,
            )
        return response.json()

    # --- log -------------------------------------------------------------------------------
    def requests(
        self, endpoint: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Logged Graph requests, oldest first; ``since`` is a ``seq`` (exclusive)."""
        params = {"endpoint": endpoint, "since": since, "limit": limit}
        params = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", "requests", params=params)["requests"]

    def last_seq(self) -> int:
        """The newest logged seq (0 when empty): pass it as ``since`` to see only what follows."""
        entries = self.requests(limit=1)
        return entries[-1]["seq"] if entries else 0

    def clear(self) -> None:
        self._call("DELETE", "requests")

    def reset(self) -> None:
        self._call("POST", "reset")

    def wait_for(
        self,
        endpoint: str,
        count: int = 1,
        timeout: float = 5.0,
        since: int | None = None,
        interval: float = 0.02,
    ) -> list[dict[str, Any]]:
        """Poll until ``count`` requests of ``endpoint`` were logged; returns all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(endpoint=endpoint, since=since)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = sorted({e["endpoint"] for e in self.requests(since=since)})
                raise TimeoutError(
                    f"stand-in received {len(found)} '{endpoint}' request(s) within {timeout}s, "
                    f"expected {count}; endpoints seen: {', '.join(seen) or 'none'}"
                )
            time.sleep(interval)

    # --- faults ----------------------------------------------------------------------------
    def add_fault(
        self,
        endpoint: str = "any",
        *,
        node: str | None = None,
        times: int | None = 1,
        status: int | None = None,
        error: dict[str, Any] | None = None,
        delay: float | None = None,
        drop: bool = False,
        apply: bool = False,
        probability: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Plan a failure; ``times=None`` keeps it until cleared. Returns the stored fault.

        ``probability`` hits only that share of the matching calls (seeded by ``seed``)."""
        body: dict[str, Any] = {"endpoint": endpoint, "times": times}
        optional = {
            "node": node,
            "status": status,
            "error": error,
            "delay": delay,
            "probability": probability,
            "seed": seed,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if drop:
            body["drop"] = True
        if apply:
            body["apply"] = True
        return self._call("POST", "faults", json=body)

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    # --- limits and stats --------------------------------------------------------------------
    def set_limits(
        self,
        send_per_second: int | None = _UNSET,
        private_replies_per_hour: int | None = _UNSET,
        conversations_per_second: int | None = _UNSET,
    ) -> dict[str, Any]:
        """Set the named limits (None switches one off); omitted ones stay as they are."""
        body = {
            k: v
            for k, v in {
                "send_per_second": send_per_second,
                "private_replies_per_hour": private_replies_per_hour,
                "conversations_per_second": conversations_per_second,
            }.items()
            if v is not _UNSET
        }
        return self._call("POST", "limits", json=body)

    def limits(self) -> dict[str, Any]:
        return self._call("GET", "limits")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def clear_stats(self) -> None:
        self._call("DELETE", "stats")

    # --- registrations -------------------------------------------------------------------------
    def set_profile(self, igsid: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "profiles", json={"igsid": igsid, **fields})

    def register_media(self, media_id: str, **fields: Any) -> dict[str, Any]:
        """A post with Meta's fields, e.g. ``timestamp="2026-11-25T10:00:00+0000"``;
        ``live=True`` / ``live=False``: its live broadcast is on / has ended."""
        return self._call("POST", "media", json={"media_id": media_id, **fields})

    def record_consent(self, igsid: str) -> None:
        """The person messaged the account or tapped a button: their profile can be read."""
        self._call("POST", "consent", json={"igsid": igsid})

    def app_subscriptions(self) -> dict[str, Any]:
        """The apps' Webhooks settings: app id -> object -> callback URL, fields, active."""
        return self._call("GET", "app_subscriptions")["apps"]

    def register_account(
        self,
        token: str,
        id: str,  # mirrors Meta's field name
        user_id: str | None = None,
        username: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body = {"token": token, "id": id, "user_id": user_id, "username": username, **fields}
        return self._call("POST", "accounts", json=body)

    def revoke_token(self, token: str) -> None:
        self._call("POST", "tokens/revoke", json={"token": token})

    def person_wrote(self, owner: str, person: str, text: str = "") -> dict[str, Any]:
        """A person wrote to the account (page or Instagram id): their conversation exists."""
        body = {"owner": owner, "person": person, "text": text}
        return self._call("POST", "conversations/messages", json=body)

    def register_comment(self, comment_id: str, from_id: str, **fields: Any) -> None:
        """A comment by ``from_id``; Meta's fields such as ``timestamp`` (when it was made,
        ``2026-11-25T10:00:00+0000``), ``text``, ``media`` are what ``GET /{comment-id}``
        answers."""
        body = {"comment_id": comment_id, "from_id": from_id, **fields}
        self._call("POST", "comments", json=body)

    def comments(self) -> dict[str, Any]:
        return self._call("GET", "comments")

    def subscriptions(self) -> dict[str, list[str]]:
        return self._call("GET", "subscriptions")["subscriptions"]

    # --- OAuth (docs/standin.md, "OAuth and accounts") ------------------------------------------
    def oauth_apps(self) -> dict[str, Any]:
        """The Facebook and Instagram apps the OAuth endpoints accept (secrets masked)."""
        return self._call("GET", "oauth/apps")

    def set_oauth_app(
        self,
        login: str = "facebook",
        *,
        app_id: str | None = None,
        app_secret: str | None = None,
        name: str | None = None,
        redirect_uris: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change one login's app (``facebook`` or ``instagram``); omitted fields stay."""
        fields = {"app_id": app_id, "app_secret": app_secret, "name": name}
        body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if redirect_uris is not None:
            body["redirect_uris"] = redirect_uris
        return self._call("POST", "oauth/apps", json={login: body})

    def define_person(
        self,
        *,
        id: str | None = None,  # mirrors Meta's field name
        name: str | None = None,
        pages: list[dict[str, Any]] | None = None,
        instagram: dict[str, Any] | None = None,
        scopes: list[str] | None = None,
        login: bool = True,
    ) -> dict[str, Any]:
        """Define who logs in next (``login=False``: only define them).

        ``pages``: ``[{"id", "name", "tasks": [...], "instagram": {"id", "username",
        "app_user_id"} | None}]`` (omitted: one page with an Instagram account). ``instagram``:
        the account used for Instagram Login (omitted: the first page's). ``scopes``: what the
        person grants when asked (omitted: everything asked); fewer simulates a declined one.
        Returns the person with every default filled in.
        """
        body: dict[str, Any] = {"login": login}
        optional = {"id": id, "name": name, "pages": pages, "instagram": instagram}
        body.update({k: v for k, v in optional.items() if v is not None})
        if scopes is not None:
            body["scopes"] = scopes
        return self._call("POST", "oauth/people", json=body)

    def people(self) -> dict[str, Any]:
        """``{"people": [...], "current": <id of who logs in next>}``."""
        return self._call("GET", "oauth/people")

    def clear_people(self) -> None:
        self._call("DELETE", "oauth/people")

    def oauth_settings(self) -> dict[str, Any]:
        return self._call("GET", "oauth/settings")

    def set_oauth_settings(self, **settings: Any) -> dict[str, Any]:
        """``consent`` (ask|approve|cancel), ``instagram_token_shape`` (flat|data),
        ``allow_early_refresh``, ``check_token_host``, ``strict_tokens``."""
        return self._call("POST", "oauth/settings", json=settings)

    def set_auto_approve(self, on: bool = True) -> dict[str, Any]:
        """Dialogs redirect at once with a code (on) or show the consent page (off)."""
        return self.set_oauth_settings(consent="approve" if on else "ask")

    def tokens(self, **filters: str) -> list[dict[str, Any]]:
        """Issued tokens, masked; filter by ``login``, ``kind``, ``person_id``, ``page_id``."""
        return self._call("GET", "oauth/tokens", params=filters)["tokens"]

    @staticmethod
    def _token_ref(token: str | int) -> dict[str, Any]:
        return {"handle": token} if isinstance(token, int) else {"token": token}

    def expire_token(self, token: str | int) -> dict[str, Any]:
        """Make an issued token (full value or handle) expired now: calls get 190/463."""
        return self._call("POST", "oauth/tokens/expire", json=self._token_ref(token))

    def update_token(
        self,
        token: str | int,
        *,
        issued_at: float | None = None,
        expires_at: float | None = None,
        data_access_expires_at: float | None = None,
        age: float | None = None,
        scopes: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change an issued token's times (epoch seconds; ``age`` moves both ends back to make it
        that many seconds old) or its login's granted scopes (a permission revoked)."""
        body = self._token_ref(token)
        optional = {
            "issued_at": issued_at,
            "expires_at": expires_at,
            "data_access_expires_at": data_access_expires_at,
            "age": age,
            "scopes": scopes,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._call("POST", "oauth/tokens/update", json=body)

    def revoke_issued_token(self, token: str | int, subcode: int = 460) -> dict[str, Any]:
        """Revoke one issued token with a 190 subcode (460 password changed, 458 app removed)."""
        body = {**self._token_ref(token), "subcode": subcode}
        return self._call("POST", "oauth/tokens/revoke", json=body)

    def deauthorize(self, token: str | int) -> dict[str, Any]:
        """The person removes the app: every token of that login dies (190/458). Returns
        ``{"revoked", "login", "user_id", "signed_request"}`` for the deauthorize callback."""
        return self._call("POST", "oauth/deauthorize", json=self._token_ref(token))

    def signed_request(self, login: str = "facebook", **payload: Any) -> str:
        """A ``signed_request`` signed with that login's app secret (``algorithm`` and
        ``issued_at`` added)."""
        body = {"login": login, **payload}
        return self._call("POST", "oauth/signed_request", json=body)["signed_request"]

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "health").get("ok"))
        except requests.RequestException:
            return False

    def close(self) -> None:
        self._session.close()

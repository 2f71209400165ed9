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
    ) -> dict[str, Any]:
        """Plan a failure; ``times=None`` keeps it until cleared. Returns the stored fault."""
        body: dict[str, Any] = {"endpoint": endpoint, "times": times}
        optional = {"node": node, "status": status, "error": error, "delay": delay}
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
        self, send_per_second: int | None = _UNSET, private_replies_per_hour: int | None = _UNSET
    ) -> dict[str, Any]:
        """Set the named limits (None switches one off); omitted ones stay as they are."""
        body = {
            k: v
            for k, v in {
                "send_per_second": send_per_second,
                "private_replies_per_hour": private_replies_per_hour,
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

    def register_comment(self, comment_id: str, from_id: str) -> None:
        self._call("POST", "comments", json={"comment_id": comment_id, "from_id": from_id})

    def comments(self) -> dict[str, Any]:
        return self._call("GET", "comments")

    def subscriptions(self) -> dict[str, list[str]]:
        return self._call("GET", "subscriptions")["subscriptions"]

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "health").get("ok"))
        except requests.RequestException:
            return False

    def close(self) -> None:
        self._session.close()

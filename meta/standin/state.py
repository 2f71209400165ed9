"""Everything the stand-in remembers, behind one lock.

Graph handlers run a whole request (check, side effect, log) while holding ``State.lock``, so
check-then-mark sequences like "private reply not used yet -> mark it used" are atomic across the
server's threads. Nothing slow (sleeps, socket writes) happens under the lock.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .logins import DEFAULT_APPS, Logins

# Endpoint names used in the log, in stats and by faults.
COMMENT_REPLY = "comment_reply"
PRIVATE_REPLY = "private_reply"
SEND_MESSAGE = "send_message"
SENDER_ACTION = "sender_action"
ME = "me"
PROFILE = "profile"
SUBSCRIBED_APPS = "subscribed_apps"
APP_SUBSCRIPTIONS = "app_subscriptions"  # /{app-id}/subscriptions, with the app token
LIVE_MEDIA = "live_media"  # /{ig-user-id}/live_media
COMMENT_HIDE = "comment_hide"
COMMENT_DELETE = "comment_delete"
# The Conversations API (GET /{owner}/conversations, /{conversation-id}, /{message-id}) and a
# comment's replies (GET /{comment-id}/replies): how a client learns what became of a send.
CONVERSATIONS = "conversations"
CONVERSATION = "conversation"
MESSAGE = "message"
COMMENT_REPLIES = "comment_replies"
# OAuth and account endpoints (oauth.py); endpoint names, not secrets (hence the noqa).
OAUTH_DIALOG = "oauth_dialog"  # www.facebook.com/vNN/dialog/oauth
OAUTH_ACCESS_TOKEN = "oauth_access_token"  # noqa: S105 graph.facebook.com/vNN/oauth/access_token
DEBUG_TOKEN = "debug_token"  # noqa: S105
ME_ACCOUNTS = "me_accounts"
ME_PERMISSIONS = "me_permissions"
IG_AUTHORIZE = "ig_authorize"  # www.instagram.com/oauth/authorize
IG_OAUTH_ACCESS_TOKEN = "ig_oauth_access_token"  # noqa: S105 api.instagram.com/oauth/access_token
IG_EXCHANGE_TOKEN = "ig_exchange_token"  # noqa: S105 graph.instagram.com/access_token
IG_REFRESH_TOKEN = "ig_refresh_token"  # noqa: S105 graph.instagram.com/refresh_access_token
UNKNOWN = "unknown"
OAUTH_ENDPOINTS = (
    OAUTH_DIALOG,
    OAUTH_ACCESS_TOKEN,
    DEBUG_TOKEN,
    ME_ACCOUNTS,
    ME_PERMISSIONS,
    IG_AUTHORIZE,
    IG_OAUTH_ACCESS_TOKEN,
    IG_EXCHANGE_TOKEN,
    IG_REFRESH_TOKEN,
)
ENDPOINTS = (
    COMMENT_REPLY,
    PRIVATE_REPLY,
    SEND_MESSAGE,
    SENDER_ACTION,
    ME,
    PROFILE,
    SUBSCRIBED_APPS,
    APP_SUBSCRIPTIONS,
    LIVE_MEDIA,
    COMMENT_HIDE,
    COMMENT_DELETE,
    CONVERSATIONS,
    CONVERSATION,
    MESSAGE,
    COMMENT_REPLIES,
    *OAUTH_ENDPOINTS,
    UNKNOWN,
)
ANY = "any"

# Keep the in-memory log bounded for long benchmarks; the JSONL file keeps everything.
DEFAULT_MAX_LOG = 200_000
# Meta lets an app read only a conversation's 20 most recent messages; older ones are forgotten.
THREAD_MESSAGES = 20
# Replies remembered per comment (what GET /{comment-id}/replies answers with).
COMMENT_REPLIES_KEPT = 50

# Keys whose string values are masked wherever they appear in the log (query, body, response).
SECRET_KEYS = frozenset(
    {
        "access_token",
        "client_secret",
        "fb_exchange_token",
        "input_token",
        "refresh_token",
        "page_token",
        "signed_request",
    }
)


def mask_token(token: str | None) -> str | None:
    """First 4 characters only: the log is shown in browsers and test output."""
    if not token:
        return None
    return token[:4] + "…"


def mask_secrets(data: Any, extra: frozenset[str] = frozenset()) -> Any:
    """A copy of ``data`` with every secret-looking string value masked, at any depth.

    ``extra`` adds keys for one call (OAuth endpoints also mask ``code``; elsewhere ``code`` is
    an error code that must stay readable).
    """
    if isinstance(data, dict):
        keys = SECRET_KEYS | extra
        return {
            k: mask_token(v) if k in keys and isinstance(v, str) else mask_secrets(v, extra)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [mask_secrets(v, extra) for v in data]
    return data


def _digits(seed: str, prefix: str, length: int) -> str:
    # Deterministic numeric ids so the same input always gives the same fake id.
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return (prefix + str(digest))[:length]


def fake_commenter_id(comment_id: str) -> str:
    return _digits("commenter:" + comment_id, "9", 16)


def fake_account(token: str) -> dict[str, Any]:
    """The account a token belongs to when none was registered: stable per token."""
    tag = hashlib.sha256(token.encode()).hexdigest()[:8]
    return {
        "id": _digits("account:" + token, "1784", 17),
        "user_id": _digits("user:" + token, "2", 17),
        "username": f"standin_{tag}",
        "name": f"Stand-in account {tag}",
    }


@dataclass
class Limits:
    send_per_second: int | None = None
    private_replies_per_hour: int | None = None
    # The Conversations API's per-account limit (meta-api.md section 5: 2 calls/s).
    conversations_per_second: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return {
            "send_per_second": self.send_per_second,
            "private_replies_per_hour": self.private_replies_per_hour,
            "conversations_per_second": self.conversations_per_second,
        }


@dataclass
class Fault:
    """One planned failure; see docs/standin.md for the meaning of each field."""

    id: int
    endpoint: str = ANY
    node: str | None = None
    times: int | None = 1  # None: until cleared
    status: int | None = None
    error: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False
    apply: bool = False  # only with drop: Meta did it, the answer got lost
    # The share of matching calls it hits (1: all); drawn from a generator seeded per fault.
    probability: float = 1.0
    used: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any, fault_id: int) -> Fault:
        """Validate a control-API fault; ValueError says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        known = {
            "endpoint",
            "node",
            "times",
            "status",
            "error",
            "delay",
            "drop",
            "apply",
            "probability",
            "seed",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        endpoint = data.get("endpoint") or ANY
        if endpoint != ANY and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be 'any' or one of {', '.join(ENDPOINTS)}")
        times = data.get("times", 1)
        if times is not None and (not isinstance(times, int) or isinstance(times, bool)):
            raise ValueError("times must be a positive integer or null")
        if times is not None and times < 1:
            raise ValueError("times must be a positive integer or null")
        status = data.get("status")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError("status must be an HTTP status code")
        error = data.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise ValueError("error must be an object")
            for key in ("code", "error_subcode"):
                if error.get(key) is not None and not isinstance(error[key], int):
                    raise ValueError(f"error.{key} must be an integer")
        delay = data.get("delay") or 0.0
        if not isinstance(delay, int | float) or delay < 0:
            raise ValueError("delay must be a non-negative number of seconds")
        drop = bool(data.get("drop", False))
        if status is None and error is None and not delay and not drop:
            raise ValueError("a fault needs at least one of status, error, delay, drop")
        probability = data.get("probability", 1.0)
        if (
            isinstance(probability, bool)
            or not isinstance(probability, int | float)
            or not 0 < probability <= 1
        ):
            raise ValueError("probability must be a number above 0 and at most 1")
        seed = data.get("seed", fault_id)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("seed must be an integer")
        node = data.get("node")
        return cls(
            id=fault_id,
            endpoint=endpoint,
            node=str(node) if node is not None else None,
            times=times,
            status=status,
            error=error,
            delay=float(delay),
            drop=drop,
            apply=bool(data.get("apply", False)),
            probability=float(probability),
            rng=random.Random(seed),
        )

    @property
    def answers_error(self) -> bool:
        return not self.drop and (self.status is not None or self.error is not None)

    def matches(self, endpoint: str, nodes: set[str]) -> bool:
        if self.endpoint not in (ANY, endpoint):
            return False
        return self.node is None or self.node in nodes

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "node": self.node,
            "times": self.times,
            "status": self.status,
            "error": self.error,
            "delay": self.delay,
            "drop": self.drop,
            "apply": self.apply,
            "probability": self.probability,
            "used": self.used,
        }


@dataclass
class State:
    """All mutable stand-in state. Hold ``lock`` while reading or changing it."""

    log_path: str | Path | None = None
    max_log: int = DEFAULT_MAX_LOG
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The apps the OAuth endpoints know after start and after every reset: login -> (app id,
    # secret, name). The command line's --app-id and friends change it.
    default_apps: dict[str, tuple[str, str, str]] = field(
        default_factory=lambda: dict(DEFAULT_APPS)
    )
    default_consent: str = "ask"  # --auto-approve: "approve"

    def __post_init__(self) -> None:
        # Ids stay unique across reset(): a test may hold ids from before a reset.
        self._seq = itertools.count(1)
        self._comment_ids = itertools.count(17_900_000_000_000_000 + secrets.randbelow(10**12))
        self._fault_ids = itertools.count(1)
        self._mid_ids = itertools.count(1)
        self._log_file: TextIO | None = None
        if self.log_path:
            self._log_file = open(self.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._clear_all()

    def _clear_all(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.limits = Limits()
        self.profiles: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}  # media id -> fields (timestamp, ...)
        self.accounts: dict[str, dict[str, Any]] = {}  # token -> account
        self.revoked: set[str] = set()
        self.comment_authors: dict[str, str] = {}  # comment id -> commenter IGSID
        # comment id -> Meta's fields of the comment (timestamp, text, media), for reads
        self.comments: dict[str, dict[str, Any]] = {}
        # People who messaged an account or tapped a button: only their profiles can be read.
        self.consented: set[str] = set()
        self.live_media: set[str] = set()  # media ids being broadcast live now
        # app id -> object -> {"callback_url", "fields", "active"} (the app's Webhooks product)
        self.app_subscriptions: dict[str, dict[str, dict[str, Any]]] = {}
        self.private_replied: dict[str, str] = {}  # comment id -> mid of the private reply
        self.subscriptions: dict[str, list[str]] = {}
        self.sent_messages: set[tuple[str, bytes]] = set()  # (recipient, message hash)
        # Conversations API: (owner, person) -> conversation id; conversation id -> thread;
        # message id -> message (only the ones a thread still holds); comment id -> replies.
        self.conversation_ids: dict[tuple[str, str], str] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.thread_messages: dict[str, dict[str, Any]] = {}
        self.comment_replies: dict[str, list[dict[str, Any]]] = {}
        self.per_second_reads: dict[str, deque[float]] = {}
        self.per_second: dict[str, deque[float]] = {}
        self.per_hour: dict[str, deque[float]] = {}
        self.logins = Logins(self.default_apps)
        self.logins.settings.consent = self.default_consent
        self.clear_stats()

    def clear_stats(self) -> None:
        self.endpoint_counts: Counter[str] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.node_counts: dict[str, Counter[str]] = {}
        self.violations: Counter[str] = Counter()  # per node
        self.violation_kinds: Counter[str] = Counter()
        self.duplicate_private_replies = 0
        self.duplicate_messages = 0

    def reset(self) -> None:
        """Forget everything except the id counters and the log file."""
        self._clear_all()

    def close(self) -> None:
        with self.lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    # --- ids -------------------------------------------------------------------------------
    def new_comment_id(self) -> str:
        return str(next(self._comment_ids))

    def new_mid(self) -> str:
        # Real mids are base64 of "ig_item..." so they start with "aWdfaXRlbT"/"aWdfZAG"; keep the
        # look, and a counter inside for guaranteed uniqueness.
        raw = f"d:{next(self._mid_ids)}:{secrets.token_hex(12)}".encode()
        return "aWdfZAG" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def new_fault_id(self) -> int:
        return next(self._fault_ids)

    # --- what was sent: conversations and comment replies ------------------------------------
    def remember_message(
        self,
        *,
        owner: str,
        person: str,
        mid: str,
        text: str,
        sender: dict[str, Any],
        inbound: bool = False,
    ) -> None:
        """A message between the account and a person, as the Conversations API shows it:
        sent by the account, or (``inbound``) written by the person."""
        key = (owner, person)
        conversation_id = self.conversation_ids.get(key)
        if conversation_id is None:
            raw = f"thread:{owner}:{person}:{secrets.token_hex(6)}".encode()
            conversation_id = "aWdfZAG" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
            self.conversation_ids[key] = conversation_id
            self.threads[conversation_id] = {
                "owner": owner,
                "person": person,
                "messages": deque(),
            }
        thread = self.threads[conversation_id]
        created = iso_time()
        message = {
            "id": mid,
            "created_time": created,
            "from": sender,
            "to": {
                "data": [{"id": owner} if inbound else {"id": person, "username": f"user_{person}"}]
            },
            "message": text,
        }
        thread["messages"].appendleft(message)  # newest first, like Meta
        thread["updated_time"] = created
        self.thread_messages[mid] = message
        while len(thread["messages"]) > THREAD_MESSAGES:
            self.thread_messages.pop(thread["messages"].pop()["id"], None)

    def remember_comment_reply(
        self, *, comment_id: str, reply_id: str, text: str, sender: dict[str, Any]
    ) -> None:
        replies = self.comment_replies.setdefault(comment_id, [])
        replies.append({"id": reply_id, "text": text, "timestamp": iso_time(), "from": sender})
        del replies[:-COMMENT_REPLIES_KEPT]

    # --- accounts ----------------------------------------------------------------------------
    def account_for(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return None
        issued = self.logins.tokens.get(token)
        if issued is not None:
            # A token from the OAuth flow acts for its page or Instagram account.
            return self.logins.account_for(issued)
        return self.accounts.get(token) or fake_account(token)

    def knows_token(self, token: str) -> bool:
        """Issued by the OAuth endpoints or registered through the control API."""
        return token in self.logins.tokens or token in self.accounts

    # --- faults ------------------------------------------------------------------------------
    def take_fault(self, endpoint: str, nodes: set[str]) -> Fault | None:
        """The first matching fault, in the order they were added; consumes one use."""
        for index, fault in enumerate(self.faults):
            if fault.matches(endpoint, nodes):
                if fault.probability < 1 and fault.rng.random() >= fault.probability:
                    continue  # this call is spared
                fault.used += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self.faults[index]
                return fault
        return None

    # --- log -------------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["seq"] = next(self._seq)
        self.log.append(entry)
        if len(self.log) > self.max_log * 1.1:
            # Trim in batches so appends stay O(1) amortised.
            del self.log[: len(self.log) - self.max_log]
        if self._log_file is not None:
            self._log_file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        return entry

    def entries(
        self, endpoint: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        items = self.log
        if since is not None and items:
            # Entries are sorted by seq (and the head may have been trimmed): bisect.
            lo, hi = 0, len(items)
            while lo < hi:
                mid = (lo + hi) // 2
                if items[mid]["seq"] <= since:
                    lo = mid + 1
                else:
                    hi = mid
            items = items[lo:]
        if endpoint:
            items = [e for e in items if e["endpoint"] == endpoint]
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return list(items)

    # --- stats -----------------------------------------------------------------------------
    def count(self, endpoint: str, node: str | None, status: int | None) -> None:
        self.endpoint_counts[endpoint] += 1
        if status is None or status >= 400:
            self.error_counts[endpoint] += 1
        if node is not None:
            self.node_counts.setdefault(node, Counter())[endpoint] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "total": sum(self.endpoint_counts.values()),
            "endpoints": dict(self.endpoint_counts),
            "errors": dict(self.error_counts),
            "nodes": {node: dict(c) for node, c in self.node_counts.items()},
            "violations": {
                "total": sum(self.violations.values()),
                "per_node": dict(self.violations),
                "by_kind": dict(self.violation_kinds),
            },
            "duplicates": {
                "private_replies": self.duplicate_private_replies,
                "send_messages": self.duplicate_messages,
            },
        }


def iso_time() -> str:
    """Meta's time format in Graph answers, e.g. "2026-11-25T10:00:00+0000"."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())


def now() -> float:
    """Monotonic clock for rate windows (wall-clock jumps must not reset limits)."""
    return time.monotonic()

"""Meta's (code, subcode) error pairs mapped to our reasons and retry policy.

The rows follow meta-api.md section 6. Several are only [seen] in production code, not in Meta's
docs, so they live in one data table (``ERROR_TABLE``) that is easy to correct; the first matching
row wins.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Reason(enum.StrEnum):
    WINDOW_EXPIRED = "window_expired"
    PERMISSION_MISSING = "permission_missing"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (a reason name, not a secret)
    RATE_LIMITED = "rate_limited"
    CONVERSATION_CLOSED = "conversation_closed"
    CONTENT_REJECTED = "content_rejected"
    ALREADY_REPLIED = "already_replied"
    RECIPIENT_INVALID = "recipient_invalid"
    META_ERROR = "meta_error"


@dataclass(frozen=True)
class ErrorClass:
    """What an error means for us and what the sender should do next."""

    reason: Reason
    # Transient: try again with backoff.
    retryable: bool = False
    # Rate-limit family: try again after Meta's stated wait, not immediately.
    throttled: bool = False
    # A refusal about the account itself (its token, a named permission): hold its sends
    # until it is reconnected. Only these may stop the account's other sends.
    account_problem: bool = False
    # Code 368: Meta is restricting the account for policy violations; stop sending from it.
    pause_account: bool = False
    # Code 10/200 without a subcode we know: it may be about this one person or about the
    # account. It ends this delivery only; several in a row, to different people, trip the
    # account's breaker (messaging.refusals).
    ambiguous: bool = False
    # The permission Meta says is missing, when the code itself names it (230).
    scope: str = ""
    description: str = ""


# Subcodes and codes. ``None`` in a row's subcodes means "any subcode".
WINDOW_SUBCODES = frozenset({2534022, 2018278, 2018276, 2534044})
ALREADY_REPLIED_SUBCODES = frozenset({2534025})
# "This person isn't receiving messages from you right now" [seen]: about one person.
NOT_RECEIVING_SUBCODES = frozenset({2018108})
# Another app controls this thread (handover protocol) [seen]: about one thread.
THREAD_CONTROLLED_SUBCODES = frozenset({2018300})
NO_MATCHING_USER_SUBCODES = frozenset({2534014, 2018001})
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80006})
TRANSIENT_CODES = frozenset({1, 2, -1, 1200})
# Permission names as Meta writes them in error messages ("Requires pages_messaging
# permission ..."): a refusal that names one is about the account's grant.
PERMISSION_NAME = re.compile(
    r"\b(instagram_business_\w+|instagram_\w+|pages_\w+|business_management)\b"
)

WINDOW_EXPIRED = ErrorClass(
    Reason.WINDOW_EXPIRED,
    description=(
        "The 24-hour messaging window has closed: the person must write to the account again "
        "before it can message them."
    ),
)
ALREADY_REPLIED = ErrorClass(
    Reason.ALREADY_REPLIED,
    description="This comment's one private reply has already been used.",
)
PERMISSION_MISSING = ErrorClass(
    Reason.PERMISSION_MISSING,
    account_problem=True,
    description=(
        "Meta refused because the account's token lacks a permission it names: reconnect the "
        "account granting every requested permission."
    ),
)
PAGES_MESSAGING_MISSING = ErrorClass(
    Reason.PERMISSION_MISSING,
    account_problem=True,
    scope="pages_messaging",
    description=(
        "Meta refused because the Page token lacks pages_messaging (code 230): reconnect the "
        "account with Facebook Login and keep every permission ticked."
    ),
)
PERMISSION_REFUSED = ErrorClass(
    Reason.PERMISSION_MISSING,
    ambiguous=True,
    description=(
        "Meta refused this send for lack of permission without naming one: it may concern "
        "only this person, or the account (check that the Instagram account allows access "
        "to messages: Settings > Messages and story replies > Message controls > Allow access "
        "to messages). Several in a row, to different people, hold the account."
    ),
)
TOKEN_INVALID = ErrorClass(
    Reason.TOKEN_INVALID,
    account_problem=True,
    description=(
        "The access token is no longer valid (expired, revoked, password changed or app "
        "removed): reconnect the account."
    ),
)
CONVERSATION_CLOSED = ErrorClass(
    Reason.CONVERSATION_CLOSED,
    description=(
        "This person cannot be messaged right now (they blocked or restricted the account, "
        "deactivated, or their settings disallow it)."
    ),
)
NOT_RECEIVING = ErrorClass(
    Reason.CONVERSATION_CLOSED,
    description=(
        "This person isn't receiving messages from the account right now; nothing to fix on "
        "the account. They can be messaged again once they write first."
    ),
)
THREAD_CONTROLLED_ELSEWHERE = ErrorClass(
    Reason.META_ERROR,
    description=(
        "Another app controls this conversation (Meta's handover protocol): this person's "
        "thread is being handled elsewhere; other conversations are not affected."
    ),
)
CONSENT_REQUIRED = ErrorClass(
    Reason.WINDOW_EXPIRED,
    description=(
        "Meta needs this person's consent first: they have not written to the account or "
        "tapped a button yet, so there is no conversation to send into."
    ),
)
RECIPIENT_INVALID = ErrorClass(
    Reason.RECIPIENT_INVALID,
    description="Meta has no reachable user for this recipient id.",
)
INVALID_PARAMETER = ErrorClass(
    Reason.META_ERROR,
    description=(
        "Meta rejected a parameter of the request (a bug on our side, or the person's settings "
        "do not allow private replies); see Meta's message."
    ),
)
CONTENT_REJECTED = ErrorClass(
    Reason.CONTENT_REJECTED,
    pause_account=True,
    description=(
        "Meta blocked the send for policy violations and is restricting the account: sending "
        "from it is paused; review the content and the account in Meta's tools."
    ),
)
RATE_LIMITED = ErrorClass(
    Reason.RATE_LIMITED,
    retryable=True,
    throttled=True,
    description="Meta is throttling calls: retry after the wait Meta states.",
)
TRANSIENT = ErrorClass(
    Reason.META_ERROR,
    retryable=True,
    description="Meta had a temporary problem: retry with backoff.",
)
UNKNOWN = ErrorClass(
    Reason.META_ERROR,
    description="Meta refused the request with an error we do not recognise; see Meta's message.",
)


@dataclass(frozen=True)
class ErrorRow:
    """One line of the table: which codes (and optionally subcodes) map to which class."""

    codes: frozenset[int] | range
    subcodes: frozenset[int] | None  # None matches any subcode, including none.
    error_class: ErrorClass
    note: str = ""

    def matches(self, code: int | None, subcode: int | None) -> bool:
        if code is None or code not in self.codes:
            return False
        return self.subcodes is None or subcode in self.subcodes


def _codes(*codes: int) -> frozenset[int]:
    return frozenset(codes)


# First matching row wins, so specific subcodes come before the catch-all row of their code,
# and the named codes 230 and 210 come before the 200-299 permission range that contains them.
ERROR_TABLE: tuple[ErrorRow, ...] = (
    ErrorRow(_codes(10), WINDOW_SUBCODES, WINDOW_EXPIRED, "outside the allowed window [seen]"),
    ErrorRow(_codes(10), ALREADY_REPLIED_SUBCODES, ALREADY_REPLIED, "private reply used [seen]"),
    ErrorRow(_codes(10), NOT_RECEIVING_SUBCODES, NOT_RECEIVING, "one person [seen]"),
    ErrorRow(_codes(10), THREAD_CONTROLLED_SUBCODES, THREAD_CONTROLLED_ELSEWHERE, "one thread"),
    ErrorRow(_codes(10), None, PERMISSION_REFUSED, "person or account: breaker [doc + seen]"),
    ErrorRow(_codes(230), None, PAGES_MESSAGING_MISSING, "needs pages_messaging [doc + seen]"),
    ErrorRow(_codes(551, 9009), None, CONVERSATION_CLOSED, "person unavailable [doc]"),
    ErrorRow(_codes(110, 210), None, RECIPIENT_INVALID, "invalid or hidden user [doc]"),
    ErrorRow(range(200, 300), None, PERMISSION_REFUSED, "permission; named: account [doc]"),
    ErrorRow(_codes(190, 102, 104), None, TOKEN_INVALID, "token invalid or expired [doc]"),
    ErrorRow(_codes(100), NO_MATCHING_USER_SUBCODES, RECIPIENT_INVALID, "no such user [seen]"),
    ErrorRow(_codes(100), None, INVALID_PARAMETER, "invalid parameter [doc + seen]"),
    ErrorRow(_codes(368), None, CONTENT_REJECTED, "policy block [doc]"),
    ErrorRow(THROTTLE_CODES, None, RATE_LIMITED, "throttled [doc; 80006 seen]"),
    ErrorRow(TRANSIENT_CODES, None, TRANSIENT, "transient [doc]"),
)


CONSENT_REQUIRED_TEXT = re.compile(r"user consent is required", re.IGNORECASE)


def is_consent_required(message: str) -> bool:
    """Meta's "User consent is required to access user profile" [doc]: the person has not
    messaged the account or tapped a button yet. Told apart by its text: its code is [unsure]
    (reported as 230, which also means a missing pages_messaging)."""
    return bool(CONSENT_REQUIRED_TEXT.search(message or ""))


def named_permission(message: str) -> str:
    """The permission a Meta error message names ("Requires pages_messaging permission"), or ""."""
    found = PERMISSION_NAME.search(message or "")
    return found.group(1) if found else ""


def _first_match(code: int | None, subcode: int | None) -> ErrorClass | None:
    for row in ERROR_TABLE:
        if row.matches(code, subcode):
            return row.error_class
    return None


def classify_error(
    code: int | None,
    subcode: int | None,
    *,
    message: str = "",
    http_status: int | None = None,
    is_transient: bool = False,
) -> ErrorClass:
    """Map Meta's error code/subcode (and the HTTP status) to an ``ErrorClass``.

    A specific table row wins over Meta's ``is_transient`` flag and over a 5xx status: a 190 is
    a dead token even when it comes back with HTTP 500. A permission refusal whose message names
    the permission is about the account's grant, so it holds the account (meta-api.md 6,
    "Whose problem is a refusal?"); without a name it is ambiguous and ends one delivery.
    """
    if is_consent_required(message):
        return CONSENT_REQUIRED
    found = _first_match(code, subcode)
    if found is not None:
        if found.ambiguous and named_permission(message):
            return PERMISSION_MISSING
        return found
    if is_transient or (http_status is not None and http_status >= 500):
        return TRANSIENT
    return UNKNOWN

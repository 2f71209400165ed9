"""Meta-shaped error bodies for the stand-in (meta-api.md section 6).

Every error the stand-in answers goes through ``GraphError`` so the body always has Meta's shape:
``{"error": {"message", "type", "code", "error_subcode" (when any), "is_transient",
"fbtrace_id"}}``. Wording of messages marked [seen] comes from production logs, not Meta's docs;
it lives in ``DEFAULT_MESSAGES`` so it is easy to correct.
"""

from __future__ import annotations

import secrets
from typing import Any

OAUTH = "OAuthException"
GRAPH_METHOD = "GraphMethodException"

# (code, subcode) -> message used when a fault names a code without a message. A subcode of None
# is the fallback for the code.
DEFAULT_MESSAGES: dict[tuple[int, int | None], str] = {
    (1, None): "An unknown error occurred",
    (101, None): "Error validating application. Invalid application ID.",
    (2, None): "An unexpected error has occurred. Please retry your request later.",
    (4, None): "(#4) Application request limit reached",
    (10, 2534022): "(#10) This message is sent outside of allowed window.",
    (10, 2534025): "(#10) This comment's private reply was already used",
    (10, None): "(#10) Application does not have permission for this action",
    (17, None): "(#17) User request limit reached",
    (32, None): "(#32) Page request limit reached",
    (100, 2534014): "(#100) No matching user found",
    (100, None): "(#100) Invalid parameter",
    (190, 460): (
        "Error validating access token: The session has been invalidated because the user "
        "changed their password or Facebook has changed the session for security reasons."
    ),
    (190, 463): "Error validating access token: Session has expired.",
    (190, 458): "Error validating access token: The user has not authorized application.",
    (190, None): "Invalid OAuth access token - Cannot parse access token",
    (200, None): "(#200) Permissions error",
    (368, None): ("(#368) The action attempted has been deemed abusive or is otherwise disallowed"),
    (551, None): "(#551) This person isn't available right now.",
    (613, None): "(#613) Calls to this api have exceeded the rate limit.",
    (80002, None): (
        "There have been too many calls to this Instagram account. Wait a bit and try again. "
        "For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
    ),
}

# An error text, not a secret.
MISSING_TOKEN_MESSAGE = (
    "An active access token must be used to query information about the current user."  # noqa: S105
)


def fbtrace_id() -> str:
    """A random trace id like Meta's (support asks for it, so clients should keep it)."""
    return "A" + secrets.token_urlsafe(15)


def default_message(code: int, subcode: int | None = None) -> str:
    return DEFAULT_MESSAGES.get((code, subcode)) or DEFAULT_MESSAGES.get(
        (code, None), f"(#{code}) An error occurred"
    )


class GraphError(Exception):
    """An error answer in Meta's shape; raised by endpoint handlers before any side effect."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        subcode: int | None = None,
        status: int = 400,
        type_: str = OAUTH,
        is_transient: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message or default_message(code, subcode)
        self.subcode = subcode
        self.status = status
        self.type = type_
        self.is_transient = is_transient
        self.extra = extra or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        error.update(self.extra)
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}


def invalid_param(message: str, subcode: int | None = None) -> GraphError:
    """Code 100, Meta's answer to anything wrong with the request's parameters."""
    return GraphError(100, message, subcode=subcode)


def from_fault(status: int | None, error: dict[str, Any] | None) -> GraphError:
    """The error a fault asks for; a bare 5xx becomes Meta's transient 'unknown error'."""
    status = status or 400
    if not error:
        if status >= 500:
            return GraphError(1, subcode=None, status=status, is_transient=True)
        return GraphError(100, status=status)
    error = dict(error)
    code = int(error.pop("code", 1 if status >= 500 else 100))
    subcode = error.pop("error_subcode", None)
    subcode = int(subcode) if subcode is not None else None
    return GraphError(
        code,
        error.pop("message", None),
        subcode=subcode,
        status=status,
        type_=error.pop("type", OAUTH),
        is_transient=bool(error.pop("is_transient", status >= 500)),
        # Anything else (error_user_title, error_user_msg...) is passed through as given.
        extra={k: v for k, v in error.items() if k != "fbtrace_id"},
    )


class InstagramApiError(Exception):
    """An error of api.instagram.com (the Instagram Login code exchange).

    That host does not answer in the Graph shape but flat: ``{"error_type": "OAuthException",
    "code": 400, "error_message": "..."}`` [seen in production code, not in Meta's docs].
    """

    def __init__(self, message: str, status: int = 400, error_type: str = OAUTH) -> None:
        self.message = message
        self.status = status
        self.error_type = error_type
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"error_type": self.error_type, "code": self.status, "error_message": self.message}

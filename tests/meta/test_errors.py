"""Every row of meta-api.md section 6, one case per code/subcode listed there."""

import pytest

from meta.errors import (
    ERROR_TABLE,
    ErrorClass,
    Reason,
    classify_error,
    is_consent_required,
    named_permission,
)

R = Reason

# (code, subcode, reason, retryable, throttled, account_problem, pause_account, ambiguous)
DOC_TABLE = [
    # 10 + window subcodes: outside the allowed window
    (10, 2534022, R.WINDOW_EXPIRED, False, False, False, False, False),
    (10, 2018278, R.WINDOW_EXPIRED, False, False, False, False, False),
    (10, 2018276, R.WINDOW_EXPIRED, False, False, False, False, False),
    (10, 2534044, R.WINDOW_EXPIRED, False, False, False, False, False),
    # 10/2534025: private reply already used
    (10, 2534025, R.ALREADY_REPLIED, False, False, False, False, False),
    # 10/2018108: this one person isn't receiving messages; 10/2018300: another app has the
    # thread. Both about one person or thread: never hold the account.
    (10, 2018108, R.CONVERSATION_CLOSED, False, False, False, False, False),
    (10, 2018300, R.META_ERROR, False, False, False, False, False),
    # 10 without subcode (or another one): person or account, so ambiguous (the breaker)
    (10, None, R.PERMISSION_MISSING, False, False, False, False, True),
    (10, 1234567, R.PERMISSION_MISSING, False, False, False, False, True),
    # 200-299 naming no permission: ambiguous as well
    (200, None, R.PERMISSION_MISSING, False, False, False, False, True),
    (200, 2534022, R.PERMISSION_MISSING, False, False, False, False, True),
    (250, None, R.PERMISSION_MISSING, False, False, False, False, True),
    (299, 42, R.PERMISSION_MISSING, False, False, False, False, True),
    (220, None, R.PERMISSION_MISSING, False, False, False, False, True),
    # 230: the Page token lacks pages_messaging: the account's problem
    (230, None, R.PERMISSION_MISSING, False, False, True, False, False),
    # 190 any subcode, 102, 104: token invalid
    (190, 458, R.TOKEN_INVALID, False, False, True, False, False),
    (190, 460, R.TOKEN_INVALID, False, False, True, False, False),
    (190, 463, R.TOKEN_INVALID, False, False, True, False, False),
    (190, 467, R.TOKEN_INVALID, False, False, True, False, False),
    (190, None, R.TOKEN_INVALID, False, False, True, False, False),
    (190, 999, R.TOKEN_INVALID, False, False, True, False, False),
    (102, None, R.TOKEN_INVALID, False, False, True, False, False),
    (104, None, R.TOKEN_INVALID, False, False, True, False, False),
    # 551 (none or 1545041), 9009: conversation closed
    (551, None, R.CONVERSATION_CLOSED, False, False, False, False, False),
    (551, 1545041, R.CONVERSATION_CLOSED, False, False, False, False, False),
    (9009, None, R.CONVERSATION_CLOSED, False, False, False, False, False),
    # 100 + no-matching-user subcodes, 110, 210: recipient invalid
    (100, 2534014, R.RECIPIENT_INVALID, False, False, False, False, False),
    (100, 2018001, R.RECIPIENT_INVALID, False, False, False, False, False),
    (110, None, R.RECIPIENT_INVALID, False, False, False, False, False),
    (210, None, R.RECIPIENT_INVALID, False, False, False, False, False),
    # 100 otherwise: invalid parameter, not retryable
    (100, None, R.META_ERROR, False, False, False, False, False),
    (100, 33, R.META_ERROR, False, False, False, False, False),
    # 368: policy block, pause the account
    (368, None, R.CONTENT_REJECTED, False, False, False, True, False),
    (368, 1390008, R.CONTENT_REJECTED, False, False, False, True, False),
    # throttling family
    (4, None, R.RATE_LIMITED, True, True, False, False, False),
    (17, None, R.RATE_LIMITED, True, True, False, False, False),
    (32, None, R.RATE_LIMITED, True, True, False, False, False),
    (613, None, R.RATE_LIMITED, True, True, False, False, False),
    (613, 1893016, R.RATE_LIMITED, True, True, False, False, False),
    (80001, None, R.RATE_LIMITED, True, True, False, False, False),
    (80002, None, R.RATE_LIMITED, True, True, False, False, False),
    (80006, None, R.RATE_LIMITED, True, True, False, False, False),
    # transient codes
    (1, None, R.META_ERROR, True, False, False, False, False),
    (2, None, R.META_ERROR, True, False, False, False, False),
    (-1, None, R.META_ERROR, True, False, False, False, False),
    (1200, None, R.META_ERROR, True, False, False, False, False),
]


@pytest.mark.parametrize(
    (
        "code",
        "subcode",
        "reason",
        "retryable",
        "throttled",
        "account_problem",
        "pause",
        "ambiguous",
    ),
    DOC_TABLE,
    ids=[f"{row[0]}-{row[1]}" for row in DOC_TABLE],
)
def test_doc_table_row(
    code, subcode, reason, retryable, throttled, account_problem, pause, ambiguous
):
    result = classify_error(code, subcode, http_status=400)
    assert result.reason is reason
    assert result.retryable is retryable
    assert result.throttled is throttled
    assert result.account_problem is account_problem
    assert result.pause_account is pause
    assert result.ambiguous is ambiguous
    assert result.description


def test_230_names_pages_messaging():
    assert classify_error(230, None).scope == "pages_messaging"


@pytest.mark.parametrize(
    ("code", "message", "scope"),
    [
        (200, "(#200) Requires instagram_manage_comments permission to manage the object", ""),
        (10, "(#10) Requires pages_messaging permission to manage the object", ""),
        (299, "(#299) The user hasn't authorized instagram_business_manage_messages", ""),
    ],
)
def test_a_permission_refusal_naming_the_permission_is_the_accounts(code, message, scope):
    # meta-api.md 6, "Whose problem is a refusal?": a named permission holds the account.
    result = classify_error(code, None, message=message)
    assert result.reason is Reason.PERMISSION_MISSING
    assert result.account_problem and not result.ambiguous
    assert named_permission(message) in message


def test_a_permission_refusal_naming_none_is_ambiguous():
    result = classify_error(10, None, message="(#10) Application does not have permission")
    assert result.ambiguous and not result.account_problem


@pytest.mark.parametrize("code", [230, 10, None])
def test_consent_required_is_about_the_person(code):
    # "User consent is required to access user profile" (User Profile API): the person has
    # not written yet; never the account's problem, whatever the code.
    result = classify_error(
        code, None, message="(#230) User consent is required to access user profile"
    )
    assert result.reason is Reason.WINDOW_EXPIRED
    assert not result.account_problem and not result.ambiguous
    assert is_consent_required("User consent is required to access user profile")


def test_is_transient_flag_makes_unknown_code_retryable():
    result = classify_error(12345, None, http_status=400, is_transient=True)
    assert result.reason is Reason.META_ERROR
    assert result.retryable


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_without_code_is_transient(status):
    result = classify_error(None, None, http_status=status)
    assert result.reason is Reason.META_ERROR
    assert result.retryable
    assert not result.throttled


def test_specific_row_wins_over_5xx_and_is_transient():
    # A dead token stays a dead token even if Meta wraps it in a 500 or marks it transient.
    result = classify_error(190, 463, http_status=500, is_transient=True)
    assert result.reason is Reason.TOKEN_INVALID
    assert not result.retryable


@pytest.mark.parametrize(
    ("code", "subcode", "status"),
    [
        (12345, None, 400),
        (None, None, 400),
        (None, None, None),
        (3, None, 403),
        (300, None, 400),
        (199, None, 400),
        (0, None, 400),
    ],
)
def test_unknown_errors_are_not_retryable(code, subcode, status):
    result = classify_error(code, subcode, http_status=status)
    assert result.reason is Reason.META_ERROR
    assert not result.retryable
    assert not result.throttled
    assert not result.account_problem
    assert not result.pause_account
    assert not result.ambiguous


def test_first_matching_row_wins():
    # Specific subcodes must precede their code's catch-all row.
    for code, subcode, reason, *_ in DOC_TABLE:
        first = next(row for row in ERROR_TABLE if row.matches(code, subcode))
        assert first.error_class.reason is reason, (code, subcode)


def test_every_table_row_is_reachable():
    # A row shadowed entirely by an earlier one is dead weight and a sign of a wrong order.
    for index, row in enumerate(ERROR_TABLE):
        code = next(iter(row.codes))
        subcode = next(iter(row.subcodes)) if row.subcodes is not None else None
        earlier = [r for r in ERROR_TABLE[:index] if r.matches(code, subcode)]
        assert not earlier, f"row {index} is shadowed by {earlier}"


def test_table_rows_produce_error_classes():
    for row in ERROR_TABLE:
        assert isinstance(row.error_class, ErrorClass)
        assert isinstance(row.error_class.reason, Reason)


def test_reason_values():
    assert {r.value for r in Reason} == {
        "window_expired",
        "permission_missing",
        "token_invalid",
        "rate_limited",
        "conversation_closed",
        "content_rejected",
        "already_replied",
        "recipient_invalid",
        "meta_error",
    }
    assert Reason.WINDOW_EXPIRED == "window_expired"


def test_error_class_is_frozen():
    result = classify_error(10, None)
    with pytest.raises(AttributeError):
        result.retryable = True  # type: ignore[misc]

import json

import pytest
from requests.structures import CaseInsensitiveDict

from meta.usage import Usage, parse_usage_headers

APP = json.dumps({"call_count": 91, "total_cputime": 15, "total_time": 12})
BUC = json.dumps(
    {
        "17841430541631416": [
            {
                "type": "instagram",
                "call_count": 28,
                "total_cputime": 25,
                "total_time": 25,
                "estimated_time_to_regain_access": 0,
            }
        ]
    }
)


def test_none_when_neither_header_present():
    assert parse_usage_headers({}) is None
    assert parse_usage_headers({"Content-Type": "application/json"}) is None


def test_app_usage_only():
    usage = parse_usage_headers({"X-App-Usage": APP})
    assert usage == Usage(app_call_count=91, app_total_cputime=15, app_total_time=12)
    assert usage.buc_max_percent == 0
    assert usage.regain_access_seconds == 0
    assert usage.max_percent == 91


def test_business_use_case_only():
    usage = parse_usage_headers({"X-Business-Use-Case-Usage": BUC})
    assert usage is not None
    assert usage.app_call_count == 0
    assert usage.buc_max_percent == 28
    assert usage.max_percent == 28


def test_both_headers():
    usage = parse_usage_headers({"X-App-Usage": APP, "X-Business-Use-Case-Usage": BUC})
    assert usage is not None
    assert (usage.app_call_count, usage.buc_max_percent, usage.max_percent) == (91, 28, 91)


def test_buc_takes_max_over_all_entries_and_converts_minutes_to_seconds():
    buc = {
        "111": [
            {"type": "instagram", "call_count": 10, "total_cputime": 99, "total_time": 5,
             "estimated_time_to_regain_access": 3},
            {"type": "pages", "call_count": 40, "total_cputime": 1, "total_time": 1,
             "estimated_time_to_regain_access": 12},
        ],
        "222": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 0}],
    }  # fmt: skip
    usage = parse_usage_headers({"X-Business-Use-Case-Usage": json.dumps(buc)})
    assert usage is not None
    assert usage.buc_max_percent == 100
    assert usage.regain_access_seconds == 12 * 60
    assert usage.max_percent == 100


@pytest.mark.parametrize("name", ["x-app-usage", "X-APP-USAGE", "X-App-Usage"])
def test_header_names_are_case_insensitive(name):
    usage = parse_usage_headers({name: APP})
    assert usage is not None
    assert usage.app_call_count == 91


def test_works_with_requests_header_mapping():
    headers = CaseInsensitiveDict({"x-business-use-case-usage": BUC})
    usage = parse_usage_headers(headers)
    assert usage is not None
    assert usage.buc_max_percent == 28


@pytest.mark.parametrize("bad", ["", "not json", "[1, 2]", '"text"', "{", "null"])
def test_malformed_header_is_ignored(bad):
    # The other header still counts; the malformed one contributes zeros.
    usage = parse_usage_headers({"X-App-Usage": bad, "X-Business-Use-Case-Usage": BUC})
    assert usage is not None
    assert usage.app_call_count == 0
    assert usage.buc_max_percent == 28

    usage = parse_usage_headers({"X-App-Usage": APP, "X-Business-Use-Case-Usage": bad})
    assert usage is not None
    assert usage.app_call_count == 91
    assert usage.buc_max_percent == 0


def test_malformed_only_header_still_returns_zero_usage():
    assert parse_usage_headers({"X-App-Usage": "garbage"}) == Usage()


def test_tolerates_odd_values_and_shapes():
    buc = {
        "1": {"call_count": "45", "total_time": 7.9},  # object instead of list, string number
        "2": ["not a dict", {"call_count": None, "total_cputime": True}],
        "3": "nonsense",
    }
    app = {"call_count": "x", "total_cputime": -5, "total_time": 33.6}
    usage = parse_usage_headers(
        {"X-App-Usage": json.dumps(app), "X-Business-Use-Case-Usage": json.dumps(buc)}
    )
    assert usage == Usage(app_total_time=33, buc_max_percent=45)


def test_usage_is_frozen():
    with pytest.raises(AttributeError):
        Usage().app_call_count = 5  # type: ignore[misc]

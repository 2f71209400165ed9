"""docs/configuration.md states the defaults the settings really use (issue 12: it said
STALE_SENDING_SECONDS defaults to 180 while settings used 60)."""

import importlib
import os
import re
from pathlib import Path

import pytest
from django.conf import settings

CONFIGURATION = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
NUMERIC = [
    "SWEEP_INTERVAL_SECONDS",
    "PENDING_EVENT_GRACE_SECONDS",
    "STALE_SENDING_SECONDS",
    "SEND_LEASE_SECONDS",
    "UNKNOWN_CHECK_AFTER_SECONDS",
    "UNKNOWN_MAX_CHECKS",
    "RATE_LIMIT_PAUSE_SECONDS",
    "HOLD_LIMIT_SECONDS",
    "PACER_MAX_IN_FLIGHT",
    "COMMENT_REPLY_LIMIT_PER_SECOND",
    "HOT_ACCOUNT_EVENTS_PER_WINDOW",
    "INTENT_ROUTING_REFRESH_SECONDS",
    "SEND_LIMIT_PER_SECOND",
    "PRIVATE_REPLY_LIMIT_PER_HOUR",
    "WEBHOOK_RELAY_POLL_SECONDS",
]


def documented_default(name: str) -> float:
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith(f"| `{name}`"):
            default = line.rstrip(" |").rsplit("|", 1)[1]
            return float(re.search(r"\d+(?:\.\d+)?", default).group())
    raise AssertionError(f"{name} is not in docs/configuration.md")


@pytest.mark.parametrize("name", NUMERIC)
def test_documented_defaults_are_the_settings_defaults(name):
    if name in os.environ:
        pytest.skip(f"{name} is set in this environment")
    assert documented_default(name) == float(getattr(settings, name))


def test_recovery_interval_is_documented():
    assert documented_default("SEND_RECOVERY_INTERVAL_SECONDS") == float(
        settings.CELERY_BEAT_SCHEDULE["recover-sends"]["schedule"]
    )


def test_webhook_dispatch_default_is_documented():
    """`relay` on PostgreSQL, `request` otherwise: what settings pick for this database."""
    if "WEBHOOK_DISPATCH" in os.environ:
        pytest.skip("WEBHOOK_DISPATCH is set in this environment")
    line = next(
        line
        for line in CONFIGURATION.read_text().splitlines()
        if line.startswith("| `WEBHOOK_DISPATCH`")
    )
    default = line.rstrip(" |").rsplit("|", 1)[1]
    # The settings module's own value (tests run with `request`: tests/conftest.py).
    chosen = importlib.import_module("config.settings").WEBHOOK_DISPATCH
    expected = "`relay` on PostgreSQL" if chosen == "relay" else "`request`"
    assert expected in default
    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    assert ("relay" if postgres else "request") == chosen

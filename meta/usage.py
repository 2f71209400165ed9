"""Meta's rate-limit usage headers (meta-api.md section 5).

``X-App-Usage: {"call_count": 91, "total_cputime": 15, "total_time": 12}`` (percent of the app's
hourly limit) and ``X-Business-Use-Case-Usage: {"<object id>": [{"type": "instagram",
"call_count": 28, "total_cputime": 25, "total_time": 25, "estimated_time_to_regain_access": 0}]}``
(percent used; the last field is minutes). The exact format is only [seen], so parsing is lenient:
a malformed header is ignored rather than failing the call that carried it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

APP_USAGE_HEADER = "x-app-usage"
BUC_USAGE_HEADER = "x-business-use-case-usage"
_PERCENT_FIELDS = ("call_count", "total_cputime", "total_time")


@dataclass(frozen=True)
class Usage:
    app_call_count: int = 0
    app_total_cputime: int = 0
    app_total_time: int = 0
    buc_max_percent: int = 0
    regain_access_seconds: int = 0

    @property
    def max_percent(self) -> int:
        """The highest usage figure of all: throttle before it reaches 100."""
        return max(
            self.app_call_count, self.app_total_cputime, self.app_total_time, self.buc_max_percent
        )


def _as_int(value: Any) -> int:
    # Figures are documented as ints; accept numeric strings and floats, ignore anything else.
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return max(int(value), 0)
    if isinstance(value, str):
        try:
            return max(int(float(value)), 0)
        except ValueError:
            return 0
    return 0


def _load_json(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


def _buc_entries(parsed: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(parsed, Mapping):
        return
    for entries in parsed.values():
        # Documented as a list per object id; tolerate a bare object too.
        if isinstance(entries, Mapping):
            entries = [entries]
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, Mapping):
                yield entry


def parse_usage_headers(headers: Mapping[str, str]) -> Usage | None:
    """Read both usage headers; None when neither is present.

    Header names are matched case-insensitively whatever mapping is passed in.
    """
    lowered = {str(name).lower(): value for name, value in headers.items()}
    app_raw = lowered.get(APP_USAGE_HEADER)
    buc_raw = lowered.get(BUC_USAGE_HEADER)
    if app_raw is None and buc_raw is None:
        return None

    app = _load_json(app_raw)
    if not isinstance(app, Mapping):
        app = {}

    buc_max = 0
    regain_minutes = 0
    for entry in _buc_entries(_load_json(buc_raw)):
        buc_max = max([buc_max, *(_as_int(entry.get(field)) for field in _PERCENT_FIELDS)])
        regain_minutes = max(regain_minutes, _as_int(entry.get("estimated_time_to_regain_access")))

    return Usage(
        app_call_count=_as_int(app.get("call_count")),
        app_total_cputime=_as_int(app.get("total_cputime")),
        app_total_time=_as_int(app.get("total_time")),
        buc_max_percent=buc_max,
        regain_access_seconds=regain_minutes * 60,
    )

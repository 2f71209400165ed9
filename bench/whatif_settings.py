"""Settings for `bench/latency.py --what-if ...` and `--profile`: the product's settings plus
one change, to measure it before anyone makes it in the product.

Only the benchmark uses this module (DJANGO_SETTINGS_MODULE=whatif_settings with bench/ on
PYTHONPATH). Scenarios, comma-separated in BENCH_WHAT_IF:

- instrument: no behaviour change; each Celery task logs its wall and CPU time, SQL statements,
  Redis round trips and new database connections (bench/_instrument.py). Used by
  `bench/latency.py --profile`.
- client_binding: parameters bound on the client (no prepared statements), as before
  DATABASE_SERVER_SIDE_BINDING: what server-side binding saves or costs.

Add a scenario here (a settings override) to measure a proposed product change with
`bench/latency.py --what-if NAME`; its results go to their own section of docs/performance.md.
"""

import os

from config.settings import *  # noqa: F403

WHAT_IF = {s.strip() for s in os.environ.get("BENCH_WHAT_IF", "").split(",") if s.strip()}
KNOWN = {"instrument", "client_binding"}
if WHAT_IF - KNOWN:
    raise ValueError(f"unknown what-if scenario(s): {', '.join(sorted(WHAT_IF - KNOWN))}")

if "instrument" in WHAT_IF:
    import _instrument  # noqa: F401 - connects the per-task accounting

if "client_binding" in WHAT_IF and DATABASES["default"].get("OPTIONS") is not None:  # noqa: F405
    DATABASES["default"]["OPTIONS"]["server_side_binding"] = False  # noqa: F405

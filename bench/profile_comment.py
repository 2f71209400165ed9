"""Where a matched comment's CPU goes: a function-level profile of the worker's and the web's
own work, by library.

    .venv/bin/python bench/profile_comment.py [--comments 300] [--top 25]

Starts the Graph API stand-in, a fresh PostgreSQL database (migrate + load_demo) and a flushed
Redis db, then in one child process (production settings, DEBUG off) runs the real code paths
one comment after another, each with its own ids: the webhook view's service
(`webhook_event_receive`: verify, split, store) and the worker's task body (`process_event`:
parse, match, create deliveries, pace, then send both replies to the stand-in). No Celery
worker loop, no gunicorn: what is profiled is the product's own work per comment.

Two passes over --comments comments each, after a warm-up: one unprofiled (CPU ms per comment
of this process, the baseline), one under cProfile with a CPU clock (`time.process_time`), whose
self time per function is grouped by where the function lives (Django's SQL compiler, the rest
of the ORM, psycopg, requests/urllib3, redis-py, our apps, ...; a built-in or standard-library
helper counts for its callers). Profiling slows everything by
a similar factor, so the shares are what to read; the unprofiled pass gives the real ms.
PostgreSQL's own CPU for the same work is read from its backend's /proc entry.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

from _harness import (
    PYTHON,
    ROOT,
    Processes,
    free_port,
    machine_info,
    md_table,
    prepare_database,
    redis_cli,
    standin_env,
    wait_http,
)
from _loadgen import comment_webhook

# Where a function lives -> what to call its share. First match wins; paths are matched on
# "/"-separated file names as cProfile records them.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    (
        "Django ORM: building and compiling SQL",
        (
            "django/db/models/sql/",
            "django/db/models/expressions.py",
            "django/db/models/lookups.py",
            "django/db/models/fields/",
            "django/db/models/functions/",
            "django/db/models/aggregates.py",
            "django/db/models/query_utils.py",
        ),
    ),
    (
        "Django ORM: querysets and model instances",
        ("django/db/models/", "django/contrib/postgres/"),
    ),
    (
        "database driver (Django backend, psycopg)",
        ("django/db/backends/", "django/db/transaction.py", "django/db/utils.py", "psycopg"),
    ),
    (
        "HTTP client to the Graph API (requests, urllib3)",
        (
            "requests/",
            "urllib3/",
            "http/client.py",
            "email/",
            "idna/",
            "charset_normalizer/",
            "certifi/",
        ),
    ),
    (
        "sockets and other system calls",
        ("socket.py", "selectors.py", "ssl.py", "_socket.", "select.", "_ssl."),
    ),
    ("redis-py", ("redis/",)),
    ("Celery and kombu (publishing)", ("celery/", "kombu/", "amqp/", "vine/", "billiard/")),
    ("json", ("/json/", "_json")),
    ("logging", ("logging/",)),
    ("regular expressions", ("/python3.11/re/", "sre_", "re.Pattern", "re.Match", "_sre")),
    ("Django, other (signals, settings, utils, timezone)", ("django/",)),
    (
        "our code (accounts, triggers, messaging, webhooks, meta, config)",
        ("/accounts/", "/triggers/", "/messaging/", "/webhooks/", "/meta/", "/config/"),
    ),
]
OTHER = "other (standard library, built-ins)"
OUR_CODE = CATEGORIES[-1][0]


def category(filename: str, name: str) -> str:
    where = filename.replace("\\", "/")
    if where == "~":  # a built-in: classify by what it is a method of
        where = name
    for label, needles in CATEGORIES:
        if any(needle in where for needle in needles):
            return label
    return OTHER


# --- the child: the product's code paths, in-process ----------------------------------------------
def child(comments: int, warmup: int, top: int, dump: str = "") -> None:
    import django

    django.setup()
    from django.db import connection

    from webhooks import services
    from webhooks.tasks import _process_and_send

    serial = iter(range(10**9))

    def one_comment(prefix: str) -> None:
        n = next(serial)
        body, _headers = comment_webhook(comment_id=f"{prefix}{n:08d}", from_id=f"6{n:016d}")
        received = services.webhook_event_receive(raw_body=body)
        _process_and_send(received.event.pk)

    def pg_cpu_seconds() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    for _ in range(warmup):
        one_comment("911")

    pg0, cpu0, wall0 = pg_cpu_seconds(), time.process_time(), time.perf_counter()
    for _ in range(comments):
        one_comment("912")
    plain_cpu = (time.process_time() - cpu0) / comments
    plain_wall = (time.perf_counter() - wall0) / comments
    plain_pg = (pg_cpu_seconds() - pg0) / comments

    profiler = cProfile.Profile(time.process_time)
    cpu0 = time.process_time()
    profiler.enable()
    for _ in range(comments):
        one_comment("913")
    profiler.disable()
    profiled_cpu = (time.process_time() - cpu0) / comments

    stats = pstats.Stats(profiler)
    if dump:
        stats.dump_stats(dump)  # for pstats or snakeviz: callers, callees, cumulative
    shares: dict[str, float] = {}
    functions = []
    ours = []
    for (filename, line, name), (_cc, calls, own, cumulative, callers) in stats.stats.items():
        label = category(filename, name)
        where = f"{short(filename)}:{line}({name})"
        functions.append((own, calls, where, label))
        if label == OUR_CODE:
            ours.append((cumulative, calls, where))
        if label == OTHER and callers:
            # A built-in or a standard-library helper (isinstance, copy.copy, ...) counts for
            # whoever called it, in proportion to each caller's share of its time.
            called = sum(entry[2] for entry in callers.values()) or 1.0
            for (c_file, _c_line, c_name), entry in callers.items():
                c_label = category(c_file, c_name)
                shares[c_label] = shares.get(c_label, 0.0) + own * entry[2] / called
            continue
        shares[label] = shares.get(label, 0.0) + own
    total = sum(shares.values()) or 1.0
    functions.sort(reverse=True)
    ours.sort(reverse=True)
    print(
        json.dumps(
            {
                "plain_cpu_ms": plain_cpu * 1000,
                "plain_wall_ms": plain_wall * 1000,
                "plain_pg_ms": plain_pg * 1000,
                "profiled_cpu_ms": profiled_cpu * 1000,
                "shares": {k: v / total for k, v in shares.items()},
                "top": [
                    (own / total, calls / comments, where, label)
                    for own, calls, where, label in functions[:top]
                ],
                "ours": [
                    (cumulative / total, calls / comments, where)
                    for cumulative, calls, where in ours[:top]
                ],
            }
        )
    )


def short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", f"{ROOT}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --- the parent: services, database, report -----------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comments", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--top", type=int, default=25, help="functions listed by own CPU")
    p.add_argument("--db-name", default="instadm_bench_profile")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    p.add_argument("--dump", default="", help="also write the raw profile (pstats) here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.comments, args.warmup, args.top, args.dump)
        return 0

    import tempfile

    work = Path(tempfile.mkdtemp(prefix="instadm-bench-profile-"))
    standin_port = free_port()
    env = standin_env(args, work / "var", standin_port, {"PRIVATE_REPLY_LIMIT_PER_HOUR": "1000000"})
    print(f"machine: {machine_info()}")
    with Processes(work) as procs:
        procs.start("standin", [PYTHON, "-m", "meta.standin", "--port", str(standin_port)], env)
        wait_http(standin_port, "/_standin/health", procs, ["standin"])
        redis_cli(args.redis_url, "FLUSHDB")
        prepare_database(env, args.pg_url, args.db_name)
        out = subprocess.run(
            [
                *(PYTHON, __file__, "--child", "--comments", str(args.comments)),
                *("--warmup", str(args.warmup), "--top", str(args.top)),
                *(("--dump", str(Path(args.dump).resolve())) if args.dump else ()),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if out.returncode != 0:
            print(out.stdout[-3000:], out.stderr[-5000:], file=sys.stderr)
            return 1
        result = json.loads(out.stdout.strip().splitlines()[-1])
        replies = json.loads(
            subprocess.run(
                ["curl", "-s", f"http://127.0.0.1:{standin_port}/_standin/stats"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["endpoints"]
    report(args, result, replies)
    return 0


def report(args, result: dict, replies: dict) -> None:
    expected = args.warmup + 2 * args.comments
    print(
        f"\n{args.comments} matched comments per pass (after {args.warmup} warm-up), each "
        "stored by the webhook view's service, then processed and both replies sent by the "
        "worker's task body, in one process."
    )
    print(
        f"stand-in: private replies {replies.get('private_reply', 0)}, public replies "
        f"{replies.get('comment_reply', 0)} (expected {expected} each)"
    )
    print(
        f"unprofiled: {result['plain_cpu_ms']:.1f} ms CPU per comment in this process "
        f"(wall {result['plain_wall_ms']:.1f} ms), PostgreSQL backend "
        f"{result['plain_pg_ms']:.1f} ms CPU; under the profiler "
        f"{result['profiled_cpu_ms']:.1f} ms\n"
    )
    shares = sorted(result["shares"].items(), key=lambda kv: -kv[1])
    rows = [
        [label, f"{share:.0%}", f"{share * result['plain_cpu_ms']:.1f}"] for label, share in shares
    ]
    print(md_table(["own CPU of functions in", "share", "ms per comment (unprofiled)"], rows))
    print()
    top = [
        [f"`{where}`", f"{share:.1%}", f"{calls:g}", label]
        for share, calls, where, label in result["top"]
    ]
    print(md_table(["function", "own CPU", "calls per comment", "counted as"], top))
    print()
    ours = [
        [f"`{where}`", f"{share:.1%}", f"{share * result['plain_cpu_ms']:.1f}", f"{calls:g}"]
        for share, calls, where in result["ours"]
    ]
    print("Our functions by CPU including what they call (nested ones overlap):\n")
    print(md_table(["function", "CPU with callees", "ms per comment", "calls per comment"], ours))


if __name__ == "__main__":
    raise SystemExit(main())

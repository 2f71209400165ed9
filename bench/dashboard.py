"""Dashboard benchmark: the console's home page with a million delivery records.

    .venv/bin/python bench/dashboard.py [--deliveries 1000000] [--requests 200] [--write-doc]

Creates a fresh PostgreSQL database (--db-name), migrates it, seeds it (bench/_dashboard_seed.py:
20 accounts in 3 workspaces, 100 triggers, --deliveries deliveries finished over 30 days, read
receipts, a third as many firings, interactions and link clicks), counts the daily figures as
beat does (timed), starts gunicorn as the Procfile's web process in production mode (DEBUG off)
and times GET /admin/ over HTTP for an agency admin (every workspace), a support person and a
marketer (one workspace each), --requests each after a warm-up, one at a time and then with 4
clients at once; also the deliveries list a failure figure links to. Aim: p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness
from _harness import (
    PYTHON,
    Processes,
    bench_env,
    code_version,
    command_line,
    free_port,
    gunicorn_argv,
    install_signal_handlers,
    machine_info,
    make_work_dir,
    md_table,
    now_stamp,
    percentile,
    recreate_database,
    remove_work_dir,
    run_checked,
    table,
    update_doc_section,
    wait_http,
)

AIM_MS = 300.0


def fetch(port: int, path: str, session: str) -> tuple[int, float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers={"Cookie": f"sessionid={session}"})
        response = conn.getresponse()
        body = response.read()
        return response.status, time.perf_counter() - started, len(body)
    finally:
        conn.close()


def timed(port: int, path: str, session: str, count: int, clients: int = 1) -> list[float]:
    for _ in range(5):  # warm-up: connections, caches, the first request of each worker
        fetch(port, path, session)
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_client = count // clients

    def client() -> None:
        for _ in range(per_client):
            status, took, _ = fetch(port, path, session)
            with lock:
                if status != 200:
                    errors.append(str(status))
                times.append(took * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"GET {path} answered {sorted(set(errors))}")
    return sorted(times)


def stats(times: list[float]) -> list[str]:
    return [
        f"{len(times)}",
        f"{statistics.median(times):.0f}",
        f"{percentile(times, 95):.0f}",
        f"{percentile(times, 99):.0f}",
        f"{max(times):.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db-name", default="instadm_bench_dashboard")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    install_signal_handlers()
    work = make_work_dir(args.keep_logs)
    procs = Processes(work)
    env = bench_env(
        db_name=args.db_name, pg_url=args.pg_url, redis_url=args.redis_url, var_dir=work / "var"
    )
    try:
        print(f"fresh database {args.db_name}, migrating ...")
        recreate_database(args.pg_url, args.db_name)
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, timeout=600)
        print(f"seeding {args.deliveries:,} deliveries ...")
        seed_env = {**env, "SEED_DELIVERIES": str(args.deliveries)}
        out = run_checked(
            [
                PYTHON,
                "manage.py",
                "shell",
                "-c",
                "import runpy; runpy.run_path('bench/_dashboard_seed.py')",
            ],
            seed_env,
            timeout=3600,
        )
        seeded = json.loads(out.split("SEEDED ", 1)[1].splitlines()[0])
        print(json.dumps({k: v for k, v in seeded.items() if k != "sessions"}))
        port = free_port()
        procs.start(
            "web",
            gunicorn_argv(port, args.web_workers, 1, access_log=False),
            env,
        )
        wait_http(port, "/livez/", procs, ["web"])
        rows = []
        for who, session in seeded["sessions"].items():
            times = timed(port, "/admin/", session, args.requests)
            rows.append([f"GET /admin/ as {who}", *stats(times)])
        admin = seeded["sessions"]["agency admin"]
        times = timed(port, "/admin/", admin, args.requests, clients=4)
        rows.append(["GET /admin/ as agency admin, 4 clients at once", *stats(times)])
        failed_list = (
            f"/admin/messaging/delivery/?status=failed&account={seeded['failure_link_account']}"
        )
        times = timed(port, failed_list, seeded["sessions"]["support (1 workspace)"], 50)
        rows.append(["the deliveries a failure figure links to (support)", *stats(times)])
        headers = ["request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"]
        print(table(headers, rows))
        # The aim is what a person waits for: one page at a time. With 4 clients at once on 2
        # workers and 2 cores, requests also wait for each other (shown, not the aim).
        worst = max(float(row[3]) for row in rows[:3])
        verdict = "met" if worst < AIM_MS else "NOT met"
        print(f"aim: dashboard p95 < {AIM_MS:.0f} ms: {verdict} (worst p95 {worst:.0f} ms)")
        if args.write_doc:
            body = "\n".join(
                [
                    "## Dashboard (`bench/dashboard.py`)",
                    "",
                    f"Run {now_stamp()} on {machine_info()}; code {code_version()}.",
                    f"Command: `{command_line()}`",
                    "",
                    f"{seeded['deliveries']:,} delivery records over 30 days in "
                    f"{seeded['accounts']} accounts of 3 workspaces with {seeded['triggers']} "
                    "triggers, and a third as many firings, interactions and link clicks; "
                    f"{seeded['figure_rows']:,} daily-figure rows. Counting all 30 days took "
                    f"{seeded['recount_all_seconds']} s (`manage.py count_figures`); beat's run "
                    f"(today, yesterday and one older day) {seeded['beat_refresh_seconds']} s. "
                    f"gunicorn with {args.web_workers} sync workers, DEBUG off, over HTTP.",
                    "",
                    md_table(headers, rows),
                    "",
                    f"Aim: the dashboard answers in under {AIM_MS:.0f} ms at p95 with a million "
                    f"deliveries: **{verdict}** (worst p95 {worst:.0f} ms, one page at a time; "
                    "with 4 clients at once on the 2 workers and 2 cores, requests also queue "
                    "for each other).",
                ]
            )
            update_doc_section("dashboard", body)
            print("docs/performance.md updated")
    finally:
        procs.stop_all()
        remove_work_dir(work, keep=args.keep_logs)


if __name__ == "__main__":
    main()

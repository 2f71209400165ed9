"""End-to-end latency benchmark: webhook POST -> private reply (and public reply) reaching Meta.

    .venv/bin/python bench/latency.py [--comments 1000] [--rate 20] [--worker-concurrency 2,4]
        [--web-config sync:3] [--profile 100]

Copies the code under test and starts the Graph API stand-in; then, for each worker concurrency,
a fresh PostgreSQL database (migrate + load_demo), a flushed Redis db 13 (broker and shared
state), gunicorn (the Procfile's `web`) and a Celery worker (the Procfile's `worker`), all in
production mode. A separate client process sends distinct "guide please" comment webhooks at a
steady rate (open loop: a slow answer does not delay the next send), recording time.time() just
before each POST. The stand-in's request log then gives, per comment, when the private reply
(`private_reply`, body.recipient.comment_id) and the public reply (`comment_reply`, the comment
id in the path) reached "Meta". No beat runs, so nothing is rescued by the sweeper: a lost event
shows up as a missing reply. With --profile N, one more run of N comments logs each task's cost
(bench/_instrument.py).

Aims: p50 under 50 ms and p99 under 300 ms from webhook POST to private reply; no comment
without a private reply; no duplicate.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    PYTHON,
    CpuMeter,
    Processes,
    QuietGate,
    code_version,
    command_line,
    cpu_speed_check,
    db_sessions,
    free_port,
    gunicorn_argv,
    http_json,
    install_signal_handlers,
    machine_info,
    make_work_dir,
    md_table,
    now_stamp,
    parse_web_config,
    percentile,
    postgres_settings,
    prepare_database,
    raise_priority,
    redis_cli,
    remove_work_dir,
    settings_summary,
    snapshot_project,
    sql_rows,
    standin_env,
    table,
    update_doc_section,
    wait_http,
    wait_log,
    web_config_name,
)
from _loadgen import CTX, Connection, build_post, comment_webhook, quiet_child_signals

AIM_P50_MS = 50.0
AIM_P99_MS = 300.0
NOISY_OTHER_LOAD = 0.10
WEBHOOK_PATH = "/webhooks/instagram/"


# --- the client process ---------------------------------------------------------------------
def _sender_process(port: int, plan: list[tuple[str, bytes]], rate: float, threads: int, out):
    """Open loop: request i goes out at start + i/rate, from one of `threads` sockets."""
    quiet_child_signals()
    start = time.monotonic() + 0.2
    records: dict[str, tuple[float, int, float, float]] = {}
    lock = threading.Lock()
    deadline = start + len(plan) / rate + 30.0

    def run(offset: int) -> None:
        conn = Connection(port)
        for i in range(offset, len(plan), threads):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() > deadline:
                break
            comment_id, raw = plan[i]
            lag = time.monotonic() - due
            sent = time.time()
            t0 = time.perf_counter()
            status = conn.request(raw)
            with lock:
                records[comment_id] = (sent, status, time.perf_counter() - t0, lag)
        conn.close()

    workers = [threading.Thread(target=run, args=(j,), daemon=True) for j in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=max(0.0, deadline - time.monotonic()) + 15)
    cpu = time.process_time()
    with lock:
        out.put((dict(records), cpu))


def send_comments(
    port: int, plan: list[tuple[str, bytes]], rate: float, threads: int
) -> tuple[dict[str, tuple[float, int, float, float]], float]:
    out = CTX.Queue()
    proc = CTX.Process(target=_sender_process, args=(port, plan, rate, threads, out), daemon=True)
    proc.start()
    try:
        records, cpu = out.get(timeout=len(plan) / rate + 60)
    except BaseException:
        # Interrupted or timed out: stop sending right away.
        proc.terminate()
        proc.join(timeout=5)
        raise
    proc.join(timeout=10)
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=5)
    return records, cpu


class Ids:
    def __init__(self) -> None:
        self.tag = f"{int(time.time()) % 10**6:06d}"
        self.n = 0

    def plan(self, port: int, count: int) -> list[tuple[str, bytes]]:
        out = []
        for _ in range(count):
            self.n += 1
            comment_id, from_id = f"179{self.tag}{self.n:08d}", f"8{self.tag}{self.n:09d}"
            body, headers = comment_webhook(comment_id=comment_id, from_id=from_id)
            out.append((comment_id, build_post(port, WEBHOOK_PATH, body, headers)))
        return out


# --- reading the stand-in ----------------------------------------------------------------------
def standin_counts(port: int) -> dict[str, int]:
    return http_json(port, "GET", "/_standin/stats")["endpoints"]


def wait_replies(port: int, count: int, timeout: float, procs: Processes) -> float:
    """Wait until `count` private and public replies were logged (or no progress for 15 s)."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        counts = standin_counts(port)
        done = min(counts.get("private_reply", 0), counts.get("comment_reply", 0))
        if done >= count:
            return time.monotonic()
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > 15:
            break
        procs.check_alive()
        time.sleep(0.2)
    return time.monotonic()


def reply_times(port: int) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """comment id -> stand-in arrival times, for private and public replies; + non-200 count."""
    private: dict[str, list[float]] = {}
    public: dict[str, list[float]] = {}
    errors = 0
    for entry in http_json(port, "GET", "/_standin/requests?endpoint=private_reply")["requests"]:
        body = entry.get("body") or {}
        comment_id = str(
            ((body.get("recipient") or {}) if isinstance(body, dict) else {}).get("comment_id", "")
        )
        private.setdefault(comment_id, []).append(entry["time"])
        errors += entry.get("status") != 200
    for entry in http_json(port, "GET", "/_standin/requests?endpoint=comment_reply")["requests"]:
        path = entry.get("path") or ""
        comment_id = str(entry.get("node") or path.rstrip("/").split("/")[-2])
        public.setdefault(comment_id, []).append(entry["time"])
        errors += entry.get("status") != 200
    return private, public, errors


# --- one worker configuration ---------------------------------------------------------------------
@dataclass
class Run:
    concurrency: int
    comments: int
    posts_ok: int = 0
    private: list[float] = field(default_factory=list)  # seconds, sorted
    public: list[float] = field(default_factory=list)
    missing_private: int = 0
    missing_public: int = 0
    dup_private: int = 0
    dup_public: int = 0
    standin_errors: int = 0
    post_p99: float = 0.0
    send_lag_max: float = 0.0
    send_seconds: float = 0.0
    drain_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    stages: list[list[str]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    db_sessions: int | None = None  # new PostgreSQL connections during the run
    tasks: list[list[str]] = field(default_factory=list)
    speed_ms: float = 0.0  # cpu_speed_check() right before the run
    instrumented: list[list[str]] = field(default_factory=list)  # --profile run only

    def p(self, which: str, q: float) -> float:
        return percentile(getattr(self, which), q)

    @property
    def checks_ok(self) -> bool:
        return (
            self.posts_ok == self.comments
            and self.missing_private == 0
            and self.dup_private == 0
            and self.missing_public == 0
            and self.dup_public == 0
            and self.standin_errors == 0
        )

    @property
    def total_cpu(self) -> float:
        """CPU seconds of everything the benchmark runs (not other processes), incl. the client
        and what could not be attributed (short-lived processes)."""
        parts = ("worker", "web", "standin", "postgres", "redis", "kernel", "unattributed")
        return sum(self.cpu.get(k, 0.0) for k in parts) + self.client_cpu

    @property
    def noisy(self) -> bool:
        """Processes outside the benchmark used a noticeable share of the machine."""
        return self.cpu.get("other_share", 0.0) > NOISY_OTHER_LOAD

    @property
    def meets_aims(self) -> bool:
        return (
            self.p("private", 50) * 1000 < AIM_P50_MS
            and self.p("private", 99) * 1000 < AIM_P99_MS
            and self.checks_ok
        )


def stage_breakdown(
    args: argparse.Namespace, sends: dict[str, tuple], private: dict[str, list[float]]
) -> list[list[str]]:
    """Per private reply: where the time went, from the product's own timestamps."""
    try:
        rows = sql_rows(
            args.pg_url,
            args.db_name,
            "SELECT comment_id, extract(epoch from event_received_at), "
            "extract(epoch from created_at), extract(epoch from sending_started_at) "
            "FROM messaging_delivery WHERE kind = 'private_reply'",
        )
    except Exception as exc:  # the schema moves under concurrent development
        print(f"stage breakdown skipped: {exc}")
        return []
    stages: dict[str, list[float]] = {
        "POST sent -> event stored (web)": [],
        "event stored -> delivery created (queue + process_event)": [],
        "delivery created -> send claimed (commit, pacer, queue, task start)": [],
        "send claimed -> request at Meta (checks + HTTP)": [],
    }
    names = list(stages)
    for comment_id, received, created, claimed in rows:
        if comment_id not in sends or comment_id not in private or not claimed:
            continue
        sent = sends[comment_id][0]
        at_meta = min(private[comment_id])
        points = [sent, float(received), float(created), float(claimed), at_meta]
        for name, a, b in zip(names, points, points[1:], strict=False):
            stages[name].append(b - a)
    out = []
    for name, values in stages.items():
        values.sort()
        if values:
            out.append(
                [name]
                + [f"{percentile(values, q) * 1000:.1f}" for q in (50, 90, 99)]
                + [f"{values[-1] * 1000:.1f}"]
            )
    return out


_TASK_DONE = re.compile(r"Task ([\w.]+)\[[\w-]+\] succeeded in ([\d.e-]+)s")


def task_times(log: Path, offset: int, comments: int) -> list[list[str]]:
    """Per task name, from the worker's INFO log (as in the Procfile): how many ran per comment
    and how long each took inside the pool process (Celery's own "succeeded in" figure)."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    times: dict[str, list[float]] = {}
    for match in _TASK_DONE.finditer(text):
        times.setdefault(match.group(1), []).append(float(match.group(2)))
    out = []
    for task, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        values.sort()
        out.append(
            [
                task,
                f"{len(values) / max(comments, 1):.2f}",
                f"{sum(values) / len(values) * 1000:.1f}",
                f"{percentile(values, 50) * 1000:.1f}",
                f"{percentile(values, 99) * 1000:.1f}",
                f"{sum(values) * 1000 / max(comments, 1):.1f}",
            ]
        )
    return out


TASK_HEADERS = ("task", "runs/comment", "mean ms", "p50 ms", "p99 ms", "busy ms/comment")


def delivery_statuses(args: argparse.Namespace, comment_ids: set[str]) -> dict[str, int]:
    try:
        rows = sql_rows(
            args.pg_url, args.db_name, "SELECT comment_id, kind, status FROM messaging_delivery"
        )
    except Exception:
        return {}
    out: dict[str, int] = {}
    for comment_id, kind, status in rows:
        if comment_id in comment_ids:
            key = f"{kind}:{status}"
            out[key] = out.get(key, 0) + 1
    return out


def run_worker_config(
    concurrency: int,
    args: argparse.Namespace,
    env: dict,
    procs: Processes,
    ids: Ids,
    web_port: int,
    standin_port: int,
    roots: dict[str, int],
    comments: int,
    label: str = "",
) -> Run:
    name = f"worker-c{concurrency}{label}"
    worker = procs.start(
        name,
        [
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel=info",
            f"--concurrency={concurrency}",
        ],
        env,
    )
    try:
        wait_log(procs, name, r"ready\.", timeout=60)
        http_json(standin_port, "POST", "/_standin/reset")
        # Warm-up: every pool process opens its DB, Redis and HTTP connections.
        if args.warmup:
            warm = ids.plan(web_port, args.warmup)
            send_comments(web_port, warm, args.rate, args.senders)
            wait_replies(standin_port, len(warm), 30, procs)
        http_json(standin_port, "POST", "/_standin/reset")

        plan = ids.plan(web_port, comments)
        run = Run(concurrency, len(plan))
        meter = CpuMeter({**roots, "worker": worker.pid}, args.db_name)
        args.quiet.wait()
        sessions0 = db_sessions(args.pg_url, args.db_name)
        log_offset = procs.log_path(name).stat().st_size
        run.speed_ms = cpu_speed_check()
        meter.start()
        t0 = time.monotonic()
        sends, run.client_cpu = send_comments(web_port, plan, args.rate, args.senders)
        t_sent = time.monotonic()
        wait_replies(standin_port, len(plan), args.drain_seconds, procs)
        run.cpu = meter.stop()
        run.send_seconds = t_sent - t0
        run.drain_seconds = time.monotonic() - t_sent
        time.sleep(1.1)  # PostgreSQL flushes its session counters about once a second
        sessions1 = db_sessions(args.pg_url, args.db_name)
        if sessions0 >= 0 and sessions1 >= 0:
            run.db_sessions = max(0, sessions1 - sessions0 - 1)  # minus the counting query

        private, public, run.standin_errors = reply_times(standin_port)
        run.posts_ok = sum(1 for s in sends.values() if s[1] == 200)
        post_times = sorted(s[2] for s in sends.values())
        run.post_p99 = percentile(post_times, 99)
        run.send_lag_max = max((s[3] for s in sends.values()), default=0.0)
        for comment_id, _ in plan:
            sent = sends.get(comment_id)
            for times, attr in ((private, "private"), (public, "public")):
                arrivals = times.get(comment_id)
                if not arrivals or sent is None:
                    # Counted as infinitely late, so the percentiles cannot hide it.
                    setattr(run, f"missing_{attr}", getattr(run, f"missing_{attr}") + 1)
                    getattr(run, attr).append(float("inf"))
                    continue
                if len(arrivals) > 1:
                    setattr(run, f"dup_{attr}", getattr(run, f"dup_{attr}") + 1)
                getattr(run, attr).append(min(arrivals) - sent[0])
        run.private.sort()
        run.public.sort()
        planned = {c for c, _ in plan}
        stray = (set(private) | set(public)) - planned
        if stray:
            print(f"  note: {len(stray)} replies for comments outside the measured set")
        run.tasks = task_times(procs.log_path(name), log_offset, len(plan))
        run.instrumented = instrument_rows(procs.log_path(name), log_offset, len(plan))
        run.stages = stage_breakdown(args, sends, private)
        run.statuses = delivery_statuses(args, planned)
        procs.check_alive()
        return run
    finally:
        procs.stop(name, grace=20)


# --- profile: what each task costs inside the real worker -------------------------------------
_BENCH_TASK = re.compile(
    r"BENCH-TASK ([\w.]+) wall_ms=([\d.]+) cpu_ms=([\d.]+) sql=(\d+) redis=(\d+) "
    r"new_db_connections=(\d+)"
)

PROFILE_HEADERS = (
    "task",
    "runs/comment",
    "wall ms/run",
    "CPU ms/run",
    "SQL statements/run",
    "Redis round trips/run",
    "new DB connections/run",
    "CPU ms/comment",
    "SQL/comment",
)


def instrument_rows(log: Path, offset: int, comments: int) -> list[list[str]]:
    """Per task name, from the BENCH-TASK lines bench/_instrument.py writes into the worker log."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    per: dict[str, list[list[float]]] = {}
    for m in _BENCH_TASK.finditer(text):
        per.setdefault(m.group(1), []).append([float(x) for x in m.groups()[1:]])
    rows_out, totals = [], [0.0] * 5
    n = max(comments, 1)
    for task, runs in sorted(per.items(), key=lambda kv: -sum(r[1] for r in kv[1])):
        sums = [sum(r[i] for r in runs) for i in range(5)]
        totals = [t + x for t, x in zip(totals, sums, strict=True)]
        k = len(runs)
        rows_out.append(
            [
                task,
                f"{k / n:.2f}",
                f"{sums[0] / k:.1f}",
                f"{sums[1] / k:.1f}",
                f"{sums[2] / k:.1f}",
                f"{sums[3] / k:.1f}",
                f"{sums[4] / k:.2f}",
                f"{sums[1] / n:.1f}",
                f"{sums[2] / n:.1f}",
            ]
        )
    if rows_out:
        rows_out.append(
            [
                "all tasks, per comment",
                "",
                f"{totals[0] / n:.1f}",
                f"{totals[1] / n:.1f}",
                f"{totals[2] / n:.1f}",
                f"{totals[3] / n:.1f}",
                f"{totals[4] / n:.2f}",
                f"{totals[1] / n:.1f}",
                f"{totals[2] / n:.1f}",
            ]
        )
    return rows_out


def whatif_env(env: dict, scenarios: str) -> dict:
    """The environment with the product's settings plus bench/whatif_settings.py scenarios."""
    out = dict(env)
    out["DJANGO_SETTINGS_MODULE"] = "whatif_settings"
    out["BENCH_WHAT_IF"] = scenarios
    out["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")) if p
    )
    return out


# --- report ---------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    """Milliseconds; a reply that never came (within the drain time) shows as 'none'."""
    return "none" if seconds == float("inf") else f"{seconds * 1000:.1f}"


HEADERS = (
    "worker conc.",
    "reply",
    "comments",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "missing",
    "duplicates",
)


def rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        for which, label in (("private", "private reply"), ("public", "public reply")):
            values = getattr(run, which)
            out.append(
                [
                    str(run.concurrency),
                    label,
                    str(run.comments),
                    ms(run.p(which, 50)),
                    ms(run.p(which, 90)),
                    ms(run.p(which, 99)),
                    ms(values[-1]) if values else "nan",
                    str(getattr(run, f"missing_{which}")),
                    str(getattr(run, f"dup_{which}")),
                ]
            )
    return out


RUN_HEADERS = (
    "worker conc.",
    "POSTs 200",
    "POST p99 ms",
    "send lag max ms",
    "sending s",
    "drain s",
    "stand-in non-200",
    "worker CPU ms/comment",
    "web CPU ms/comment",
    "postgres CPU ms/comment",
    "client CPU ms/comment",
    "stand-in CPU ms/comment",
    "redis CPU ms/comment",
    "unattributed CPU ms/comment",
    "total CPU ms/comment",
    "cores used",
    "new DB connections/comment",
    "machine busy",
    "other load",
    "speed check ms",
    "deliveries",
    "aims met",
)


def run_rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        n = max(run.comments, 1)

        def per(group: str, n: int = n, run: Run = run) -> str:
            return f"{run.cpu.get(group, 0.0) * 1000 / n:.2f}"

        out.append(
            [
                str(run.concurrency),
                f"{run.posts_ok}/{run.comments}",
                ms(run.post_p99),
                ms(run.send_lag_max),
                f"{run.send_seconds:.1f}",
                f"{run.drain_seconds:.1f}",
                str(run.standin_errors),
                per("worker"),
                per("web"),
                per("postgres"),
                f"{run.client_cpu * 1000 / n:.2f}",
                per("standin"),
                per("redis"),
                per("unattributed"),
                f"{run.total_cpu * 1000 / n:.1f}",
                f"{run.total_cpu / max(run.send_seconds + run.drain_seconds, 1e-9):.2f}",
                "-" if run.db_sessions is None else f"{run.db_sessions / n:.2f}",
                f"{run.cpu.get('machine_busy', 0) * 100:.0f}%",
                f"{run.cpu.get('other_share', 0) * 100:.0f}%",
                f"{run.speed_ms:.1f}",
                ", ".join(f"{k}={v}" for k, v in sorted(run.statuses.items())) or "-",
                ("yes" if run.meets_aims else "no")
                + ("" if run.checks_ok else " (CHECKS FAIL)")
                + (" (noisy)" if run.noisy else ""),
            ]
        )
    return out


STAGE_HEADERS = ("stage (private reply)", "p50 ms", "p90 ms", "p99 ms", "max ms")


def write_doc(
    args: argparse.Namespace,
    env: dict,
    runs: list[Run],
    web: str,
    pg: str,
    profile: list[list[str]],
    profile_conc: int,
) -> None:
    best = min(runs, key=lambda r: (not r.checks_ok, r.p("private", 99)))
    p50, p99 = best.p("private", 50) * 1000, best.p("private", 99) * 1000
    lines = [
        "## End-to-end latency (`bench/latency.py`)"
        + (
            f" - what-if `{args.what_if}` (a proposed product change, not the product as it is)"
            if args.what_if
            else ""
        ),
        "",
        f"- Date: {now_stamp()}",
        f"- Machine: {machine_info()}; PostgreSQL {pg}; Redis on 127.0.0.1:6379",
        f"- Code: {code_version()}",
        f"- Command: `{command_line()}`",
        f"- Settings: {settings_summary(env)}",
        f"- Priority: {args.priority}",
        f"- Processes: gunicorn `{web}` (Procfile `web`, access log on), `celery -A config worker "
        "--loglevel=info --concurrency=N` (Procfile `worker`), the Graph API stand-in "
        "(`python -m meta.standin`); no beat. PRIVATE_REPLY_LIMIT_PER_HOUR is raised so the "
        "benchmark measures latency, not the hourly budget.",
        f'- Load: {args.comments} distinct "guide please" comment webhooks (distinct comment and '
        f"commenter ids) per worker configuration at {args.rate:g}/s (open loop, "
        f"{args.senders} sender threads in one client process), after {args.warmup} warm-up "
        "comments. Latency = stand-in arrival time of the reply minus time.time() just before "
        f"the webhook POST (same clock). Waited {args.quiet.waited:.0f} s in all for other "
        "processes' load to pass before measuring.",
        "",
        "Aims: webhook POST -> private reply p50 under 50 ms, p99 under 300 ms; no comment "
        "without a private reply; no duplicate.",
        "",
        f"**Best: worker concurrency {best.concurrency}: private reply p50 {p50:.1f} ms "
        f"({'met' if p50 < AIM_P50_MS else 'NOT met'}), p99 {p99:.1f} ms "
        f"({'met' if p99 < AIM_P99_MS else 'NOT met'}), missing {best.missing_private}, "
        f"duplicates {best.dup_private}.**",
        "",
        md_table(HEADERS, rows(runs)),
        "",
        md_table(RUN_HEADERS, run_rows(runs)),
        "",
        f"Missing = no reply within {args.drain_seconds:g} s after the last POST (counted as "
        "infinitely late in the percentiles, shown as 'none'). "
        "`send lag max` is how late the client sent a webhook against its schedule (the rate "
        "held); CPU columns divide each process tree's CPU time by the comments (total = all of "
        "the benchmark's processes incl. PostgreSQL, Redis, kernel threads and the client; "
        f"cores used = that total over the run's duration, of the machine's {os.cpu_count()}); "
        "other load = "
        "share of the cores used by processes outside the benchmark (e.g. someone's test run): "
        "figures with a high other load are not trustworthy. Unattributed CPU is busy time of "
        "processes that exited during the run (mostly short-lived PostgreSQL backends when "
        "connections are not reused); new DB connections come from pg_stat_database.sessions; "
        "speed check = ms a fixed pure-Python workload took on one core right before the run "
        "(best of 5; shows whether the virtual machine itself was slower at times).",
    ]
    for run in runs:
        if run.stages:
            lines += [
                "",
                f"Where the private reply's time goes (worker concurrency {run.concurrency}; "
                "from the product's timestamps: WebhookEvent.received_at, Delivery.created_at, "
                "Delivery.sending_started_at, and the stand-in's arrival time):",
                "",
                md_table(STAGE_HEADERS, run.stages),
            ]
        if run.tasks:
            lines += [
                "",
                f"Celery tasks (worker concurrency {run.concurrency}; from the worker's INFO log: "
                "runs per comment and time inside the pool process):",
                "",
                md_table(TASK_HEADERS, run.tasks),
            ]
    if profile:
        lines += [
            "",
            f"What each task costs inside the worker (a separate run of {args.profile} comments "
            f"at {args.rate:g}/s, worker --concurrency={profile_conc}, with bench/_instrument.py "
            "logging per task the pool process's wall and CPU time, SQL statements, Redis round "
            "trips and new PostgreSQL connections; its latencies are not in the tables above):",
            "",
            md_table(PROFILE_HEADERS, profile),
        ]
    key = "latency" + (f"-what-if-{args.what_if.replace(',', '-')}" if args.what_if else "")
    update_doc_section(key, "\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comments", type=int, default=1000, help="measured comments per config")
    parser.add_argument("--rate", type=float, default=20.0, help="comments per second")
    parser.add_argument(
        "--worker-concurrency", default="2,4", help="comma-separated Celery --concurrency values"
    )
    parser.add_argument("--web-config", default="sync:3", help="sync:N or gthread:NxT")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up comments per config")
    parser.add_argument("--senders", type=int, default=4, help="client sender threads")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=20.0,
        help="max wait for replies after the last POST; later ones count as missing",
    )
    parser.add_argument(
        "--private-reply-limit",
        type=int,
        default=1_000_000,
        help="PRIVATE_REPLY_LIMIT_PER_HOUR for the run",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds, over the whole run, to wait for an idle machine before measuring",
    )
    parser.add_argument(
        "--dispatch",
        choices=("relay", "request"),
        default="relay",
        help="WEBHOOK_DISPATCH: the outbox relay (a thread of the worker) publishes, or the "
        "webhook request itself (as before issue 14)",
    )
    parser.add_argument(
        "--what-if",
        default="",
        help="measure a proposed product change: a scenario in bench/whatif_settings.py",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="comments for an extra instrumented run that breaks the worker's cost down per "
        "task (0: skip)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="scheduling priority of the benchmark and the processes it starts (root only for "
        "negative values; 0 = unchanged)",
    )
    parser.add_argument(
        "--comment-reply-limit",
        type=int,
        help="COMMENT_REPLY_LIMIT_PER_SECOND for the run (default: the product's)",
    )
    parser.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="run the live checkout instead of a copy taken at the start",
    )
    parser.add_argument("--db-name", default="instadm_bench")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--no-doc", dest="doc", action="store_false", help="do not update docs/performance.md"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = parser.parse_args(argv)
    args.quiet = QuietGate(args.quiet_wait)
    if not 1 <= args.comments <= 100_000:
        parser.error("--comments must be 1..100000")
    if not 0.1 <= args.rate <= 2000:
        parser.error("--rate must be 0.1..2000")
    if args.comments / args.rate > 900:
        parser.error("--comments / --rate must stay under 900 s")
    if not 1 <= args.senders <= 64 or not 0 <= args.warmup <= 1000:
        parser.error("--senders must be 1..64 and --warmup 0..1000")
    if not 1 <= args.drain_seconds <= 600:
        parser.error("--drain-seconds must be 1..600")
    args.concurrencies = [int(c) for c in args.worker_concurrency.split(",") if c.strip()]
    if not args.concurrencies or not all(1 <= c <= 32 for c in args.concurrencies):
        parser.error("--worker-concurrency values must be 1..32")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    args.priority = raise_priority(args.nice)
    work = make_work_dir(args.keep_logs)
    if args.snapshot:
        snapshot_project(work)
    standin_port, web_port = free_port(), free_port()
    env = standin_env(
        args,
        work / "var",
        standin_port,
        {
            "PRIVATE_REPLY_LIMIT_PER_HOUR": str(args.private_reply_limit),
            "WEBHOOK_DISPATCH": args.dispatch,
        },
    )
    if args.comment_reply_limit:
        env["COMMENT_REPLY_LIMIT_PER_SECOND"] = str(args.comment_reply_limit)
    if args.what_if:
        # The product's settings plus a proposed change (bench/whatif_settings.py).
        env = whatif_env(env, args.what_if)
    workers, threads = parse_web_config(args.web_config)
    web_name = web_config_name(workers, threads)
    print(f"machine: {machine_info()}")
    print(f"logs: {work}")
    runs: list[Run] = []
    profile: list[list[str]] = []
    profile_conc = 0
    ok = False
    try:
        with Processes(work) as procs:
            standin = procs.start(
                "standin", [PYTHON, "-m", "meta.standin", "--port", str(standin_port)], env
            )
            wait_http(standin_port, "/_standin/health", procs, ["standin"])
            ids = Ids()

            def one_run(concurrency: int, run_env: dict, comments: int, label: str = "") -> Run:
                # Each run starts clean: no backlog, budget or connection carries over.
                t0 = time.monotonic()
                redis_cli(args.redis_url, "FLUSHDB")
                prepare_database(run_env, args.pg_url, args.db_name)
                web = procs.start("web", gunicorn_argv(web_port, workers, threads, True), run_env)
                wait_http(web_port, "/livez/", procs, ["web"])
                print(
                    f"worker --concurrency={concurrency}{label}: fresh database, Redis and web "
                    f"({time.monotonic() - t0:.1f}s); {comments} comments at {args.rate:g}/s"
                )
                roots = {"web": web.pid, "standin": standin.pid}
                try:
                    run = run_worker_config(
                        concurrency,
                        args,
                        run_env,
                        procs,
                        ids,
                        web_port,
                        standin_port,
                        roots,
                        comments,
                        label.replace(" ", "-"),
                    )
                finally:
                    procs.stop("web")
                print(
                    f"  private p50 {ms(run.p('private', 50))} ms p99 {ms(run.p('private', 99))}"
                    f" ms max {ms(run.private[-1]) if run.private else 'nan'} ms; missing "
                    f"{run.missing_private}, duplicates {run.dup_private}; "
                    f"checks {'ok' if run.checks_ok else 'FAILED'}"
                    + (f"; NOISY: other load {run.cpu['other_share']:.0%}" if run.noisy else "")
                )
                return run

            for concurrency in args.concurrencies:
                runs.append(one_run(concurrency, env, args.comments))
            if args.profile:
                scenarios = ",".join(x for x in ("instrument", args.what_if) if x)
                profiled = one_run(
                    args.concurrencies[-1],
                    whatif_env(env, scenarios),
                    args.profile,
                    " (instrumented)",
                )
                profile = profiled.instrumented
                profile_conc = profiled.concurrency
        print()
        print(table(HEADERS, rows(runs)))
        print()
        print(table(RUN_HEADERS, run_rows(runs)))
        for run in runs:
            if run.stages:
                print(f"\nworker concurrency {run.concurrency}:")
                print(table(STAGE_HEADERS, run.stages))
            if run.tasks:
                print(table(TASK_HEADERS, run.tasks))
        if profile:
            print(
                f"\nper task, inside the worker (--concurrency={profile_conc}, {args.profile} "
                "comments, instrumented run):"
            )
            print(table(PROFILE_HEADERS, profile))
        if args.doc:
            write_doc(
                args, env, runs, web_name, postgres_settings(args.pg_url), profile, profile_conc
            )
            print("\ndocs/performance.md updated")
        ok = all(r.checks_ok for r in runs)
        if not ok:
            print("CHECKS FAILED: see missing/duplicates/POSTs/stand-in errors above")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("interrupted; processes stopped")
        return 130
    finally:
        remove_work_dir(work, keep=not ok or args.keep_logs)
        with contextlib.suppress(Exception):
            redis_cli(args.redis_url, "FLUSHDB")


if __name__ == "__main__":
    sys.exit(main())

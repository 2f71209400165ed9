"""Viral burst benchmark: one account floods, twenty quiet ones must not notice.

    .venv/bin/python bench/burst.py [--comments 10000] [--seconds 10] [--quiet-accounts 20]
        [--viral-send-limit 100] [--worker-concurrency 4] [--web-config sync:3]

The issue's scenario: "A viral post: 10,000 comments in 10 seconds on one account, while 20 quiet
accounts receive a comment every few seconds. The stand-in enforces a per-account limit like
Meta's and counts violations." Everything runs for real, in production mode, on this machine: a
fresh PostgreSQL database, Redis (broker and REDIS_URL on a db number of its own, flushed),
gunicorn (the Procfile's `web`), one Celery worker (`worker`), Celery beat (`beat`, sweepers
every SWEEP_INTERVAL_SECONDS=2) and the Graph API stand-in with Meta-like limits switched on
(per sending node: Send API calls per second = the viral account's `send_limit_per_second`,
private replies per hour = its `private_reply_limit_per_hour`).

Accounts: 1 viral + N quiet, each connected with `manage.py connect_account` (own workspace,
own page id: the Send API node is the page) and one "guide" comment trigger (public reply +
private reply) loaded with `manage.py import_triggers -`. The viral account's budgets are set on
its row (`send_limit_per_second`, `private_reply_limit_per_hour`), as an operator would in the
admin.

Phases, on one stack:
1. warm-up: a couple of comments per account;
2. idle baseline: only the quiet accounts' load (a comment every ~3 s each, jittered) for
   --idle-seconds; latency = webhook POST -> private reply at the stand-in;
3. burst: the same quiet load starts, --lead-seconds later the viral account gets --comments
   webhooks within --seconds (as fast as intake allows, at most 1,000/s, from --viral-clients
   client processes); the quiet load goes on until the viral account's queue is drained
   (bounded by --drain-timeout).

Reported: the viral account's drain rate (private replies and public replies reaching the
stand-in per second, from its first reply until its queue is empty) against its configured
budget (aim: 95% or more); the quiet accounts' p50/p99 during the burst against idle (aim:
p99 within 2x); duplicates, lost comments and rate-limit errors provoked (all must be 0); CPU
per process tree in each phase (what limits the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _burst_helpers import (
    Account,
    BacklogSampler,
    Ids,
    QuietLoad,
    QuietRecord,
    Record,
    ViralBurst,
    comment_request,
    json_call,
    make_accounts,
)
from _harness import (
    DOC,
    PYTHON,
    ROOT,
    CpuMeter,
    Processes,
    QuietGate,
    code_version,
    command_line,
    cpu_speed_check,
    free_port,
    gunicorn_argv,
    install_signal_handlers,
    machine_info,
    md_table,
    now_stamp,
    parse_web_config,
    percentile,
    postgres_settings,
    raise_priority,
    recreate_database,
    redis_cli,
    remove_work_dir,
    run_checked,
    settings_summary,
    standin_env,
    table,
    update_doc_section,
    wait_http,
    wait_log,
    web_config_name,
)
from _loadgen import Connection

AIM_DRAIN = 0.95  # of the configured budget
AIM_QUIET_RATIO = 2.0  # quiet p99 during the burst / idle p99
NOISY_OTHER_LOAD = 0.10
OTHER_BENCH = r"bench/(intake|latency)\.py"
THROTTLE_CODES = (4, 17, 32, 613, 80001, 80002, 80006)
MAX_VIRAL_RATE = 1000.0
# Comment id "kinds" (a digit inside the id): which phase a comment belongs to.
KIND_VIRAL, KIND_IDLE, KIND_BURST_QUIET, KIND_WARM = 1, 2, 3, 9
DOC_KEY = "burst"
RUNS_START, RUNS_END = "<!-- burst-runs:start -->", "<!-- burst-runs:end -->"


# --- other benchmarks ----------------------------------------------------------------------------
def other_benchmarks() -> list[str]:
    out = subprocess.run(
        ["pgrep", "-af", OTHER_BENCH], capture_output=True, text=True, timeout=10, check=False
    )
    own = {os.getpid(), os.getppid()}
    return [
        line
        for line in out.stdout.splitlines()
        if line.strip() and int(line.split()[0]) not in own and "pgrep" not in line
    ]


def wait_for_other_benchmarks(max_wait: float, poll: float = 20.0) -> tuple[float, list[str]]:
    """Wait (bounded) while bench/intake.py or bench/latency.py runs: two benchmarks sharing two
    cores make both worthless. Returns the seconds waited and what was still running."""
    t0 = time.monotonic()
    running = other_benchmarks()
    while running and time.monotonic() - t0 < max_wait:
        print(f"another benchmark is running; waiting (poll {poll:.0f} s): {running[0][:120]}")
        time.sleep(min(poll, max(0.0, max_wait - (time.monotonic() - t0))))
        running = other_benchmarks()
    return time.monotonic() - t0, running


# --- setup ---------------------------------------------------------------------------------------
def trigger_file(accounts: list[Account]) -> str:
    return json.dumps(
        {
            "triggers": [
                {
                    "account": a.username,
                    "name": "Guide giveaway",
                    "event": "comment",
                    "match": "contains",
                    "keywords": ["guide", "send guide"],
                    "media_ids": [],
                    "public_replies": ["Sent! Check your DMs", "On its way to your inbox!"],
                    "messages": [{"text": "Here is the guide: https://example.com/guide"}],
                    "enabled": True,
                    "priority": 0,
                }
                for a in accounts
            ]
        }
    )


def prepare(env: dict, args: argparse.Namespace, accounts: list[Account]) -> int:
    """Fresh database, migrations, accounts (connect_account), triggers (import_triggers) and the
    viral account's budgets. Returns the viral account's primary key."""
    recreate_database(args.pg_url, args.db_name)
    run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
    # One workspace per account (an agency's clients), so the commands can run side by side.
    pending = list(accounts)
    while pending:
        batch, pending = pending[:3], pending[3:]
        running = [
            (
                a,
                subprocess.Popen(
                    [
                        PYTHON,
                        "manage.py",
                        "connect_account",
                        "--workspace",
                        f"Client {a.username}",
                        "--ig-user-id",
                        a.ig_user_id,
                        "--username",
                        a.username,
                        "--access-token",
                        a.token,
                        "--page-id",
                        a.page_id,
                    ],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                ),
            )
            for a in batch
        ]
        for account, proc in running:
            try:
                out, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
                raise RuntimeError(f"connect_account {account.username} timed out") from None
            if proc.returncode != 0:
                raise RuntimeError(f"connect_account {account.username} failed:\n{out[-2000:]}")
    run_checked(
        [PYTHON, "manage.py", "import_triggers", "-"],
        env,
        timeout=120,
        stdin=trigger_file(accounts),
    )
    viral = accounts[0]
    with db_connect(args) as conn, conn.cursor() as cur:
        # No command sets an account's budgets; an operator does it in the admin.
        cur.execute(
            "UPDATE accounts_instagramaccount SET send_limit_per_second = %s, "
            "private_reply_limit_per_hour = %s WHERE ig_user_id = %s RETURNING id",
            [args.viral_send_limit, args.viral_private_reply_limit, viral.ig_user_id],
        )
        (pk,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM accounts_instagramaccount")
        (n_accounts,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM triggers_trigger WHERE enabled")
        (n_triggers,) = cur.fetchone()
    if n_accounts != len(accounts) or n_triggers != len(accounts):
        raise RuntimeError(
            f"expected {len(accounts)} accounts and triggers: {n_accounts}, {n_triggers}"
        )
    return pk


def db_connect(args: argparse.Namespace):
    import psycopg

    return psycopg.connect(f"{args.pg_url.rstrip('/')}/{args.db_name}", autocommit=True)


def drop_database(args: argparse.Namespace) -> None:
    import psycopg

    with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [args.db_name],
        )
        conn.execute(f"DROP DATABASE IF EXISTS {args.db_name}")  # checked identifier


# --- stand-in ------------------------------------------------------------------------------------
def standin_setup(port: int, args: argparse.Namespace, accounts: list[Account]) -> None:
    json_call(
        port,
        "POST",
        "/_standin/limits",
        {
            "send_per_second": args.viral_send_limit,
            "private_replies_per_hour": args.viral_private_reply_limit,
        },
    )
    for a in accounts:
        # So public replies (quota of the token's account) are attributed to the account.
        json_call(
            port,
            "POST",
            "/_standin/accounts",
            {"token": a.token, "id": a.ig_user_id, "user_id": a.ig_user_id, "username": a.username},
        )


def standin_clear(port: int) -> None:
    """Log and counters only: limits, windows, accounts and private-reply markers stay."""
    json_call(port, "DELETE", "/_standin/requests")
    json_call(port, "DELETE", "/_standin/stats")


@dataclass
class Arrivals:
    """Per comment id: (stand-in time, status) of every private and public reply attempt."""

    private: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    public: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # "endpoint code" -> count

    def ok_times(self, which: str, comment_id: str) -> list[float]:
        return [t for t, s in getattr(self, which).get(comment_id, []) if s == 200]


def standin_arrivals(port: int) -> Arrivals:
    out = Arrivals()
    for endpoint, target in (("private_reply", out.private), ("comment_reply", out.public)):
        entries = json_call(port, "GET", f"/_standin/requests?endpoint={endpoint}", timeout=120)
        for entry in entries["requests"]:
            if endpoint == "private_reply":
                body = entry.get("body") or {}
                recipient = (body.get("recipient") or {}) if isinstance(body, dict) else {}
                comment_id = str(recipient.get("comment_id", ""))
            else:
                comment_id = str(entry.get("node") or "")
            status = entry.get("status")
            target.setdefault(comment_id, []).append((entry["time"], status))
            if status != 200:
                code = ((entry.get("response") or {}).get("error") or {}).get("code")
                key = f"{endpoint} {status} code {code}"
                out.errors[key] = out.errors.get(key, 0) + 1
    return out


def wait_quiet_replies(port: int, records: list[QuietRecord], timeout: float, procs) -> None:
    """Until every quiet comment answered 200 has both replies (or `timeout`)."""
    wanted = {r[0] for r in records if r[3] == 200}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and wanted:
        arrivals = standin_arrivals(port)
        if all(arrivals.ok_times("private", c) and arrivals.ok_times("public", c) for c in wanted):
            return
        procs.check_alive()
        time.sleep(0.5)


# --- figures -------------------------------------------------------------------------------------
@dataclass
class Latency:
    label: str
    private: list[float]  # seconds, sorted; inf = no reply
    public: list[float]
    comments: int

    def p(self, which: str, q: float) -> float:
        return percentile(getattr(self, which), q)

    def missing(self, which: str) -> int:
        return sum(1 for v in getattr(self, which) if v == float("inf"))


def quiet_latency(label: str, records: list[QuietRecord], arrivals: Arrivals) -> Latency:
    private, public = [], []
    for comment_id, _, sent, status, _, _ in records:
        if status != 200:
            continue
        for which, values in (("private", private), ("public", public)):
            times = arrivals.ok_times(which, comment_id)
            values.append(min(times) - sent if times else float("inf"))
    return Latency(label, sorted(private), sorted(public), len(private))


STAGES = (
    "POST -> event stored (web)",
    "event stored -> deliveries created (intake queue + process_event)",
    "delivery created -> dispatched (pacer: budget, in-flight cap)",
    "dispatched -> send claimed (sends queue)",
    "send claimed -> at the stand-in (checks + HTTP)",
)


def stage_values(
    args: argparse.Namespace, records: list[QuietRecord], arrivals: Arrivals
) -> dict[str, list[float]]:
    """Per quiet private reply, where its time went (the product's own timestamps)."""
    sent = {r[0]: r[2] for r in records if r[3] == 200}
    out: dict[str, list[float]] = {name: [] for name in STAGES}
    if not sent:
        return out
    with db_connect(args) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT d.comment_id, extract(epoch from e.received_at), "
            "extract(epoch from d.created_at), extract(epoch from d.dispatched_at), "
            "extract(epoch from d.sending_started_at) "
            "FROM messaging_delivery d JOIN webhooks_webhookevent e ON e.id = d.event_id "
            "WHERE d.kind = 'private_reply' AND d.comment_id = ANY(%s)",
            [list(sent)],
        )
        for comment_id, received, created, dispatched, claimed in cur.fetchall():
            times = arrivals.ok_times("private", comment_id)
            if not times or claimed is None or dispatched is None:
                continue
            points = [sent[comment_id], float(received), float(created), float(dispatched)]
            points.append(float(claimed))
            points.append(min(times))
            for name, a, b in zip(STAGES, points, points[1:], strict=False):
                out[name].append(b - a)
    for values in out.values():
        values.sort()
    return out


def stage_rows(idle: dict[str, list[float]], burst: dict[str, list[float]]) -> list[list[str]]:
    rows = []
    for name in STAGES:
        a, b = idle.get(name, []), burst.get(name, [])
        rows.append(
            [
                name,
                f"{ms(percentile(a, 50))} / {ms(percentile(a, 99))}",
                f"{ms(percentile(b, 50))} / {ms(percentile(b, 99))} / "
                f"{ms(b[-1] if b else float('nan'))}",
            ]
        )
    return rows


STAGE_HEADERS = ("stage (quiet private reply)", "idle p50 / p99 ms", "burst p50 / p99 / max ms")


def bucket_rows(res: Result, records: list[QuietRecord], arrivals: Arrivals) -> list[list[str]]:
    """Quiet private reply latency by when the comment was sent (about 12 buckets)."""
    ok = [r for r in records if r[3] == 200]
    if not ok:
        return []
    t0 = res.posts_start
    first, last = min(r[2] for r in ok), max(r[2] for r in ok)
    width = max(5.0, round((last - first) / 12 / 5) * 5)
    buckets: dict[int, list[float]] = {}
    for r in ok:
        times = arrivals.ok_times("private", r[0])
        k = int((r[2] - t0) // width)
        buckets.setdefault(k, []).append(min(times) - r[2] if times else float("inf"))
    rows = []
    for k in sorted(buckets):
        values = sorted(buckets[k])
        rows.append(
            [
                f"{k * width:+.0f} .. {(k + 1) * width:+.0f}",
                str(len(values)),
                ms(percentile(values, 50)),
                ms(percentile(values, 99)),
                ms(values[-1]),
            ]
        )
    return rows


BUCKET_HEADERS = ("sent, s after first viral POST", "quiet comments", "p50 ms", "p99 ms", "max ms")

# The issue's view of fairness: the quiet accounts' p99 in every 5-second window of the burst.
WINDOW_SECONDS = 5.0


def window_rows(
    res: Result, records: list[QuietRecord], arrivals: Arrivals
) -> tuple[list[list[str]], str]:
    """Quiet private reply p99 per 5 s window (by when the comment was sent), a row per
    minute, and a line saying how many windows kept within AIM_QUIET_RATIO of idle p99."""
    ok = [r for r in records if r[3] == 200 and r[2] >= res.posts_start]
    idle_p99 = res.idle.p("private", 99) if res.idle else float("nan")
    if not ok:
        return [], ""
    windows: dict[int, list[float]] = {}
    for r in ok:
        times = arrivals.ok_times("private", r[0])
        k = int((r[2] - res.posts_start) // WINDOW_SECONDS)
        windows.setdefault(k, []).append(min(times) - r[2] if times else float("inf"))
    p99 = {k: percentile(sorted(v), 99) for k, v in windows.items()}
    per_row = int(60 / WINDOW_SECONDS)
    rows = []
    for start in range(0, max(p99) + 1, per_row):
        cells = [ms(p99[k]) if k in p99 else "-" for k in range(start, start + per_row)]
        rows.append(
            [f"+{start * WINDOW_SECONDS:.0f} .. +{(start + per_row) * WINDOW_SECONDS:.0f}", *cells]
        )
    within = sum(1 for value in p99.values() if value <= AIM_QUIET_RATIO * idle_p99)
    intake_end = res.posts_done - res.posts_start if res.posts_done else 0.0
    after = {k: v for k, v in p99.items() if k * WINDOW_SECONDS >= intake_end}
    within_after = sum(1 for value in after.values() if value <= AIM_QUIET_RATIO * idle_p99)
    line = (
        f"quiet private reply p99 per {WINDOW_SECONDS:.0f} s window: {within} of {len(p99)} "
        f"windows within {AIM_QUIET_RATIO:g}x the idle p99 ({ms(idle_p99)} ms); after the viral "
        f"POSTs ended (+{intake_end:.0f} s): {within_after} of {len(after)}"
    )
    return rows, line


WINDOW_HEADERS = ("5 s windows (s after first viral POST)", *[f"w{i + 1}" for i in range(12)])


@dataclass
class Drain:
    which: str
    budget: float  # configured, per second
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    window_end: float = 0.0  # end of the measured window (last reply, or the time limit)
    drained: bool = False
    per_second: list[int] = field(default_factory=list)
    peak_1s: int = 0
    after_posts_rate: float = 0.0

    @property
    def seconds(self) -> float:
        return max(self.window_end - self.first, 1e-9)

    @property
    def rate(self) -> float:
        if self.drained:
            return (self.count - 1) / self.seconds if self.count > 1 else 0.0
        return self.count / self.seconds

    @property
    def fraction(self) -> float:
        return self.rate / self.budget if self.budget else 0.0


def drain_figures(
    which: str,
    times: list[float],
    budget: float,
    drained: bool,
    window_end: float,
    posts_done: float,
) -> Drain:
    d = Drain(which, budget)
    times = sorted(times)
    if not times:
        return d
    d.count, d.first, d.last, d.drained = len(times), times[0], times[-1], drained
    d.window_end = times[-1] if drained else window_end
    full = int(d.window_end - d.first)  # whole seconds only
    bins = [0] * max(full, 0)
    for t in times:
        k = int(t - d.first)
        if k < full:
            bins[k] += 1
    d.per_second = bins
    j = 0
    for i, t in enumerate(times):  # densest sliding 1 s window, as the stand-in counts
        while times[j] <= t - 1.0:
            j += 1
        d.peak_1s = max(d.peak_1s, i - j + 1)
    after = [t for t in times if t >= posts_done]
    if len(after) > 1 and after[-1] > posts_done:
        d.after_posts_rate = (len(after) - 1) / (after[-1] - posts_done)
    return d


def timeline_summary(d: Drain) -> str:
    if not d.per_second:
        return "-"
    s = d.per_second
    return f"{min(s)} / {statistics.median(s):g} / {max(s)}"


_TASK_DONE = re.compile(r"Task ([\w.]+)\[[\w-]+\] succeeded in ([\d.e-]+)s: ?(.*)")


def worker_tasks(log: Path, offset: int) -> tuple[dict[str, list[float]], int, list[str]]:
    """Per task name: run times from the worker's INFO log since `offset`; plus the events the
    outbox sweeper re-queued and the sweeper's non-zero results."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return {}, -1, ["worker log missing"]
    times: dict[str, list[float]] = {}
    requeued, sweeps = 0, []
    for m in _TASK_DONE.finditer(text):
        times.setdefault(m.group(1), []).append(float(m.group(2)))
        if m.group(1) == "webhooks.requeue_pending_events":
            with contextlib.suppress(ValueError):
                requeued += int(m.group(3).strip())
        elif m.group(1) == "messaging.sweep_deliveries" and re.search(r": [1-9]", m.group(3)):
            sweeps.append(m.group(3).strip())
    return times, requeued, sweeps


@dataclass
class DbState:
    statuses: dict[str, int] = field(default_factory=dict)  # "group kind status reason" -> n
    non_final: int = 0
    non_final_ids: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)  # comment ids without both deliveries
    not_sent: set[str] = field(default_factory=set)  # comment ids with a delivery not sent
    rate_limited: int = 0
    throttle_attempts: int = 0
    attempts_per_delivery_max: int = 0
    events: dict[str, int] = field(default_factory=dict)
    event_attempts_max: int = 0
    paused: list[str] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)
    dispatched: dict[str, float] = field(default_factory=dict)  # viral private reply comment id


def db_state(args: argparse.Namespace, viral_pk: int, comment_ids: set[str]) -> DbState:
    out = DbState()
    with db_connect(args) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT comment_id, account_id, kind, status, reason, attempts FROM messaging_delivery"
        )
        kinds: dict[str, set[str]] = {}
        for comment_id, account_id, kind, status, reason, attempts in cur.fetchall():
            group = "viral" if account_id == viral_pk else "quiet"
            key = f"{group} {kind} {status}" + (f" {reason}" if reason else "")
            out.statuses[key] = out.statuses.get(key, 0) + 1
            out.attempts_per_delivery_max = max(out.attempts_per_delivery_max, attempts)
            if status in ("queued", "sending"):
                out.non_final += 1
                out.non_final_ids.add(comment_id)
            if reason == "rate_limited":
                out.rate_limited += 1
            if comment_id in comment_ids:
                kinds.setdefault(comment_id, set()).add(kind)
                if status != "sent":
                    out.not_sent.add(comment_id)
        out.missing = {c for c in comment_ids if kinds.get(c) != {"private_reply", "public_reply"}}
        cur.execute(
            "SELECT comment_id, extract(epoch from dispatched_at) FROM messaging_delivery "
            "WHERE account_id = %s AND kind = 'private_reply' AND dispatched_at IS NOT NULL",
            [viral_pk],
        )
        out.dispatched = {c: float(t) for c, t in cur.fetchall()}
        cur.execute(
            "SELECT count(*) FROM messaging_deliveryattempt WHERE meta_code = ANY(%s)",
            [list(THROTTLE_CODES)],
        )
        (out.throttle_attempts,) = cur.fetchone()
        cur.execute(
            "SELECT state, count(*), max(processing_attempts) FROM webhooks_webhookevent "
            "GROUP BY state"
        )
        for state, n, attempts in cur.fetchall():
            out.events[state] = n
            out.event_attempts_max = max(out.event_attempts_max, attempts or 0)
        cur.execute(
            "SELECT username, paused_until, pause_reason, usage_percent "
            "FROM accounts_instagramaccount ORDER BY id"
        )
        for username, paused_until, reason, usage in cur.fetchall():
            if paused_until is not None:
                out.paused.append(f"@{username} until {paused_until:%H:%M:%S} ({reason})")
            if usage:
                out.usage.append(f"@{username} {usage}%")
    return out


# --- the run -------------------------------------------------------------------------------------
@dataclass
class Result:
    idle: Latency | None = None
    burst_quiet: Latency | None = None
    burst_quiet_all: Latency | None = None
    viral_posts: list[Record] = field(default_factory=list)
    viral_client_cpu: float = 0.0
    posts_start: float = 0.0
    posts_done: float = 0.0
    drained: bool = False
    stop_reason: str = ""
    unfinished: set[str] = field(default_factory=set)  # still queued when the wait ended
    drain_end: float = 0.0
    drain_private: Drain | None = None
    drain_public: Drain | None = None
    lost_viral: set[str] = field(default_factory=set)
    lost_quiet: set[str] = field(default_factory=set)
    dup_private: int = 0
    dup_public: int = 0
    repeat_attempts: int = 0
    stats_idle: dict = field(default_factory=dict)
    stats_burst: dict = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    db: DbState | None = None
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> group -> s
    tasks: dict[str, list[float]] = field(default_factory=dict)
    requeued_events: int = 0
    sweeps: list[str] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    sampler_error: str = ""
    speed_ms: tuple[float, float] = (0.0, 0.0)
    idle_quiet_posts: int = 0
    burst_quiet_posts: int = 0
    quiet_bad_posts: int = 0
    others_seen: list[str] = field(default_factory=list)
    stages: list[list[str]] = field(default_factory=list)
    dispatch_delay: list[float] = field(default_factory=list)  # budget taken -> at Meta, s
    refusals: list[str] = field(default_factory=list)  # throttled calls: when, how dense
    buckets: list[list[str]] = field(default_factory=list)
    windows: list[list[str]] = field(default_factory=list)
    window_line: str = ""

    @property
    def violations(self) -> int:
        return sum(
            (s.get("violations") or {}).get("total", 0) for s in (self.stats_idle, self.stats_burst)
        )

    @property
    def stats_duplicates(self) -> int:
        return sum(
            sum((s.get("duplicates") or {}).values()) for s in (self.stats_idle, self.stats_burst)
        )

    @property
    def duplicates(self) -> int:
        return self.dup_private + self.dup_public + self.stats_duplicates

    @property
    def lost(self) -> int:
        return len(self.lost_viral) + len(self.lost_quiet)

    @property
    def rate_limit_errors(self) -> int:
        # A call over the limit shows up twice (a stand-in violation and a throttled attempt in
        # the database): count it once; deliveries that gave up as rate_limited on top.
        db = self.db or DbState()
        return max(self.violations, db.throttle_attempts) + db.rate_limited

    @property
    def viral_ok(self) -> int:
        return sum(1 for r in self.viral_posts if r[2] == 200)

    @property
    def ratio_p99(self) -> float:
        if not self.idle or not self.burst_quiet:
            return float("nan")
        return self.burst_quiet.p("private", 99) / max(self.idle.p("private", 99), 1e-9)

    @property
    def ratio_p50(self) -> float:
        if not self.idle or not self.burst_quiet:
            return float("nan")
        return self.burst_quiet.p("private", 50) / max(self.idle.p("private", 50), 1e-9)

    @property
    def checks_ok(self) -> bool:
        return (
            self.duplicates == 0
            and self.lost == 0
            and self.rate_limit_errors == 0
            and self.viral_ok == len(self.viral_posts)
            and self.quiet_bad_posts == 0
        )


def wait_others(args: argparse.Namespace, res: Result) -> None:
    """Before a measured phase: let another benchmark finish first (bounded, shared budget)."""
    t0 = time.monotonic()
    _, running = wait_for_other_benchmarks(max(0.0, args.wait_other_left))
    args.wait_other_left -= time.monotonic() - t0
    res.others_seen += running


def meter_for(roots: dict[str, int], db_name: str) -> CpuMeter:
    return CpuMeter(dict(roots), db_name)


def run_benchmark(
    args: argparse.Namespace,
    env: dict,
    procs: Processes,
    accounts: list[Account],
    viral_pk: int,
    ports: dict[str, int],
    roots: dict[str, int],
) -> Result:
    res = Result()
    web_port, standin_port = ports["web"], ports["standin"]
    viral, quiet = accounts[0], accounts[1:]
    ids = Ids()

    # 1. warm-up: every pool process and gunicorn worker opens its connections.
    conn = Connection(web_port)
    warm: list[str] = []
    for n in range(args.warmup):
        for a in accounts:
            k = n * len(accounts) + a.index
            comment_id = ids.comment(KIND_WARM, k)
            status = conn.request(
                comment_request(web_port, a, comment_id, ids.commenter(KIND_WARM, k))
            )
            if status != 200:
                raise RuntimeError(f"warm-up webhook answered {status}")
            warm.append(comment_id)
            time.sleep(0.01)
    conn.close()
    warm_records = [(c, 0, 0.0, 200, 0.0, 0.0) for c in warm]
    wait_quiet_replies(standin_port, warm_records, 60, procs)
    standin_clear(standin_port)
    print(f"  warm-up: {len(warm)} comments answered")

    # 2. idle baseline: the quiet accounts' load alone.
    wait_others(args, res)
    args.quiet_gate.wait()
    meter = meter_for(roots, args.db_name)
    load = QuietLoad(
        web_port, quiet, ids.tag, KIND_IDLE, args.quiet_interval, args.idle_seconds + 5, seed=11
    )
    meter.start()
    load.start()
    meter.groups["quiet client"] = load.pid
    try:
        time.sleep(args.idle_seconds)
        idle_records, _ = load.finish()
    finally:
        load.kill()
    wait_quiet_replies(standin_port, idle_records, 30, procs)
    res.cpu["idle"] = meter.stop()
    res.stats_idle = json_call(standin_port, "GET", "/_standin/stats")
    arrivals_idle = standin_arrivals(standin_port)
    res.idle = quiet_latency("idle", idle_records, arrivals_idle)
    res.idle_quiet_posts = len(idle_records)
    res.quiet_bad_posts += sum(1 for r in idle_records if r[3] != 200)
    print(
        f"  idle: {len(idle_records)} quiet comments; private reply p50 "
        f"{ms(res.idle.p('private', 50))} ms, p99 {ms(res.idle.p('private', 99))} ms"
    )
    standin_clear(standin_port)
    time.sleep(1.0)

    # 3. the burst.
    plan = [
        (
            ids.comment(KIND_VIRAL, n),
            comment_request(
                web_port, viral, ids.comment(KIND_VIRAL, n), ids.commenter(KIND_VIRAL, n)
            ),
        )
        for n in range(args.comments)
    ]
    rate = min(MAX_VIRAL_RATE, args.comments / args.seconds)
    wait_others(args, res)
    args.quiet_gate.wait()
    worker_log = procs.log_path("worker")
    log_offset = worker_log.stat().st_size if worker_log.exists() else 0
    speed0 = cpu_speed_check()
    sampler = BacklogSampler(
        f"{args.pg_url.rstrip('/')}/{args.db_name}", args.redis_url, viral_pk, interval=2.0
    )
    total_limit = args.lead_seconds + args.comments / rate + args.drain_timeout + 60
    load = QuietLoad(
        web_port, quiet, ids.tag, KIND_BURST_QUIET, args.quiet_interval, total_limit, seed=22
    )
    burst = ViralBurst(web_port, plan, rate, args.viral_clients)
    meter = meter_for(roots, args.db_name)
    meter.start()
    sampler.start(total_limit)
    load.start()
    meter.groups["quiet client"] = load.pid
    quiet_records: list[QuietRecord] = []
    try:
        time.sleep(args.lead_seconds)
        res.cpu["lead"] = meter.stop()
        meter = meter_for({**roots, "quiet client": load.pid}, args.db_name)
        meter.start()
        res.posts_start = time.time()
        burst.start()
        for j, pid in enumerate(burst.pids):
            meter.groups[f"viral client {j}"] = pid
        res.viral_posts, res.viral_client_cpu = burst.collect()
        res.posts_done = time.time()
        res.cpu["intake"] = meter.stop()
        meter = meter_for({**roots, "quiet client": load.pid}, args.db_name)
        meter.start()
        ok = res.viral_ok
        print(
            f"  burst: {ok}/{len(plan)} viral POSTs answered 200 in "
            f"{res.posts_done - res.posts_start:.1f} s; waiting for the drain "
            f"(at most {args.drain_timeout:.0f} s)"
        )
        # Wait for the drain: both replies of every viral comment at the stand-in, or nothing
        # left to do in the database; bounded by the time limit and a stall detector.
        deadline = time.monotonic() + args.drain_timeout
        last_progress, last_seen = time.monotonic(), None
        next_print = time.monotonic() + 15
        while time.monotonic() < deadline:
            procs.check_alive()
            stats = json_call(standin_port, "GET", "/_standin/stats")
            nodes = stats.get("nodes") or {}
            private = (nodes.get(viral.page_id) or {}).get("private_reply", 0)
            public = (nodes.get(viral.ig_user_id) or {}).get("comment_reply", 0)
            if private >= ok and public >= ok:
                res.drained = True
                break
            s = sampler.last()
            if (
                s is not None
                and s["t"] > res.posts_done + 3
                and s["pending_events"] == 0
                and s["queued"] + s["dispatched"] + s["sending"] == 0
                and s["q_events_bulk"] == 0
            ):
                res.drained = True  # nothing left to send; missing replies count as lost
                break
            seen = (private, public)
            if seen != last_seen:
                last_seen, last_progress = seen, time.monotonic()
            elif time.monotonic() - last_progress > args.stall_seconds:
                print(f"  no progress for {args.stall_seconds:.0f} s; giving up the wait")
                res.stop_reason = f"no reply for {args.stall_seconds:.0f} s"
                break
            if time.monotonic() >= next_print:
                next_print += 15
                res.others_seen += other_benchmarks()
                extra = ""
                if s is not None:
                    extra = (
                        f"; db: {s['queued']} queued, {s['pending_events']} events pending, "
                        f"broker events/bulk/sends {s['q_events']}/{s['q_events_bulk']}/"
                        f"{s['q_sends']}"
                    )
                print(f"    {private}/{ok} private, {public}/{ok} public replies{extra}")
            time.sleep(0.5)
        res.drain_end = time.time()
        res.cpu["drain"] = meter.stop()
        quiet_records, _ = load.finish()
    finally:
        burst.stop()
        load.kill()
        sampler.stop()
    res.speed_ms = (speed0, cpu_speed_check())
    res.samples, res.sampler_error = sampler.samples, sampler.error
    wait_quiet_replies(standin_port, quiet_records, 30, procs)
    time.sleep(2 * args.sweep_interval + 1)  # a last sweep, then settle
    others = other_benchmarks()
    if others:
        res.others_seen += others

    # 4. what reached the stand-in, and what the database says.
    res.stats_burst = json_call(standin_port, "GET", "/_standin/stats")
    arr = standin_arrivals(standin_port)
    res.errors = arr.errors
    res.burst_quiet_posts = len(quiet_records)
    res.quiet_bad_posts += sum(1 for r in quiet_records if r[3] != 200)
    during = [r for r in quiet_records if res.posts_start <= r[2] <= res.drain_end]
    res.burst_quiet = quiet_latency("during the burst", during, arr)
    res.burst_quiet_all = quiet_latency("whole burst phase", quiet_records, arr)
    viral_ids = {r[0] for r in res.viral_posts if r[2] == 200}
    res.drain_private = drain_figures(
        "private replies",
        [min(arr.ok_times("private", c)) for c in viral_ids if arr.ok_times("private", c)],
        float(args.viral_send_limit),
        res.drained,
        res.drain_end,
        res.posts_done,
    )
    res.drain_public = drain_figures(
        "public replies",
        [min(arr.ok_times("public", c)) for c in viral_ids if arr.ok_times("public", c)],
        float(args.comment_reply_limit),
        res.drained,
        res.drain_end,
        res.posts_done,
    )
    quiet_ids = {r[0] for r in quiet_records + idle_records if r[3] == 200}
    for which in ("private", "public"):
        for comment_id in viral_ids | quiet_ids:
            if (
                len(arr.ok_times(which, comment_id))
                + len(arrivals_idle.ok_times(which, comment_id))
                > 1
            ):
                setattr(res, f"dup_{which}", getattr(res, f"dup_{which}") + 1)
    for comment_id in viral_ids | quiet_ids:
        attempts = len(arr.private.get(comment_id, [])) + len(arr.public.get(comment_id, []))
        attempts += len(arrivals_idle.private.get(comment_id, []))
        attempts += len(arrivals_idle.public.get(comment_id, []))
        res.repeat_attempts += max(0, attempts - 2)
    res.db = db_state(args, viral_pk, viral_ids | quiet_ids)
    # The pacer takes budget when it dispatches a send; Meta counts the call when it arrives.
    for comment_id, dispatched in res.db.dispatched.items():
        times = arr.private.get(comment_id)
        if times and comment_id in viral_ids:
            res.dispatch_delay.append(max(t for t, _ in times) - dispatched)
    res.dispatch_delay.sort()
    admitted = sorted(t for c in viral_ids for t, status in arr.private.get(c, []) if status == 200)
    for comment_id in viral_ids:
        for t, status in arr.private.get(comment_id, []):
            if status != 200:
                window = sum(1 for x in admitted if t - 1.0 < x <= t)
                res.refusals.append(
                    f"{status} at +{t - res.posts_start:.1f} s ({window} admitted in the 1 s "
                    "before)"
                )

    def lost(comment_id: str) -> bool:
        got = all(
            arr.ok_times(w, comment_id) or arrivals_idle.ok_times(w, comment_id)
            for w in ("private", "public")
        )
        return not got or comment_id in res.db.missing or comment_id in res.db.not_sent

    if not res.drained:
        res.unfinished = {c for c in viral_ids if c in res.db.non_final_ids}
    res.lost_viral = {c for c in viral_ids if lost(c)} - res.unfinished
    res.lost_quiet = {c for c in quiet_ids if lost(c)}
    res.lost_quiet |= {r[0] for r in quiet_records + idle_records if r[3] != 200}
    res.lost_viral |= {r[0] for r in res.viral_posts if r[2] != 200}
    res.tasks, res.requeued_events, res.sweeps = worker_tasks(worker_log, log_offset)
    res.stages = stage_rows(
        stage_values(args, idle_records, arrivals_idle), stage_values(args, during, arr)
    )
    res.buckets = bucket_rows(res, quiet_records, arr)
    res.windows, res.window_line = window_rows(res, quiet_records, arr)
    return res


# --- report --------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "-"
    return "none" if seconds == float("inf") else f"{seconds * 1000:.1f}"


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def cpu_of(res: Result, phase: str, group: str) -> float:
    cpu = res.cpu.get(phase, {})
    if group == "viral client":
        return sum(v for k, v in cpu.items() if k.startswith("viral client"))
    return cpu.get(group, 0.0)


CPU_GROUPS = (
    "web",
    "worker",
    "beat",
    "standin",
    "postgres",
    "redis",
    "kernel",
    "viral client",
    "quiet client",
    "unattributed",
)


def cpu_rows(res: Result) -> list[list[str]]:
    rows = []
    for phase in ("idle", "lead", "intake", "drain"):
        cpu = res.cpu.get(phase)
        if not cpu:
            continue
        wall = cpu.get("wall", 0.0) or 1e-9
        total = sum(cpu_of(res, phase, g) for g in CPU_GROUPS)
        rows.append(
            [
                phase,
                f"{wall:.1f}",
                *(f"{cpu_of(res, phase, g) / wall:.2f}" for g in CPU_GROUPS),
                f"{total / wall:.2f}",
                f"{cpu.get('machine_busy', 0) * 100:.0f}%",
                f"{cpu.get('other_share', 0) * 100:.0f}%",
            ]
        )
    return rows


CPU_HEADERS = (
    "phase",
    "wall s",
    *(f"{g} cores" for g in CPU_GROUPS),
    "all cores",
    "machine busy",
    "other load",
)


def per_comment_cpu(res: Result) -> tuple[float, dict[str, float]]:
    """CPU ms per viral comment over intake + drain, per group and in all, less what the quiet
    load alone used over the same time (the lead phase's rate)."""
    n = max(res.viral_ok, 1)
    wall = sum(res.cpu.get(p, {}).get("wall", 0.0) for p in ("intake", "drain"))
    lead_wall = res.cpu.get("lead", {}).get("wall", 0.0) or 1e-9
    groups = {}
    for g in CPU_GROUPS:
        used = cpu_of(res, "intake", g) + cpu_of(res, "drain", g)
        baseline = cpu_of(res, "lead", g) / lead_wall * wall if res.cpu.get("lead") else 0.0
        groups[g] = max(0.0, used - baseline) * 1000 / n
    return sum(groups.values()), groups


def drain_cpu_bound(res: Result) -> bool:
    """The machine was (nearly) fully busy while the viral queue drained."""
    return res.cpu.get("drain", {}).get("machine_busy", 0.0) >= 0.9


def summary_rows(res: Result, args: argparse.Namespace) -> list[list[str]]:
    dp, dq = res.drain_private, res.drain_public
    idle, burst = res.idle, res.burst_quiet
    rows = [
        [
            "viral private replies: drain rate / configured budget",
            f"{dp.rate:.1f}/s of {dp.budget:g}/s = {pct(dp.fraction)}",
            ">= 95%",
            met(dp.fraction >= AIM_DRAIN),
        ],
        [
            "viral public replies: drain rate / configured budget",
            f"{dq.rate:.1f}/s of {dq.budget:g}/s = {pct(dq.fraction)}",
            ">= 95%",
            met(dq.fraction >= AIM_DRAIN),
        ],
        [
            "quiet private reply p50: idle -> during burst",
            f"{ms(idle.p('private', 50))} -> {ms(burst.p('private', 50))} ms "
            f"(x{res.ratio_p50:.2f})",
            "-",
            "-",
        ],
        [
            "quiet private reply p99: idle -> during burst",
            f"{ms(idle.p('private', 99))} -> {ms(burst.p('private', 99))} ms "
            f"(x{res.ratio_p99:.2f})",
            "<= 2x",
            met(res.ratio_p99 <= AIM_QUIET_RATIO),
        ],
        ["duplicates", str(res.duplicates), "0", met(res.duplicates == 0)],
        ["lost", str(res.lost), "0", met(res.lost == 0)],
        [
            "rate-limit errors provoked",
            str(res.rate_limit_errors),
            "0",
            met(res.rate_limit_errors == 0),
        ],
    ]
    return rows


def detail_rows(res: Result, args: argparse.Namespace) -> list[list[str]]:
    posts = res.viral_posts
    durations = sorted(r[3] for r in posts if r[2] == 200)
    span = (
        max((r[1] + r[3] for r in posts), default=0) - min((r[1] for r in posts), default=0)
    ) or 1e-9
    statuses: dict[int, int] = {}
    for r in posts:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    dp, dq = res.drain_private, res.drain_public
    db = res.db or DbState()
    total_ms, _ = per_comment_cpu(res)
    ceiling = (os.cpu_count() or 1) * 1000 / total_ms if total_ms else float("nan")
    out = [
        ["viral POSTs answered 200", f"{res.viral_ok}/{len(posts)}"],
        ["viral POST statuses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))],
        [
            "viral POST rate achieved (asked)",
            f"{len(posts) / span:.0f}/s ({min(MAX_VIRAL_RATE, args.comments / args.seconds):.0f}/s)"
            f" over {span:.1f} s",
        ],
        [
            "viral POST p50 / p99 / max",
            f"{ms(percentile(durations, 50))} / {ms(percentile(durations, 99))} / "
            f"{ms(durations[-1] if durations else float('nan'))} ms",
        ],
        [
            "viral queue drained",
            (
                "yes"
                if res.drained
                else f"NO ({res.stop_reason or f'time limit {args.drain_timeout:.0f} s'}; "
                f"{len(res.unfinished)} viral comments unfinished, not counted as lost)"
            )
            + f", {res.drain_end - res.posts_start:.1f} s after the first viral POST",
        ],
    ]
    for d in (dp, dq):
        out += [
            [
                f"{d.which}: window (first reply -> "
                + ("queue empty)" if d.drained else "time limit)"),
                f"{d.seconds:.1f} s, {d.count} replies; starts "
                f"{d.first - res.posts_start:.2f} s after the first viral POST",
            ],
            [
                f"{d.which}: per-second min / median / max",
                f"{timeline_summary(d)} (budget {d.budget:g}/s, pacer ceiling "
                f"{int(d.budget * 0.97)}/s)",
            ],
            [
                f"{d.which}: densest 1 s window at the stand-in",
                f"{d.peak_1s} (limit {d.budget:g})",
            ],
            [
                f"{d.which}: rate after the last viral POST",
                f"{d.after_posts_rate:.1f}/s = {pct(d.after_posts_rate / d.budget)} of budget",
            ],
        ]
    out += [
        [
            "CPU per viral comment (all processes, intake + drain, less the quiet load's)",
            f"{total_ms:.1f} ms -> {os.cpu_count()} cores finish at most ~{ceiling:.0f} comments/s",
        ],
        [
            "quiet comments (idle / burst phase)",
            f"{res.idle_quiet_posts} / {res.burst_quiet_posts} "
            f"({res.burst_quiet.comments} sent during the burst); non-200 POSTs "
            f"{res.quiet_bad_posts}",
        ],
        [
            "quiet public reply p50 / p99: idle -> during burst",
            f"{ms(res.idle.p('public', 50))} / {ms(res.idle.p('public', 99))} -> "
            f"{ms(res.burst_quiet.p('public', 50))} / {ms(res.burst_quiet.p('public', 99))} ms",
        ],
        [
            "quiet private reply max: idle / during burst",
            f"{ms(res.idle.private[-1] if res.idle.private else float('nan'))} / "
            f"{ms(res.burst_quiet.private[-1] if res.burst_quiet.private else float('nan'))} ms",
        ],
        [
            "duplicates: private / public / stand-in stats / repeated attempts",
            f"{res.dup_private} / {res.dup_public} / {res.stats_duplicates} / "
            f"{res.repeat_attempts}",
        ],
        [
            "lost: viral / quiet",
            f"{len(res.lost_viral)} / {len(res.lost_quiet)}; deliveries not final "
            f"{db.non_final}; comments without both deliveries {len(db.missing)}",
        ],
        [
            "rate limits: stand-in violations / deliveries rate_limited / throttled attempts",
            f"{res.violations} / {db.rate_limited} / {db.throttle_attempts}",
        ],
        [
            "viral private replies: dispatch (budget taken) -> at the stand-in p50 / p99 / max",
            f"{ms(percentile(res.dispatch_delay, 50))} / {ms(percentile(res.dispatch_delay, 99))}"
            f" / {ms(res.dispatch_delay[-1] if res.dispatch_delay else float('nan'))} ms",
        ],
        ["viral calls refused by the stand-in", "; ".join(res.refusals[:5]) or "none"],
        [
            "stand-in non-200 answers",
            ", ".join(f"{k}: {v}" for k, v in sorted(res.errors.items())) or "none",
        ],
        [
            "deliveries (account kind status reason)",
            ", ".join(f"{k}: {v}" for k, v in sorted(db.statuses.items())),
        ],
        ["webhook events by state", ", ".join(f"{k}: {v}" for k, v in sorted(db.events.items()))],
        [
            "events re-queued by the outbox sweeper during the burst",
            f"{res.requeued_events} (max processing_attempts {db.event_attempts_max})",
        ],
        ["accounts paused at the end", "; ".join(db.paused) or "none"],
        ["usage headers seen (usage_percent at the end)", "; ".join(db.usage) or "0"],
        [
            "speed check before / after the burst",
            f"{res.speed_ms[0]:.1f} / {res.speed_ms[1]:.1f} ms",
        ],
        [
            "other benchmarks seen during the run",
            "; ".join(sorted(set(res.others_seen)))[:200] or "none",
        ],
    ]
    return out


def task_rows(res: Result) -> list[list[str]]:
    n = max(res.viral_ok, 1)
    rows = []
    for task, values in sorted(res.tasks.items(), key=lambda kv: -sum(kv[1])):
        values.sort()
        rows.append(
            [
                task,
                str(len(values)),
                f"{len(values) / n:.2f}",
                f"{sum(values) / len(values) * 1000:.1f}",
                f"{percentile(values, 99) * 1000:.1f}",
                f"{sum(values) * 1000 / n:.1f}",
            ]
        )
    return rows


TASK_HEADERS = ("task", "runs", "runs/viral comment", "mean ms", "p99 ms", "busy ms/viral comment")


def backlog_rows(res: Result) -> list[list[str]]:
    """The sampler's timeline, thinned to about 15 rows."""
    samples = res.samples
    if not samples:
        return []
    step = max(1, len(samples) // 15)
    picked = samples[::step]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return [
        [
            f"{s['t'] - res.posts_start:.0f}",
            str(s["pending_events"]),
            str(s["queued"]),
            str(s["dispatched"] + s["sending"]),
            str(s["sent"]),
            str(s["other"]),
            f"{s['q_events']}/{s['q_events_bulk']}/{s['q_sends']}",
            str(s["usage_percent"]),
        ]
        for s in picked
    ]


BACKLOG_HEADERS = (
    "s after first viral POST",
    "events pending",
    "viral queued (not dispatched)",
    "viral dispatched/sending",
    "viral sent",
    "viral failed/skipped/unknown",
    "broker events/events_bulk/sends",
    "viral usage_percent",
)


def timeline_rows(res: Result) -> list[list[str]]:
    """Per-second replies, 10 (30 for long drains) seconds per row."""
    rows = []
    for d in (res.drain_private, res.drain_public):
        s = d.per_second
        width = 10 if len(s) <= 100 else 30
        for i in range(0, len(s), width):
            rows.append(
                [
                    d.which,
                    f"{i}-{min(i + width, len(s)) - 1}",
                    " ".join(str(x) for x in s[i : i + width]),
                ]
            )
    return rows


def load_label(args: argparse.Namespace) -> str:
    return (
        f"{args.comments} in {args.seconds:g} s, {args.quiet_accounts} quiet, "
        f"send limit {args.viral_send_limit}/s, comment replies {args.comment_reply_limit}/s, "
        f"web {args.web_name}, "
        f"worker c{args.worker_concurrency}"
    )


RUN_HEADERS = (
    "load",
    "date",
    "code",
    "POST rate",
    "private drain",
    "public drain",
    "quiet p50 idle -> burst ms",
    "quiet p99 idle -> burst ms",
    "dup",
    "lost",
    "rate-limit errors",
    "CPU ms/viral comment",
    "other load",
)


def run_row(res: Result, args: argparse.Namespace) -> list[str]:
    posts = res.viral_posts
    span = (
        max((r[1] + r[3] for r in posts), default=0) - min((r[1] for r in posts), default=0)
    ) or 1e-9
    total_ms, _ = per_comment_cpu(res)
    other = max(res.cpu.get(p, {}).get("other_share", 0.0) for p in ("idle", "intake", "drain"))
    return [
        load_label(args),
        now_stamp(),
        code_version().replace("commit ", ""),
        f"{len(posts) / span:.0f}/s",
        pct(res.drain_private.fraction) + ("" if res.drained else " (not drained)"),
        pct(res.drain_public.fraction),
        f"{ms(res.idle.p('private', 50))} -> {ms(res.burst_quiet.p('private', 50))}",
        f"{ms(res.idle.p('private', 99))} -> {ms(res.burst_quiet.p('private', 99))} "
        f"(x{res.ratio_p99:.2f})",
        str(res.duplicates),
        str(res.lost),
        str(res.rate_limit_errors),
        f"{total_ms:.1f}",
        f"{other * 100:.0f}%",
    ]


def previous_runs(label: str) -> list[list[str]]:
    """Rows of the doc's run table for other load sizes (the newest run of each is kept)."""
    if not DOC.exists():
        return []
    text = DOC.read_text()
    m = re.search(re.escape(RUNS_START) + r"(.*?)" + re.escape(RUNS_END), text, re.DOTALL)
    if not m:
        return []
    rows = []
    for line in m.group(1).splitlines():
        if not line.startswith("| ") or line.startswith("| load "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == len(RUN_HEADERS) and cells[0] != label:
            rows.append(cells)
    return rows[-7:]


def auto_notes(res: Result, args: argparse.Namespace) -> list[str]:
    notes = []
    if res.stages:
        worst = max(res.stages, key=lambda row: _p99_of(row[2]))
        notes.append(
            f'Quiet private replies lost most time during the burst in "{worst[0]}" '
            f"(burst p50 / p99 / max {worst[2]} ms; idle p50 / p99 {worst[1]} ms)."
        )
    if res.requeued_events > 0:
        notes.append(
            f"The outbox sweeper re-queued {res.requeued_events} webhook events during the "
            "burst: viral events still waiting in `events_bulk` after "
            "PENDING_EVENT_GRACE_SECONDS (15 s) count as lost and are queued again on every "
            "sweep, into the main `events` queue (no account ids), in front of the quiet "
            "accounts' events."
        )
    peak_usage = max((x["usage_percent"] for x in res.samples), default=0)
    if peak_usage >= 75:
        notes.append(
            f"The viral account's `usage_percent` (from the usage headers of the stand-in's "
            f"answers, whose X-App-Usage includes the share of the per-second limit used) "
            f"reached {peak_usage}%: from 75% on the pacer shrinks the account's budgets (to "
            "10% at 95%), so sending near its own 97% target makes it slow itself down."
        )
    if res.refusals:
        notes.append(
            f"{len(res.refusals)} viral call(s) were refused as over the limit ("
            + "; ".join(res.refusals[:3])
            + "): the pacer takes budget when it dispatches a send, the stand-in counts it "
            "when it arrives, and dispatch -> arrival varied by "
            f"{ms(percentile(res.dispatch_delay, 50))} ms (p50) to "
            f"{ms(res.dispatch_delay[-1] if res.dispatch_delay else float('nan'))} ms (max); "
            "each refusal pauses the account (RATE_LIMIT_PAUSE_SECONDS, 60 s, when Meta states "
            "no time)."
        )
    pending = (res.db.events if res.db else {}).get("pending", 0)
    if res.lost and pending:
        notes.append(
            f"Of the {res.lost} lost comments, {pending} have their webhook event still "
            "`pending` in the database at the end: stored, so they would be answered "
            "eventually, but not by the time the viral queue had drained (+30 s)."
        )
    if args.comments != 10_000 or args.seconds != 10:
        notes.append(
            f"This run's burst is {args.comments} comments in {args.seconds:g} s, not the "
            "issue's 10,000 in 10 s: on this machine the drain is bounded by CPU (see above), "
            "so 10,000 comments take several minutes to drain and the default run would not "
            "finish within about 5 minutes; the runs table below has a run at the issue's full "
            "size (`--comments 10000 --seconds 10 --drain-timeout 900`)."
        )
    return notes


def _p99_of(cell: str) -> float:
    try:
        return float(cell.split(" / ")[1])
    except (IndexError, ValueError):
        return float("inf")


def write_doc(args: argparse.Namespace, env: dict, res: Result, pg: str) -> None:
    dp, dq = res.drain_private, res.drain_public
    total_ms, groups = per_comment_cpu(res)
    ceiling = (os.cpu_count() or 1) * 1000 / total_ms if total_ms else float("nan")
    top = sorted(groups.items(), key=lambda kv: -kv[1])[:5]
    runs = [*previous_runs(load_label(args)), run_row(res, args)]
    extra_settings = "; ".join(
        f"{k}={env[k]}"
        for k in (
            "SWEEP_INTERVAL_SECONDS",
            "PACER_MAX_IN_FLIGHT",
            "HOT_ACCOUNT_EVENTS_PER_WINDOW",
            "COMMENT_REPLY_LIMIT_PER_SECOND",
        )
        if k in env
    )
    lines = [
        "## Viral burst beside quiet accounts (`bench/burst.py`)",
        "",
        "The issue's scenario: one account's post goes viral (thousands of comments within "
        "seconds) while quiet accounts keep receiving a comment every few seconds; the stand-in "
        "enforces Meta-like per-account limits and counts violations.",
        "",
        f"- Date: {now_stamp()}",
        f"- Machine: {machine_info()}; PostgreSQL {pg}; Redis on 127.0.0.1:6379",
        f"- Code: {code_version()}",
        f"- Command: `{command_line()}`",
        f"- Settings: {settings_summary(env)}; {extra_settings} (others: the product's defaults, "
        "incl. PACER_MAX_IN_FLIGHT=8 and HOT_ACCOUNT_EVENTS_PER_WINDOW=20 unless shown)",
        f"- Priority: {args.priority}",
        f"- Processes: gunicorn `{args.web_name}` (Procfile `web`, access log on), `celery -A "
        f"config worker --loglevel=info --concurrency={args.worker_concurrency}` (Procfile "
        "`worker`), `celery -A config beat --loglevel=info` (Procfile `beat`), the Graph API "
        f"stand-in with limits on: {args.viral_send_limit} Send API calls per second and "
        f"{args.viral_private_reply_limit} private replies per hour per sending node.",
        f"- Accounts: 1 viral + {args.quiet_accounts} quiet, each with its own workspace and "
        'page id (`manage.py connect_account`) and a "guide" comment trigger (public reply + '
        "private reply; `manage.py import_triggers -`). The viral account's row has "
        f"`send_limit_per_second={args.viral_send_limit}` and "
        f"`private_reply_limit_per_hour={args.viral_private_reply_limit}` (Meta's 750/hour would "
        "make a 10,000-comment backlog take 13 hours); the quiet accounts keep the defaults.",
        f"- Load: {args.warmup} warm-up comment(s) per account; idle baseline: each quiet account "
        f"gets a comment every ~{args.quiet_interval:g} s (uniformly jittered 0.5x-1.5x) for "
        f"{args.idle_seconds:g} s; burst: the same quiet load, and {args.lead_seconds:g} s later "
        f'{args.comments} distinct "guide please" comment webhooks for the viral account asked '
        f"at {min(MAX_VIRAL_RATE, args.comments / args.seconds):.0f}/s (all within "
        f"{args.seconds:g} s; as fast as intake answers, from {args.viral_clients} client "
        "processes with one socket each); the quiet load goes on until the viral queue is "
        f"drained (at most {args.drain_timeout:g} s after the last viral POST). Latency = "
        "stand-in arrival of the reply minus time.time() just before the webhook POST.",
        "",
        "Aims (from the issue): the viral account drains at 95% or more of its configured "
        "budget; the quiet accounts' p99 stays within 2x of an idle system; duplicates, lost "
        "comments and rate-limit errors provoked are 0.",
        "",
        md_table(("figure", "measured", "aim", ""), summary_rows(res, args)),
        "",
        md_table(("detail", "value"), detail_rows(res, args)),
        "",
        "Definitions. Drain rate: the viral account's replies that reached the stand-in (HTTP "
        "200), per second, from its first reply until its queue was empty (its last reply), or "
        "until the time limit when it did not empty. The configured budget is the account's "
        "`send_limit_per_second` for private replies and COMMENT_REPLY_LIMIT_PER_SECOND for "
        "public replies; the pacer itself aims at 97% of each. Quiet latency 'during the burst' "
        "covers the quiet comments POSTed from the first viral POST until the viral queue was "
        "empty. Duplicates: a comment id with more than one accepted private or public reply at "
        "the stand-in, plus the stand-in's own duplicate counters. Lost: a comment whose POST "
        "was not answered 200, or without an accepted private and public reply at the stand-in "
        "after the drain, or whose deliveries are missing or did not end `sent`. Rate-limit "
        "errors: calls over the stand-in's limits (its violation counter, or attempts the "
        "database recorded with a throttling code, whichever is higher) + deliveries that "
        "failed `rate_limited`. 'none' in a percentile: that share of comments got no reply "
        "at all (counted as infinitely late).",
        "",
        "Where a quiet account's private reply waits (its product timestamps: "
        "WebhookEvent.received_at, Delivery.created_at, Delivery.sending_started_at, and the "
        "stand-in's arrival time), idle baseline vs quiet comments sent during the burst:",
        "",
        md_table(STAGE_HEADERS, res.stages),
        "",
        "Quiet private reply latency by when the comment was sent (burst phase; negative = "
        "before the first viral POST):",
        "",
        md_table(BUCKET_HEADERS, res.buckets),
        "",
        "Quiet private reply p99 (ms) in each 5-second window, twelve to a row; "
        f"{res.window_line}:",
        "",
        md_table(WINDOW_HEADERS, res.windows),
        "",
        "Replies reaching the stand-in per second (viral account, from its first reply):",
        "",
        md_table(("replies", "seconds", "per second"), timeline_rows(res)),
        "",
        "The viral backlog over time (sampled every 2 s from the database and the broker):",
        "",
        md_table(BACKLOG_HEADERS, backlog_rows(res)),
        "",
        "CPU by process tree, in cores (CPU seconds / wall seconds) per phase: idle baseline, "
        "lead (quiet load only, just before the burst), intake (while the viral POSTs were "
        "sent), drain (after them, until the queue was empty). Other load = share of the "
        "machine used by processes outside the benchmark.",
        "",
        md_table(CPU_HEADERS, cpu_rows(res)),
        "",
        "Celery tasks during the burst phase (worker INFO log; time inside the pool process):",
        "",
        md_table(TASK_HEADERS, task_rows(res)),
        "",
        "**What limits the figures.** "
        + (
            f"All of the benchmark's processes together used {total_ms:.1f} ms of CPU per viral "
            f"comment (largest: "
            + ", ".join(f"{g} {v:.1f}" for g, v in top)
            + f" ms), so {os.cpu_count()} cores can finish at most ~{ceiling:.0f} comments/s "
            f"(two replies each) while the budgets allow {int(dp.budget * 0.97)} private and "
            f"{int(dq.budget * 0.97)} public replies/s. "
            + (
                "The drain rate is therefore bounded by this machine's CPU, not by the "
                "pacing: it measures how fast 2 cores process comments. "
                if drain_cpu_bound(res)
                else f"The machine was only {res.cpu.get('drain', {}).get('machine_busy', 0):.0%} "
                "busy while the queue drained, so the drain rate measures the pacing, not the "
                "CPU. "
            )
        )
        + " ".join(auto_notes(res, args))
        + (" " + args.notes if args.notes else ""),
        "",
        "Runs of this benchmark (the newest of each load size; the tables above are the last "
        "run's):",
        "",
        RUNS_START,
        md_table(RUN_HEADERS, runs),
        RUNS_END,
    ]
    update_doc_section(DOC_KEY, "\n".join(lines))


# --- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--comments",
        type=int,
        default=3_000,
        help="viral comments in the burst (the issue: 10000; see the doc for why 3000)",
    )
    p.add_argument(
        "--seconds", type=float, default=3.0, help="the burst's length (asked; the issue: 10)"
    )
    p.add_argument("--quiet-accounts", type=int, default=20)
    p.add_argument(
        "--quiet-interval",
        type=float,
        default=3.0,
        help="s between a quiet account's comments (mean)",
    )
    p.add_argument(
        "--viral-send-limit",
        type=int,
        default=100,
        help="the viral account's send_limit_per_second (and the stand-in's)",
    )
    p.add_argument(
        "--viral-private-reply-limit",
        type=int,
        default=360_000,
        help="the viral account's private_reply_limit_per_hour (and the stand-in's)",
    )
    p.add_argument(
        "--comment-reply-limit", type=int, default=100, help="COMMENT_REPLY_LIMIT_PER_SECOND"
    )
    p.add_argument("--idle-seconds", type=float, default=30.0, help="idle baseline length")
    p.add_argument("--lead-seconds", type=float, default=5.0, help="quiet load before the burst")
    p.add_argument(
        "--drain-timeout", type=float, default=240.0, help="max s after the last viral POST"
    )
    p.add_argument(
        "--stall-seconds",
        type=float,
        default=150.0,
        help="give up when nothing reaches the stand-in this long",
    )
    p.add_argument("--worker-concurrency", type=int, default=4)
    p.add_argument("--web-config", default="sync:3", help="sync:N or gthread:NxT")
    p.add_argument(
        "--viral-clients", type=int, default=8, help="client processes sending the burst"
    )
    p.add_argument("--warmup", type=int, default=2, help="warm-up comments per account")
    p.add_argument("--sweep-interval", type=float, default=2.0, help="SWEEP_INTERVAL_SECONDS")
    p.add_argument(
        "--wait-other",
        type=float,
        default=900.0,
        help="max s to wait for another benchmark to finish",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="s, over the run, to wait for an idle machine",
    )
    p.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0)
    p.add_argument("--db-name", default="instadm_bench_burst")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    p.add_argument("--notes", default="", help="a sentence for the doc's notes")
    p.add_argument(
        "--no-doc", dest="doc", action="store_false", help="leave docs/performance.md alone"
    )
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = p.parse_args(argv)
    if not 1 <= args.comments <= 50_000:
        p.error("--comments must be 1..50000")
    if not 0.5 <= args.seconds <= 300:
        p.error("--seconds must be 0.5..300")
    if not 1 <= args.quiet_accounts <= 99:
        p.error("--quiet-accounts must be 1..99")
    if not 0.2 <= args.quiet_interval <= 60 or not 5 <= args.idle_seconds <= 600:
        p.error("--quiet-interval must be 0.2..60 and --idle-seconds 5..600")
    if not 0 <= args.lead_seconds <= 60 or not 10 <= args.drain_timeout <= 1800:
        p.error("--lead-seconds must be 0..60 and --drain-timeout 10..1800")
    if not 1 <= args.viral_send_limit <= 10_000 or not 1 <= args.comment_reply_limit <= 10_000:
        p.error("limits must be 1..10000 per second")
    if not 1 <= args.worker_concurrency <= 32 or not 1 <= args.viral_clients <= 64:
        p.error("--worker-concurrency must be 1..32 and --viral-clients 1..64")
    if not 0 <= args.warmup <= 20 or not 0.5 <= args.sweep_interval <= 60:
        p.error("--warmup must be 0..20 and --sweep-interval 0.5..60")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db_name):
        p.error("--db-name must be a plain identifier")
    if not 0 <= args.wait_other <= 3600:
        p.error("--wait-other must be 0..3600")
    args.quiet_gate = QuietGate(args.quiet_wait)
    workers, threads = parse_web_config(args.web_config)
    args.web_workers, args.web_threads = workers, threads
    args.web_name = web_config_name(workers, threads)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    waited, running = wait_for_other_benchmarks(args.wait_other)
    args.wait_other_left = args.wait_other - waited
    if running:
        print(f"another benchmark still runs after {waited:.0f} s; not measuring: {running}")
        return 2
    args.priority = raise_priority(args.nice)
    # Not make_work_dir(): its /tmp/instadm-bench-* folders get swept by other runs' cleanups.
    work = Path(tempfile.mkdtemp(prefix="burst-bench-"))
    (work / "var").mkdir(exist_ok=True)
    ports = {"standin": free_port(), "web": free_port()}
    env = standin_env(
        args,
        work / "var",
        ports["standin"],
        {
            "SWEEP_INTERVAL_SECONDS": f"{args.sweep_interval:g}",
            "COMMENT_REPLY_LIMIT_PER_SECOND": str(args.comment_reply_limit),
        },
    )
    accounts = make_accounts(args.quiet_accounts)
    print(f"machine: {machine_info()}")
    print(f"logs: {work}")
    ok = False
    db_created = False
    res: Result | None = None
    try:
        redis_cli(args.redis_url, "FLUSHDB")
        t0 = time.monotonic()
        db_created = True
        viral_pk = prepare(env, args, accounts)
        print(
            f"database {args.db_name}: {len(accounts)} accounts and triggers "
            f"({time.monotonic() - t0:.1f} s)"
        )
        with Processes(work) as procs:
            standin = procs.start(
                "standin", [PYTHON, "-m", "meta.standin", "--port", str(ports["standin"])], env
            )
            wait_http(ports["standin"], "/_standin/health", procs, ["standin"])
            standin_setup(ports["standin"], args, accounts)
            web = procs.start(
                "web", gunicorn_argv(ports["web"], args.web_workers, args.web_threads, True), env
            )
            worker = procs.start(
                "worker",
                [
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--loglevel=info",
                    f"--concurrency={args.worker_concurrency}",
                ],
                env,
            )
            beat = procs.start("beat", ["celery", "-A", "config", "beat", "--loglevel=info"], env)
            wait_http(ports["web"], "/livez/", procs, ["web"])
            wait_log(procs, "worker", r"ready\.", timeout=60)
            wait_log(procs, "beat", r"beat: Starting", timeout=60)
            roots = {
                "web": web.pid,
                "worker": worker.pid,
                "beat": beat.pid,
                "standin": standin.pid,
            }
            res = run_benchmark(args, env, procs, accounts, viral_pk, ports, roots)
            procs.check_alive()
        print()
        print(table(("figure", "measured", "aim", ""), summary_rows(res, args)))
        print()
        for label, value in detail_rows(res, args):
            print(f"  {label}: {value}")
        print()
        print(table(STAGE_HEADERS, res.stages))
        print()
        print(table(BUCKET_HEADERS, res.buckets))
        print(res.window_line)
        print(table(WINDOW_HEADERS, res.windows))
        print()
        print(table(("replies", "seconds", "per second"), timeline_rows(res)))
        print()
        print(table(BACKLOG_HEADERS, backlog_rows(res)))
        if res.sampler_error:
            print(f"backlog sampler: {res.sampler_error}")
        print()
        print(table(CPU_HEADERS, cpu_rows(res)))
        print()
        print(table(TASK_HEADERS, task_rows(res)))
        if args.doc:
            write_doc(args, env, res, postgres_settings(args.pg_url))
            print("\ndocs/performance.md updated (section bench:burst)")
        ok = res.checks_ok
        if not ok:
            print("CHECKS FAILED: duplicates, lost comments, rate-limit errors or non-200 POSTs")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("interrupted; processes stopped")
        return 130
    finally:
        with contextlib.suppress(Exception):
            redis_cli(args.redis_url, "FLUSHDB")
        if db_created and not args.keep_db:
            try:
                drop_database(args)
            except Exception as exc:  # report; the next run recreates it anyway
                print(f"could not drop database {args.db_name}: {exc}")
        remove_work_dir(work, keep=not ok or args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())

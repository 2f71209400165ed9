"""Soak: the demo as a newcomer runs it, under steady traffic, for an hour (docs/performance.md).

    nice -n 10 .venv/bin/python bench/soak.py --minutes 60 [--stack embedded|postgres-redis]

Runs the real `bin/demo` (setup, migrate, demo data, bin/supervise with web, worker, beat and
the stand-in) from a copy of the code, with no configuration (`embedded`: SQLite and the
embedded broker) or on a fresh PostgreSQL database and a private redis-server
(`postgres-redis`). Traffic: a signed comment webhook every few seconds (texts that the demo's
triggers answer and some they do not, a DM now and then) and a burst every ten minutes. The
worker is SIGKILLed at the half-way mark (`--kill-worker-at`) to show it is restarted while
the others go on. Every `--sample-every` seconds it records each process tree's memory, the
broker's queue depth and the database backlog. At the end: crashes (exits nobody asked for),
restarts, memory over time, queue depth, webhooks not answered 200, what the deliveries
became, comments left without a private reply and duplicates at the stand-in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import _harness as h

from meta.samples import comment_body, message_body, signed

DEMO_SECRET = "demo-app-secret"  # META_APP_SECRET's development default (DEBUG on)
ANSWERED = ("guide please", "send the guide!", "link please", "GUIDE")
UNANSWERED = ("love this post", "nice colours")
QUEUES = ("sends", "events", "maintenance", "sends_bulk", "events_bulk")
CONFIG_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "VAR_DIR",
    "DJANGO_SETTINGS_MODULE",
    "PYTHONPATH",
)


# --- reading the running demo ------------------------------------------------------------------
def rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    parents = {}
    for pid in h._all_pids():
        stat = h._proc_stat(pid)
        if stat is not None:
            parents[pid] = stat[1]
    total = 0
    for pid in h._descendants(root, parents):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


class Demo:
    def __init__(self, args, work: Path, code: Path) -> None:
        self.args = args
        self.var = work / "var"
        self.var.mkdir()
        self.status_file = self.var / "supervisor.json"
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
        env = {k: v for k, v in env.items() if not k.startswith(("META_", "CELERY_"))}
        env.update(
            DEMO_PORT=str(args.demo_port),
            STANDIN_PORT=str(args.standin_port),
            VAR_DIR=str(self.var),
            PYTHONPATH=str(code),
            SKIP_CHROMIUM="1",
            PYTHONUNBUFFERED="1",
        )
        self.redis_url = ""
        if args.stack == "postgres-redis":
            h.recreate_database(args.pg_url, args.db_name)
            env["DATABASE_URL"] = f"{args.pg_url.rstrip('/')}/{args.db_name}"
            self.redis_port = h.free_port()
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}"
            env["CELERY_BROKER_URL"] = f"{self.redis_url}/0"
            env["REDIS_URL"] = f"{self.redis_url}/1"
        self.env = env

    def database_counts(self, sql: str) -> list[tuple]:
        if self.args.stack == "postgres-redis":
            rows = h.sql_rows(self.args.pg_url, self.args.db_name, sql)
            return [tuple(int(v) if v.isdigit() else v for v in row) for row in rows]
        with contextlib.closing(sqlite3.connect(self.var / "db.sqlite3", timeout=20)) as db:
            return db.execute(sql).fetchall()

    def queue_depth(self) -> int:
        if self.redis_url:
            return sum(int(h.redis_cli(f"{self.redis_url}/0", "LLEN", q) or 0) for q in QUEUES)
        folder = self.var / "broker" / "queues"
        return sum(1 for name in os.listdir(folder) if name.endswith(".msg"))

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}


# --- traffic -----------------------------------------------------------------------------------
class Traffic(threading.Thread):
    def __init__(self, args, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.args, self.stop = args, stop
        self.url = f"http://127.0.0.1:{args.demo_port}/webhooks/instagram/"
        self.posts: Counter = Counter()
        self.answered_comments: list[str] = []
        self.slowest = 0.0

    def post(self, body: dict) -> None:
        raw, headers = signed(body, DEMO_SECRET)
        request = urllib.request.Request(  # noqa: S310 - our own http URL
            self.url, data=raw, headers=headers, method="POST"
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                self.posts[response.status] += 1
        except urllib.error.HTTPError as exc:
            self.posts[exc.code] += 1
        except OSError as exc:
            self.posts[f"no answer ({type(exc).__name__})"] += 1
        self.slowest = max(self.slowest, time.monotonic() - started)

    def comment(self) -> None:
        answered = random.random() < 0.8
        text = random.choice(ANSWERED if answered else UNANSWERED)
        body = comment_body(account_id=h.DEMO_ACCOUNT_ID, text=text)
        self.post(body)
        if answered:
            self.answered_comments.append(body["entry"][0]["changes"][0]["value"]["id"])

    def run(self) -> None:
        started = time.monotonic()
        next_burst = self.args.burst_every * 60
        while not self.stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= next_burst:
                for _ in range(self.args.burst_size):
                    self.comment()
                next_burst += self.args.burst_every * 60
            elif random.random() < 0.15:
                sender = str(random.randrange(10**15, 10**16))
                self.post(
                    message_body(account_id=h.DEMO_ACCOUNT_ID, sender_id=sender, text="price?")
                )
            else:
                self.comment()
            self.stop.wait(random.uniform(0.5, 1.5) * self.args.comment_every)


# --- the run ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--stack", choices=["embedded", "postgres-redis"], default="embedded")
    parser.add_argument("--demo-port", type=int, default=8100)
    parser.add_argument("--standin-port", type=int, default=8101)
    # Every 5 s (with the bursts) stays under Meta's 750 private replies per rolling hour
    # (PRIVATE_REPLY_LIMIT_PER_HOUR): at every 4 s, the last minutes' private replies wait for
    # the hourly budget at the end of the hour, as they should.
    parser.add_argument("--comment-every", type=float, default=5.0, help="seconds, on average")
    parser.add_argument("--burst-every", type=float, default=10.0, help="minutes")
    parser.add_argument("--burst-size", type=int, default=40)
    parser.add_argument(
        "--kill-worker-at", type=float, action="append", help="minutes; default: half-way"
    )
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="instadm_soak")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep logs and the code copy")
    args = parser.parse_args()
    kills = sorted(args.kill_worker_at or [args.minutes / 2])

    h.install_signal_handlers()
    work = h.make_work_dir(keep=True)
    code = h.snapshot_project(work)
    (code / ".venv").symlink_to(h.BENCH_HOME / ".venv")
    demo = Demo(args, work, code)
    print(f"soak {args.stack} for {args.minutes:g} min; logs in {work}", flush=True)
    samples: list[dict] = []
    our_kills: list[dict] = []
    with h.Processes(work) as procs:
        if demo.redis_url:
            procs.start(
                "redis",
                ["redis-server", "--port", str(demo.redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"],
                demo.env,
            )  # fmt: skip
            h.wait_log(procs, "redis", "Ready to accept connections", 30)
        procs.start("demo", [str(code / "bin" / "demo")], demo.env)
        h.wait_http(args.demo_port, "/livez/", procs, ["demo"], timeout=600)
        h.wait_http(args.standin_port, "/_standin/health", procs, ["demo"], timeout=60)
        while "worker" not in demo.status():
            time.sleep(0.5)
        time.sleep(10)  # the worker's pool
        stop = threading.Event()
        traffic = Traffic(args, stop)
        started = time.monotonic()
        traffic.start()
        next_sample = 0.0
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                procs.check_alive("demo")
                if kills and elapsed >= kills[0] * 60:
                    kills.pop(0)
                    our_kills.append(kill_worker(demo, elapsed))
                if elapsed >= next_sample:
                    samples.append(sample(demo, elapsed))
                    next_sample += args.sample_every
                time.sleep(0.5)
        finally:
            stop.set()
            traffic.join(60)
        drained = wait_drained(demo, 180)
        samples.append(sample(demo, time.monotonic() - started))
        final = final_figures(demo, traffic)
        final["drained"] = drained
        final["errors"] = logged_errors(work / "demo.log")
        status = demo.status()
        procs.stop("demo", grace=20)
    report = render(args, samples, status, our_kills, final, traffic)
    print(report)
    if args.write_doc:
        h.update_doc_section(f"soak-{args.stack}", report)
    h.remove_work_dir(work, keep=args.keep)


def kill_worker(demo: Demo, elapsed: float) -> dict:
    before = demo.status()["worker"]
    os.killpg(before["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while demo.status()["worker"]["starts"] == before["starts"]:
        time.sleep(0.1)
    print(f"worker SIGKILLed at {elapsed / 60:.1f} min; restarted", flush=True)
    return {"at_min": elapsed / 60, "restarted_after_s": time.monotonic() - killed}


def sample(demo: Demo, elapsed: float) -> dict:
    status = demo.status()
    memory = {
        name: round(rss_mb(info["pid"]), 1) if info.get("pid") else None
        for name, info in status.items()
    }
    backlog = demo.database_counts(
        "SELECT (SELECT count(*) FROM webhooks_webhookevent WHERE state = 'pending'), "
        "(SELECT count(*) FROM messaging_delivery WHERE status IN ('queued', 'sending'))"
    )[0]
    return {
        "minute": round(elapsed / 60, 1),
        "memory": memory,
        "queue": demo.queue_depth(),
        "pending_events": int(backlog[0]),
        "open_deliveries": int(backlog[1]),
    }


def wait_drained(demo: Demo, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = sample(demo, 0)
        if last["queue"] == 0 and last["pending_events"] == 0 and last["open_deliveries"] == 0:
            return True
        time.sleep(2)
    return False


def final_figures(demo: Demo, traffic: Traffic) -> dict:
    events = dict(
        demo.database_counts("SELECT state, count(*) FROM webhooks_webhookevent GROUP BY 1")
    )
    deliveries = dict(
        demo.database_counts("SELECT status, count(*) FROM messaging_delivery GROUP BY 1")
    )
    waiting = dict(
        demo.database_counts(
            "SELECT kind, count(*) FROM messaging_delivery WHERE status = 'queued' GROUP BY 1"
        )
    )
    port = demo.args.standin_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_standin/stats", timeout=30) as r:
        stats = json.load(r)
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/_standin/requests?endpoint=private_reply", timeout=60
    ) as r:
        private = json.load(r)["requests"]
    replied = {
        ((e.get("body") or {}).get("recipient") or {}).get("comment_id")
        for e in private
        if e["status"] == 200
    }
    return {
        "events": events,
        "deliveries": deliveries,
        "duplicates": stats["duplicates"],
        "without_private_reply": sum(1 for c in traffic.answered_comments if c not in replied),
        "answered_comments": len(traffic.answered_comments),
        "waiting": waiting,
    }


def logged_errors(log: Path) -> Counter:
    """ERROR and CRITICAL lines the processes logged, by what they say (our kills' excepted)."""
    errors: Counter = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if ("ERROR" not in line and "CRITICAL" not in line) or "exited with 'signal" in line:
            continue
        errors[line.split("] ", 1)[-1][:100]] += 1
    return errors


def render(args, samples, status, kills, final, traffic) -> str:
    names = list(status)
    killed = len(kills)
    rows = []
    for name in names:
        info = status[name]
        ours = killed if name == "worker" else 0
        crashes = len(info["exits"]) - ours
        series = [s["memory"].get(name) for s in samples if s["memory"].get(name)]
        warm = [
            s["memory"].get(name) for s in samples if s["minute"] >= 2 and s["memory"].get(name)
        ]
        rows.append(
            [
                name,
                crashes,
                info["starts"] - 1,
                f"{warm[0] if warm else series[0]:.0f}",
                f"{max(series):.0f}",
                f"{series[-1]:.0f}",
            ]
        )
    every = max(1, len(samples) // 7)
    over_time = [
        [f"{s['minute']:g}", *(f"{s['memory'].get(n) or 0:.0f}" for n in names), s["queue"],
         s["pending_events"], s["open_deliveries"]]
        for s in samples[::every] + ([samples[-1]] if (len(samples) - 1) % every else [])
    ]  # fmt: skip
    stack = (
        "no configuration: SQLite and the embedded broker (config/broker.py)"
        if args.stack == "embedded"
        else "PostgreSQL (fresh database) and a private redis-server (broker and shared state)"
    )
    posts = dict(traffic.posts)
    kill_text = "; ".join(
        f"SIGKILL at {k['at_min']:.0f} min, running again after {k['restarted_after_s']:.1f} s"
        for k in kills
    )
    lines = [
        f"### Soak: {args.minutes:g} minutes, {args.stack} (`bench/soak.py --stack {args.stack}`)",
        "",
        f"{h.now_stamp()}; code {h.code_version()}. `bin/demo` on {stack}; a webhook every "
        f"~{args.comment_every:g} s (80% comments a trigger answers, 15% DMs), a burst of "
        f"{args.burst_size} comments every {args.burst_every:g} min. "
        f"Worker: {kill_text or 'not killed'}.",
        "",
        h.md_table(["process", "crashes", "restarts", "memory MB (2 min)", "max", "end"], rows),
        "",
        "Memory (MB, whole process tree) and backlog over time:",
        "",
        h.md_table(
            ["minute", *names, "broker queue", "pending events", "open deliveries"], over_time
        ),
        "",
        f"- Webhooks posted: {sum(posts.values())}, answers: {posts}; slowest "
        f"{traffic.slowest * 1000:.0f} ms.",
        f"- Events: {final['events']}; deliveries: {final['deliveries']}; drained at the end: "
        f"{'yes' if final['drained'] else 'no, still queued: ' + str(final['waiting'])}.",
        f"- Comments a trigger answers: {final['answered_comments']}, without a private reply "
        f"at the stand-in: {final['without_private_reply']}; duplicates at the stand-in: "
        f"{final['duplicates']}.",
        f"- Max broker queue depth: {max(s['queue'] for s in samples)}; crashes (exits nobody "
        f"asked for): {sum(r[1] for r in rows)}.",
        f"- Errors logged: {sum(final['errors'].values())}"
        + "".join(f"; {n} x {what}" for what, n in final["errors"].most_common(3)),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Scale-out benchmark: 1, 2 and 4 Celery nodes share budgets, fairness and dedupe.

    .venv/bin/python bench/scale.py [--nodes 1,2,4] [--seconds 40] [--write-doc]

Workers on several machines share nothing but PostgreSQL and Redis. This runs 1, 2 and 4
worker nodes, each its own process (`celery -A config worker -n scaleN@%h --concurrency=1`), in
its own network namespace when the machine allows it (own loopback, own address on a private
bridge; PostgreSQL, Redis and the stand-in reached over TCP through the bridge, like separate
machines on a LAN), else as separate processes on loopback TCP. Beside them, as in the other
benchmarks: gunicorn (the Procfile's `web`), one `beat` and the Graph API stand-in with limits on,
a fresh PostgreSQL database and a private redis-server (broker and shared budgets).

Load, for each node count: matched "guide please" comments (signed webhooks) spread over
--accounts accounts whose sending budgets are lifted (send_limit_per_second and
private_reply_limit_per_hour on their rows, like bench/burst.py), fed faster than the nodes can
serve: the feeder keeps --backlog of their comments waiting for their public reply at all times
(counted per account at the stand-in), so the nodes never run dry (an offered load above
capacity whose queue is capped, so latency stays comparable between node counts). One more
account has a low budget (--low-budget, 10/s Send API) and gets comments at --low-rate (above
it), open loop: its private replies must stay under its budget whatever the number of nodes,
and its queue, held back by that budget, must not take the lifted accounts' places. A share
--redeliver of the webhooks is posted twice (as Meta retries), to exercise intake dedupe. After
--warmup seconds the window of --seconds is measured; then feeding stops and the backlog
drains (bounded).

Reported per node count: sends/s and comments/s completed at the stand-in, webhook -> private
reply p50/p99, duplicates and rate-limit errors at the stand-in (both must be 0), the
low-budget account's private replies/s and densest second, tasks per node, CPU by process kind
and what bounds the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _burst_helpers import Account, Ids, comment_request
from _burst_helpers import json_call as standin_call
from _harness import (
    PYTHON,
    CpuMeter,
    Processes,
    QuietGate,
    bench_env,
    code_version,
    command_line,
    cpu_speed_check,
    free_port,
    gunicorn_argv,
    install_signal_handlers,
    machine_info,
    md_table,
    now_stamp,
    percentile,
    postgres_settings,
    raise_priority,
    recreate_database,
    remove_work_dir,
    run_checked,
    settings_summary,
    table,
    update_doc_section,
    wait_http,
    wait_log,
)
from _loadgen import CTX, Connection, quiet_child_signals
from burst import trigger_file

DOC_KEY = "scale"
THROTTLE_CODES = (4, 17, 32, 613, 80001, 80002, 80006)
SUBNET = "10.213.0"  # the private bridge of the network namespaces: .1 host side, .11.. nodes
KIND_HIGH, KIND_LOW = 1, 2


# --- network namespaces --------------------------------------------------------------------------
class Netns:
    """One bridge in the host namespace (10.213.0.1/24) and one namespace per node with a veth
    on it (10.213.0.1N). Names carry this process's pid so parallel runs do not collide."""

    def __init__(self, nodes: int) -> None:
        tag = os.getpid() % 100_000
        self.bridge = f"scbr{tag}"
        self.names = [f"scale{tag}n{i}" for i in range(1, nodes + 1)]
        self.host_ip = f"{SUBNET}.1"
        self.ip_bin = shutil.which("ip") or "ip"
        self.created: list[str] = []

    def _ip(self, *args: str) -> None:
        subprocess.run([self.ip_bin, *args], check=True, capture_output=True, timeout=20)

    def setup(self) -> None:
        self._ip("link", "add", self.bridge, "type", "bridge")
        self.created.append("bridge")
        self._ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        tag = self.bridge.removeprefix("scbr")
        for i, ns in enumerate(self.names, start=1):
            host_end, node_end = f"scv{tag}h{i}", f"scv{tag}n{i}"
            self._ip("netns", "add", ns)
            self.created.append(ns)
            self._ip("link", "add", host_end, "type", "veth", "peer", "name", node_end)
            self._ip("link", "set", node_end, "netns", ns)
            self._ip("link", "set", host_end, "master", self.bridge)
            self._ip("link", "set", host_end, "up")
            self._ip("-n", ns, "addr", "add", f"{SUBNET}.{10 + i}/24", "dev", node_end)
            self._ip("-n", ns, "link", "set", node_end, "up")
            self._ip("-n", ns, "link", "set", "lo", "up")

    def wrap(self, node: int, argv: list[str]) -> list[str]:
        return [self.ip_bin, "netns", "exec", self.names[node - 1], *argv]

    def teardown(self) -> None:
        for ns in reversed(self.created):
            with contextlib.suppress(subprocess.SubprocessError):
                if ns == "bridge":
                    self._ip("link", "del", self.bridge)
                else:
                    self._ip("netns", "del", ns)  # its veth ends go with it
        self.created.clear()


def netns_available() -> str:
    """'' when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root: `unshare -n` / `ip netns add` need CAP_NET_ADMIN"
    ip_bin = shutil.which("ip")
    if not ip_bin:
        return "no `ip` command"
    name = f"scalechk{os.getpid() % 100_000}"
    try:
        subprocess.run([ip_bin, "netns", "add", name], check=True, capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"`ip netns add` failed: {exc}"
    subprocess.run([ip_bin, "netns", "del", name], capture_output=True, timeout=10, check=False)
    if not shutil.which("socat"):
        return "no socat (PostgreSQL listens on 127.0.0.1 only and needs a relay)"
    return ""


# --- HTTP to the stand-in (on the bridge address, not loopback, when namespaces are used) --------
def json_call(host: str, port: int, method: str, path: str, body: object = None):
    return standin_call(port, method, path, body, timeout=120, host=host)


def make_accounts(high: int) -> list[Account]:
    """`high` accounts with lifted budgets (index 1..high), then the low-budget one."""
    out = []
    for i in range(1, high + 2):
        name = f"scale.shop{i:02d}" if i <= high else "scale.lowbudget"
        out.append(
            Account(
                index=i,
                ig_user_id=f"178414000007{i:05d}",
                page_id=f"10000000007{i:04d}",
                username=name,
                token=f"bench-scale-token-{i:02d}",
            )
        )
    return out


# --- the feeder ----------------------------------------------------------------------------------
# A record: (comment id, account index, time.time() before the POST, status, redelivery?)
Rec = tuple[str, int, float, int, bool]


def _feeder(
    web_port: int,
    standin: tuple[str, int],
    accounts: list[Account],
    tag: str,
    backlog: int,
    max_rate: float,
    low_rate: float,
    redeliver: float,
    threads: int,
    stop,
    out,
) -> None:
    """Keep `backlog` comments of the lifted accounts waiting for their public reply at the
    stand-in (counted per account there, so the low-budget account's own queue, which its
    budget holds back by design, never takes their places): they are posted round robin, at
    most `max_rate`/s. The low-budget account gets `low_rate`/s open loop, a fixed load above
    its budget. A share `redeliver` of all webhooks is posted a second time 1-3 s later."""
    quiet_child_signals()
    high = [a for a in accounts if a.page_id != accounts[-1].page_id]
    low = accounts[-1]
    ids = Ids()
    ids.tag = tag
    lock = threading.Lock()
    state = {"posted": 0, "replied": 0, "n": 0, "k": 0}
    low_sender = low.ig_user_id
    records: list[Rec] = []
    redo: list[tuple[float, str, int, bytes]] = []
    rng = random.Random(7)

    def poll() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                stats = json_call(*standin, "GET", "/_standin/stats")
                # Public replies answered for the lifted accounts (the stand-in counts calls
                # per account; the rare refused call is an error in the totals only).
                replied = (stats.get("endpoints") or {}).get("comment_reply", 0)
                replied -= (stats.get("errors") or {}).get("comment_reply", 0)
                replied -= (stats.get("nodes") or {}).get(low_sender, {}).get("comment_reply", 0)
                with lock:
                    state["replied"] = replied
            stop.wait(0.1)

    def post(conn: Connection, account: Account, kind: int) -> None:
        with lock:
            state["n"] += 1
            n = state["n"]
        comment_id = ids.comment(kind, n)
        raw = comment_request(web_port, account, comment_id, ids.commenter(kind, n))
        sent = time.time()
        status = conn.request(raw)
        with lock:
            records.append((comment_id, account.index, sent, status, False))
            if rng.random() < redeliver:
                redo.append((time.monotonic() + rng.uniform(1, 3), comment_id, account.index, raw))

    def high_loop() -> None:
        conn = Connection(web_port)
        interval = 1.0 / max_rate * threads
        next_at = time.monotonic()
        while not stop.is_set():
            with lock:
                room = state["posted"] - state["replied"] < backlog
                if room:
                    state["posted"] += 1
                    k = state["k"] = state["k"] + 1  # round robin over all threads
            if not room:
                time.sleep(0.01)
                continue
            post(conn, high[k % len(high)], KIND_HIGH)
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            if (delay := next_at - time.monotonic()) > 0:
                time.sleep(delay)
        conn.close()

    def low_loop() -> None:
        conn = Connection(web_port)
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            due = t0 + i / low_rate
            if (delay := due - time.monotonic()) > 0:
                stop.wait(delay)
                continue
            post(conn, low, KIND_LOW)
            i += 1
            if time.monotonic() - (t0 + i / low_rate) > 1.0:  # behind: no catch-up burst
                t0, i = time.monotonic(), 0
        conn.close()

    def redo_loop() -> None:
        conn = Connection(web_port)
        while not stop.is_set():
            with lock:
                due = [r for r in redo if r[0] <= time.monotonic()]
                redo[:] = [r for r in redo if r[0] > time.monotonic()]
            for _, comment_id, index, raw in due:
                sent = time.time()
                status = conn.request(raw)
                with lock:
                    records.append((comment_id, index, sent, status, True))
            stop.wait(0.05)
        conn.close()

    workers = [threading.Thread(target=poll, daemon=True)]
    workers += [threading.Thread(target=high_loop, daemon=True) for _ in range(threads)]
    workers += [threading.Thread(target=low_loop, daemon=True)]
    workers += [threading.Thread(target=redo_loop, daemon=True)]
    for worker in workers:
        worker.start()
    stop.wait()
    for worker in workers:
        worker.join(timeout=15)
    with lock:
        out.put((list(records), time.process_time()))


class Feeder:
    def __init__(self, args, web_port: int, standin: tuple[str, int], accounts, tag: str):
        self.stop_event = CTX.Event()
        self.out = CTX.Queue()
        self.proc = CTX.Process(
            target=_feeder,
            args=(
                web_port,
                standin,
                accounts,
                tag,
                args.backlog,
                args.max_rate,
                args.low_rate,
                args.redeliver,
                args.feeder_threads,
                self.stop_event,
                self.out,
            ),
            daemon=True,
        )

    def start(self) -> int:
        self.proc.start()
        return self.proc.pid

    def finish(self) -> tuple[list[Rec], float]:
        self.stop_event.set()
        try:
            records, cpu = self.out.get(timeout=60)
        except Exception:
            records, cpu = [], 0.0
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=5)
        return records, cpu


# --- setup ---------------------------------------------------------------------------------------
def db_connect(args):
    import psycopg

    return psycopg.connect(f"{args.pg_url.rstrip('/')}/{args.db_name}", autocommit=True)


def prepare(env: dict, args, accounts: list[Account]) -> None:
    recreate_database(args.pg_url, args.db_name)
    run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
    for a in accounts:
        run_checked(
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
            env,
        )
    run_checked(
        [PYTHON, "manage.py", "import_triggers", "-"],
        env,
        timeout=120,
        stdin=trigger_file(accounts),
    )
    low = accounts[-1]
    with db_connect(args) as conn, conn.cursor() as cur:
        # No command sets an account's budgets; an operator does it in the admin.
        cur.execute(
            "UPDATE accounts_instagramaccount SET send_limit_per_second = %s, "
            "private_reply_limit_per_hour = %s",
            [args.send_limit, args.private_reply_limit],
        )
        cur.execute(
            "UPDATE accounts_instagramaccount SET send_limit_per_second = %s WHERE ig_user_id = %s",
            [args.low_budget, low.ig_user_id],
        )


def drop_database(args) -> None:
    import psycopg

    with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db_name} WITH (FORCE)")  # checked name


def standin_setup(standin: tuple[str, int], args, accounts: list[Account]) -> None:
    json_call(
        *standin,
        "POST",
        "/_standin/limits",
        {"send_per_second": args.send_limit, "private_replies_per_hour": args.private_reply_limit},
    )
    for a in accounts:
        json_call(
            *standin,
            "POST",
            "/_standin/accounts",
            {"token": a.token, "id": a.ig_user_id, "user_id": a.ig_user_id, "username": a.username},
        )


# --- figures -------------------------------------------------------------------------------------
@dataclass
class Run:
    nodes: int
    t0: float = 0.0  # window, time.time()
    t1: float = 0.0
    records: list[Rec] = field(default_factory=list)
    private: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # comment -> calls
    public: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    private_node: dict[str, str] = field(default_factory=dict)  # comment -> page id
    stats: dict = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    tasks: dict[int, dict[str, int]] = field(default_factory=dict)  # node -> task -> runs
    throttle_attempts: int = 0
    rate_limited: int = 0
    redis_commands: int = 0
    pg_xacts: int = 0
    pg_connections: int = 0
    drained: bool = False
    drain_s: float = 0.0
    feeder_cpu: float = 0.0
    speed_ms: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def window(self) -> float:
        return max(self.t1 - self.t0, 1e-9)

    def ok_in_window(self, table_: dict, ids: set[str] | None = None) -> list[float]:
        return [
            t
            for c, calls in table_.items()
            if ids is None or c in ids
            for t, s in calls
            if s == 200 and self.t0 <= t < self.t1
        ]


def standin_log(standin: tuple[str, int], run: Run) -> None:
    for endpoint in ("private_reply", "comment_reply"):
        entries = json_call(*standin, "GET", f"/_standin/requests?endpoint={endpoint}")
        for entry in entries["requests"]:
            if endpoint == "private_reply":
                body = entry.get("body") or {}
                recipient = (body.get("recipient") or {}) if isinstance(body, dict) else {}
                comment_id = str(recipient.get("comment_id", ""))
                run.private.setdefault(comment_id, []).append((entry["time"], entry["status"]))
                run.private_node[comment_id] = str(entry.get("node") or entry.get("sender"))
            else:
                comment_id = str(entry.get("node") or "")
                run.public.setdefault(comment_id, []).append((entry["time"], entry["status"]))


def duplicates(run: Run) -> int:
    dup = sum(1 for calls in run.private.values() if sum(s == 200 for _, s in calls) > 1)
    dup += sum(1 for calls in run.public.values() if sum(s == 200 for _, s in calls) > 1)
    return dup + sum((run.stats.get("duplicates") or {}).values())


def rate_limit_errors(run: Run) -> int:
    violations = (run.stats.get("violations") or {}).get("total", 0)
    return max(violations, run.throttle_attempts) + run.rate_limited


def densest_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


@dataclass
class Figures:
    sends_per_s: float
    comments_per_s: float
    offered_per_s: float
    p50: float
    p99: float
    answered: str
    low_rate: float
    low_peak: int
    per_account: str
    unanswered: int


def figures(run: Run, low_index: int) -> Figures:
    firsts = {}
    for c, idx, sent, status, redo in run.records:
        if not redo and status == 200:
            firsts[c] = (idx, sent)
    high_ids = {c for c, (idx, _) in firsts.items() if idx != low_index}
    low_ids = {c for c, (idx, _) in firsts.items() if idx == low_index}
    private_w = run.ok_in_window(run.private)
    public_w = run.ok_in_window(run.public)
    sends = (len(private_w) + len(public_w)) / run.window
    comments = len(private_w) / run.window
    offered = sum(1 for _, sent in firsts.values() if run.t0 <= sent < run.t1) / run.window
    lat = []
    answered = 0
    measured = [c for c in high_ids if run.t0 <= firsts[c][1] < run.t1]
    for c in measured:
        times = [t for t, s in run.private.get(c, []) if s == 200]
        if times:
            answered += 1
            lat.append(min(times) - firsts[c][1])
        else:
            lat.append(float("inf"))
    lat.sort()
    low_times = [t for c in low_ids for t, s in run.private.get(c, []) if s == 200]
    low_w = [t for t in low_times if run.t0 <= t < run.t1]
    per_acc: dict[int, int] = {}
    for c in high_ids:
        n = sum(1 for t, s in run.private.get(c, []) if s == 200 and run.t0 <= t < run.t1)
        per_acc[firsts[c][0]] = per_acc.get(firsts[c][0], 0) + n
    rates = sorted(v / run.window for v in per_acc.values()) or [0.0]
    unanswered = sum(
        1
        for c in firsts
        if not any(s == 200 for _, s in run.private.get(c, []))
        or not any(s == 200 for _, s in run.public.get(c, []))
    )
    return Figures(
        sends_per_s=sends,
        comments_per_s=comments,
        offered_per_s=offered,
        p50=percentile(lat, 50),
        p99=percentile(lat, 99),
        answered=f"{answered}/{len(measured)}",
        low_rate=len(low_w) / run.window,
        low_peak=densest_second(low_times),
        per_account=f"{rates[0]:.1f}-{rates[-1]:.1f}",
        unanswered=unanswered,
    )


_TASK_DONE = re.compile(rb"Task ([\w.]+)\[[\w-]+\] succeeded in")


def count_tasks(path: Path, start: int, end: int) -> dict[str, int]:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read(max(0, end - start))
    except OSError:
        return {}
    out: dict[str, int] = {}
    for m in _TASK_DONE.finditer(text):
        name = m.group(1).decode()
        out[name] = out.get(name, 0) + 1
    return out


def redis_commands(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def pg_counters(args) -> tuple[int, int]:
    with db_connect(args) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            [args.db_name],
        )
        (xacts,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [args.db_name])
        (conns,) = cur.fetchone()
    return int(xacts), int(conns) - 1  # minus this query's own session


def wait_drained(run: Run, standin, args, procs: Processes, names: list[str]) -> None:
    """Until every comment posted has both replies at the stand-in and nothing waits in the
    database (bounded by --drain)."""
    posted = {r[0] for r in run.records if r[3] == 200}
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.drain:
        procs.check_alive(*names)
        stats = json_call(*standin, "GET", "/_standin/stats")
        endpoints = stats.get("endpoints") or {}
        errors = stats.get("errors") or {}
        private = endpoints.get("private_reply", 0) - errors.get("private_reply", 0)
        public = endpoints.get("comment_reply", 0) - errors.get("comment_reply", 0)
        if private >= len(posted) and public >= len(posted):
            with db_connect(args) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM messaging_delivery WHERE status IN ('queued', 'sending')"
                )
                (open_,) = cur.fetchone()
            if open_ == 0:
                run.drained = True
                break
        time.sleep(0.5)
    run.drain_s = time.monotonic() - t0


CPU_KINDS = (
    "workers",
    "web",
    "postgres",
    "redis",
    "beat",
    "standin",
    "feeder",
    "relay",
    "kernel",
    "unattributed",
)


def cpu_kind(run: Run, kind: str) -> float:
    if kind == "workers":
        return sum(v for k, v in run.cpu.items() if k.startswith("node"))
    return run.cpu.get(kind, 0.0)


def measure(
    args, env_nodes: list[dict], procs: Processes, roots: dict[str, int], accounts, standin, netns
) -> Run:
    """Start `args.current` nodes, feed, measure the window, drain, stop the nodes."""
    n = args.current
    run = Run(nodes=n)
    json_call(*standin, "DELETE", "/_standin/requests")
    json_call(*standin, "DELETE", "/_standin/stats")
    names = []
    for i in range(1, n + 1):
        name = f"node{i}"
        argv = [
            "celery",
            "-A",
            "config",
            "worker",
            "-n",
            f"scale{i}@%h",
            "--loglevel=info",
            f"--concurrency={args.concurrency}",
        ]
        if netns is not None:
            argv = netns.wrap(i, argv)
        procs.start(name, argv, env_nodes[i - 1])
        names.append(name)
    for name in names:
        wait_log(procs, name, r"ready\.", timeout=90)
    node_roots = {name: procs.procs[name].pid for name in names}
    args.quiet_gate.wait()
    ids = Ids()
    feeder = Feeder(args, args.web_port, standin, accounts, f"{ids.tag[-4:]}{n:02d}")
    feeder_pid = feeder.start()
    try:
        time.sleep(args.warmup)
        procs.check_alive()
        run.speed_ms = cpu_speed_check(3)
        offsets = {nm: procs.log_path(nm).stat().st_size for nm in names}
        redis0, (xacts0, _) = redis_commands(args.redis_url), pg_counters(args)
        groups = {k: v for k, v in roots.items() if k != "redis"}
        meter = CpuMeter(
            {**groups, **node_roots, "feeder": feeder_pid},
            args.db_name,
            redis_pids={roots["redis"]},
        )
        meter.start()
        run.t0 = time.time()
        time.sleep(args.seconds)
        run.t1 = time.time()
        run.cpu = meter.stop()
        redis1, (xacts1, conns) = redis_commands(args.redis_url), pg_counters(args)
        run.redis_commands, run.pg_xacts, run.pg_connections = (
            redis1 - redis0,
            xacts1 - xacts0,
            conns,
        )
        for i, nm in enumerate(names, start=1):
            run.tasks[i] = count_tasks(
                procs.log_path(nm), offsets[nm], procs.log_path(nm).stat().st_size
            )
    finally:
        run.records, run.feeder_cpu = feeder.finish()
    for r in run.records:
        run.statuses[r[3]] = run.statuses.get(r[3], 0) + 1
    wait_drained(run, standin, args, procs, names)
    run.stats = json_call(*standin, "GET", "/_standin/stats")
    standin_log(standin, run)
    with db_connect(args) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM messaging_deliveryattempt WHERE meta_code = ANY(%s) "
            "AND started_at >= to_timestamp(%s)",
            [list(THROTTLE_CODES), run.t0 - args.warmup - 5],
        )
        (run.throttle_attempts,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM messaging_delivery WHERE reason = 'rate_limited'")
        (run.rate_limited,) = cur.fetchone()
    for name in names:
        procs.stop(name)
    return run


# --- report --------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    if seconds != seconds:
        return "-"
    return "none" if seconds == float("inf") else f"{seconds * 1000:.0f}"


RESULT_HEADERS = (
    "nodes",
    "sends/s",
    "comments/s",
    "offered comments/s",
    "private reply p50 / p99 ms",
    "answered",
    "per high account comments/s",
    "low-budget private replies/s (densest 1 s)",
    "duplicates",
    "rate-limit errors",
    "unanswered after drain",
    "POSTs 200",
)


def result_row(run: Run, f: Figures, args) -> list[str]:
    posts = sum(run.statuses.values())
    return [
        str(run.nodes),
        f"{f.sends_per_s:.1f}",
        f"{f.comments_per_s:.1f}",
        f"{f.offered_per_s:.1f}",
        f"{ms(f.p50)} / {ms(f.p99)}",
        f.answered,
        f.per_account,
        f"{f.low_rate:.2f} ({f.low_peak}) of {args.low_budget}/s",
        str(duplicates(run)),
        str(rate_limit_errors(run)),
        str(f.unanswered) + ("" if run.drained else " (drain not finished)"),
        f"{run.statuses.get(200, 0)}/{posts}",
    ]


CPU_HEADERS = (
    "nodes",
    *(f"{k} cores" for k in CPU_KINDS),
    "all cores",
    "machine busy",
    "other load",
    "product CPU ms/comment",
    "all CPU ms/comment",
    "Redis commands/comment",
    "PG transactions/comment",
    "PG connections",
    "speed check ms",
)


def product_cpu(run: Run) -> float:
    return sum(cpu_kind(run, k) for k in ("workers", "web", "postgres", "redis", "beat"))


def cpu_row(run: Run, f: Figures) -> list[str]:
    wall = run.cpu.get("wall", run.window) or 1e-9
    comments = max(f.comments_per_s * run.window, 1)
    total = sum(cpu_kind(run, k) for k in CPU_KINDS)
    return [
        str(run.nodes),
        *(f"{cpu_kind(run, k) / wall:.2f}" for k in CPU_KINDS),
        f"{total / wall:.2f}",
        f"{run.cpu.get('machine_busy', 0):.0%}",
        f"{run.cpu.get('other_share', 0):.0%}",
        f"{product_cpu(run) / comments * 1000:.1f}",
        f"{total / comments * 1000:.1f}",
        f"{run.redis_commands / comments:.0f}",
        f"{run.pg_xacts / comments:.0f}",
        str(run.pg_connections),
        f"{run.speed_ms:.1f}",
    ]


def task_row(run: Run) -> list[str]:
    parts = []
    for i, tasks in sorted(run.tasks.items()):
        sends = tasks.get("messaging.send_delivery", 0)
        events = tasks.get("webhooks.process_event", 0)
        parts.append(f"scale{i}: {events} events, {sends} sends")
    return [str(run.nodes), "; ".join(parts)]


def bound(run: Run, f: Figures) -> str:
    wall = run.cpu.get("wall", run.window) or 1e-9
    busy = run.cpu.get("machine_busy", 0)
    pg, rds = cpu_kind(run, "postgres") / wall, cpu_kind(run, "redis") / wall
    workers = cpu_kind(run, "workers") / wall
    if busy >= 0.9:
        return (
            f"CPU: the machine is {busy:.0%} busy (workers {workers:.2f}, PostgreSQL {pg:.2f}, "
            f"Redis {rds:.2f} cores)"
        )
    per_node = workers / max(run.nodes, 1)
    return (
        f"the nodes: {run.nodes} pool process(es) at {per_node:.2f} core each, the machine "
        f"{busy:.0%} busy (PostgreSQL {pg:.2f}, Redis {rds:.2f} cores)"
    )


def write_doc(args, env: dict, runs: list[tuple[Run, Figures]], netns_note: str) -> None:
    first = runs[0]
    last = runs[-1]
    lines = [
        "## Scale-out: 1, 2 and 4 worker nodes (`bench/scale.py`)",
        "",
        f"- Date: {now_stamp()}",
        f"- Machine: {machine_info()}; PostgreSQL {postgres_settings(args.pg_url)}; a private "
        "redis-server (no persistence)",
        f"- Code: {code_version()}",
        f"- Command: `{command_line()}`",
        f"- Settings: {settings_summary(env)}; COMMENT_REPLY_LIMIT_PER_SECOND (default 100)",
        f"- Priority: {args.priority}",
        f"- Nodes: {netns_note} Each node is `celery -A config worker -n scaleN@%h "
        f"--loglevel=info --concurrency={args.concurrency}` (all queues), its own process; "
        "beside them gunicorn `sync:3` (access log on), one `celery beat`, the stand-in with "
        f"limits on ({args.send_limit} Send API calls/s and {args.private_reply_limit} private "
        "replies/hour per account).",
        f"- Accounts: {args.accounts} with lifted budgets (`send_limit_per_second` "
        f"{args.send_limit}, `private_reply_limit_per_hour` {args.private_reply_limit} on their "
        f"rows) and one low-budget account (`send_limit_per_second` {args.low_budget}), each "
        'with its own workspace and page and a "guide" trigger (public reply + private reply).',
        f"- Load per node count: {args.warmup:g} s warm-up, then a {args.seconds:g} s measured "
        "window. A comment of a lifted account (round robin, at most "
        f"{args.max_rate:g}/s) is posted whenever fewer than {args.backlog} of their comments "
        "wait for their public reply at the stand-in (counted per account there): always more "
        "than the nodes can serve, with a bounded queue. The low-budget account gets "
        f"{args.low_rate:g} comments/s open loop, above its budget. {args.redeliver:.0%} "
        "of all webhooks are posted a second time 1-3 s later (Meta's retries). Then feeding "
        f"stops and the backlog drains (at most {args.drain:g} s).",
        "",
        "| " + " | ".join(RESULT_HEADERS) + " |",
        "|" + "|".join("---" for _ in RESULT_HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(result_row(r, f, args)) + " |" for r, f in runs]
    lines += [
        "",
        "Sends/s = private and public replies answered 200 at the stand-in per second of the "
        "window, all accounts; comments/s = private replies per second (one per comment); "
        "offered = comments first posted in the window. Latency: webhook POST -> private reply "
        "at the stand-in for the lifted accounts' comments posted in the window (it includes "
        f"the wait in a queue kept at ~{args.backlog} comments, so it is a saturation figure; "
        "the low-budget account's replies wait for its budget by design and are left out); "
        "unanswered = comments without both replies after the drain. Duplicates = a comment "
        "with two private or two public replies at the stand-in, plus the stand-in's own count; "
        "rate-limit errors = the stand-in's violations or throttled attempts in the database, "
        "plus deliveries that ended `rate_limited`. Densest 1 s = most private replies of the "
        "low-budget account in any sliding second at the stand-in.",
        "",
        "CPU by process kind over the window, in cores (CPU seconds / wall seconds); product CPU "
        "= workers + web + PostgreSQL + Redis + beat per comment completed; all = every process "
        "of the benchmark (plus stand-in, feeder, the PostgreSQL relay, kernel threads):",
        "",
        md_table(CPU_HEADERS, [cpu_row(r, f) for r, f in runs]),
        "",
        "Tasks each node ran in the window (worker INFO log):",
        "",
        md_table(("nodes", "per node"), [task_row(r) for r, _ in runs]),
        "",
        "Where it stops scaling:",
        "",
    ]
    lines += [f"- {r.nodes} node(s): {bound(r, f)}." for r, f in runs]
    if len(runs) > 1:
        lines.append(
            f"- From {first[0].nodes} to {last[0].nodes} node(s): comments/s "
            f"{first[1].comments_per_s:.1f} -> {last[1].comments_per_s:.1f} "
            f"(x{last[1].comments_per_s / max(first[1].comments_per_s, 1e-9):.2f})."
        )
    if args.notes:
        lines += ["", args.notes]
    update_doc_section(DOC_KEY, "\n".join(lines))


# --- main ----------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="1,2,4", help="node counts to run, e.g. 1,2,4")
    p.add_argument("--seconds", type=float, default=40.0, help="measured window per node count")
    p.add_argument("--warmup", type=float, default=10.0, help="s of feeding before the window")
    p.add_argument("--drain", type=float, default=60.0, help="max s to drain after the window")
    p.add_argument("--concurrency", type=int, default=1, help="pool processes per node")
    p.add_argument("--accounts", type=int, default=8, help="accounts with lifted budgets")
    p.add_argument("--backlog", type=int, default=40, help="comments kept waiting")
    p.add_argument("--max-rate", type=float, default=300.0, help="max comments/s posted (lifted)")
    p.add_argument("--send-limit", type=int, default=100, help="lifted send_limit_per_second")
    p.add_argument("--private-reply-limit", type=int, default=360_000)
    p.add_argument("--low-budget", type=int, default=10, help="the low account's sends/s")
    p.add_argument("--low-rate", type=float, default=12.0, help="its comments/s (open loop)")
    p.add_argument("--redeliver", type=float, default=0.05, help="share posted twice")
    p.add_argument("--feeder-threads", type=int, default=4)
    p.add_argument("--no-netns", dest="netns", action="store_false")
    p.add_argument("--quiet-wait", type=float, default=45.0)
    p.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0)
    p.add_argument("--db-name", default="instadm_bench_scale")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--notes", default="")
    p.add_argument("--write-doc", action="store_true", help="rewrite the doc's bench:scale section")
    p.add_argument("--keep-logs", action="store_true")
    args = p.parse_args(argv)
    try:
        args.node_counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    except ValueError:
        p.error("--nodes must be a comma-separated list of integers")
    if not args.node_counts or not all(1 <= x <= 16 for x in args.node_counts):
        p.error("--nodes: 1..16 each")
    if not 5 <= args.seconds <= 600 or not 0 <= args.warmup <= 120:
        p.error("--seconds must be 5..600 and --warmup 0..120")
    if not 1 <= args.accounts <= 50 or not 1 <= args.concurrency <= 16:
        p.error("--accounts must be 1..50 and --concurrency 1..16")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db_name):
        p.error("--db-name must be a plain identifier")
    args.quiet_gate = QuietGate(args.quiet_wait)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    args.priority = raise_priority(args.nice)
    why_not = netns_available() if args.netns else "switched off (--no-netns)"
    netns = Netns(max(args.node_counts)) if not why_not else None
    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    (work / "var").mkdir(exist_ok=True)
    accounts = make_accounts(args.accounts)
    print(f"machine: {machine_info()}\nlogs: {work}")
    ok = False
    runs: list[tuple[Run, Figures]] = []
    try:
        if netns is not None:
            try:
                netns.setup()
            except subprocess.SubprocessError as exc:
                netns.teardown()
                why_not = f"setting up the namespaces failed ({exc})"
                netns = None
        host = netns.host_ip if netns is not None else "127.0.0.1"
        netns_note = (
            f"each node in its own network namespace (`ip netns`; own loopback, own address "
            f"{SUBNET}.1N on a private bridge) reaching PostgreSQL (through a socat relay on "
            f"{SUBNET}.1:5432, as PostgreSQL here listens on 127.0.0.1 only), Redis and the "
            f"stand-in over TCP at {SUBNET}.1, like machines on one LAN."
            if netns is not None
            else f"separate processes on loopback TCP (no network namespaces: {why_not})."
        )
        print(f"nodes: {netns_note}")
        with Processes(work) as procs:
            redis_port = free_port()
            redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
            if netns is not None:
                redis_argv[-1:] = ["127.0.0.1", host]
            redis_argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
            if netns is not None:
                # Bound to loopback and the private bridge only; protected mode would refuse
                # the nodes (no password on a throwaway server).
                redis_argv += ["--protected-mode", "no"]
            redis_proc = procs.start("redis", redis_argv, dict(os.environ))
            wait_log(procs, "redis", "Ready to accept connections", timeout=15)
            args.redis_url = f"redis://127.0.0.1:{redis_port}/0"
            standin_port, args.web_port = free_port(), free_port()
            graph = f"http://{host}:{standin_port}/v24.0"
            env = bench_env(
                db_name=args.db_name,
                pg_url=args.pg_url,
                redis_url=args.redis_url,
                var_dir=work / "var",
                extra={"META_GRAPH_URL": graph, "META_INSTAGRAM_GRAPH_URL": graph},
            )
            t0 = time.monotonic()
            prepare(env, args, accounts)
            print(
                f"database {args.db_name}: {len(accounts)} accounts ({time.monotonic() - t0:.0f} s)"
            )
            env_nodes = []
            relay = None
            for _ in range(max(args.node_counts)):
                node_env = dict(env)
                if netns is not None:
                    node_env["DATABASE_URL"] = f"postgresql://postgres@{host}:5432/{args.db_name}"
                    node_env["CELERY_BROKER_URL"] = f"redis://{host}:{redis_port}/0"
                    node_env["REDIS_URL"] = f"redis://{host}:{redis_port}/0"
                env_nodes.append(node_env)
            if netns is not None:
                relay = procs.start(
                    "relay",
                    [
                        "socat",
                        f"TCP-LISTEN:5432,bind={host},reuseaddr,fork",
                        "TCP:127.0.0.1:5432",
                    ],
                    dict(os.environ),
                )
            standin = procs.start(
                "standin",
                [PYTHON, "-m", "meta.standin", "--host", host, "--port", str(standin_port)],
                env,
            )
            wait_http_host(host, standin_port, procs)
            standin_setup((host, standin_port), args, accounts)
            web = procs.start("web", gunicorn_argv(args.web_port, 3, 1, True), env)
            beat = procs.start("beat", ["celery", "-A", "config", "beat", "--loglevel=info"], env)
            wait_http(args.web_port, "/livez/", procs, ["web"])
            wait_log(procs, "beat", r"beat: Starting", timeout=60)
            if netns is not None:
                out = subprocess.run(
                    netns.wrap(
                        1,
                        [
                            "psql",
                            env_nodes[0]["DATABASE_URL"],
                            "-Atc",
                            "SELECT 1",
                        ],
                    ),
                    capture_output=True,
                    text=True,
                    timeout=20,
                    check=False,
                )
                if out.stdout.strip() != "1":
                    raise RuntimeError(f"a node cannot reach PostgreSQL: {out.stderr}")
            roots = {
                "web": web.pid,
                "beat": beat.pid,
                "standin": standin.pid,
                "redis": redis_proc.pid,
            }
            if relay is not None:
                roots["relay"] = relay.pid
            for n in args.node_counts:
                args.current = n
                print(f"\n{n} node(s): starting")
                run = measure(args, env_nodes, procs, roots, accounts, (host, standin_port), netns)
                f = figures(run, accounts[-1].index)
                runs.append((run, f))
                print(table(RESULT_HEADERS, [result_row(run, f, args)]))
                print(table(CPU_HEADERS, [cpu_row(run, f)]))
                print(f"  {task_row(run)[1]}\n  bound: {bound(run, f)}")
                time.sleep(2)
            procs.check_alive()
        print()
        print(table(RESULT_HEADERS, [result_row(r, f, args) for r, f in runs]))
        print()
        print(table(CPU_HEADERS, [cpu_row(r, f) for r, f in runs]))
        if args.write_doc:
            write_doc(args, env, runs, netns_note)
            print("\ndocs/performance.md updated (section bench:scale)")
        ok = all(
            duplicates(r) == 0
            and rate_limit_errors(r) == 0
            and f.unanswered == 0
            and f.low_peak <= args.low_budget
            for r, f in runs
        )
        if not ok:
            print("CHECKS FAILED: duplicates, rate-limit errors, unanswered or low budget crossed")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("interrupted; processes stopped")
        return 130
    finally:
        if netns is not None:
            netns.teardown()
        with contextlib.suppress(Exception):
            drop_database(args)
        remove_work_dir(work, keep=not ok or args.keep_logs)


def wait_http_host(host: str, port: int, procs: Processes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive("standin")
        with contextlib.suppress(OSError, RuntimeError, http.client.HTTPException):
            json_call(host, port, "GET", "/_standin/health")
            return
        time.sleep(0.1)
    raise RuntimeError(f"the stand-in did not answer on {host}:{port}")


if __name__ == "__main__":
    sys.exit(main())

"""Shared plumbing for the benchmarks in bench/: database, processes, clocks, tables, the report.

Nothing here imports Django: the benchmark driver only starts the real processes (gunicorn,
celery, the stand-in) with a production-like environment and talks to them over HTTP, SQL and
Redis. Every process it starts is put in its own session and killed (whole process group) on
exit, on an error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

BENCH_HOME = Path(__file__).resolve().parent.parent
# The code under test: this checkout, or another one named by BENCH_PROJECT_DIR. A run copies it
# first (snapshot_project) and measures the copy, so commits landing meanwhile cannot mix in.
SOURCE = Path(os.environ.get("BENCH_PROJECT_DIR") or BENCH_HOME).resolve()
ROOT = SOURCE
SNAPSHOT: dict[str, str] = {}
VENV_BIN = BENCH_HOME / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
DOC = BENCH_HOME / "docs" / "performance.md"

DEMO_ACCOUNT_ID = "17841400000000001"  # triggers/management/commands/load_demo.py
BENCH_APP_SECRET = "bench-app-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- environment ---------------------------------------------------------------------------------
def bench_env(
    *, db_name: str, pg_url: str, redis_url: str, var_dir: Path, extra: dict | None = None
) -> dict[str, str]:
    """The production-mode environment every started process gets."""
    # Only the basics from the caller's shell: a product setting exported there (say
    # SEND_LIMIT_PER_SECOND) must not change what is measured.
    keep = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "USER", "LOGNAME", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    if ROOT == SOURCE and (ROOT / ".env").is_file():
        print(f"warning: {ROOT / '.env'} exists; settings not set here may come from it")
    env.update(
        {
            # The code under test comes first on the path, before the editable install.
            "PYTHONPATH": str(ROOT),
            "BENCH_PROJECT_DIR": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"{pg_url.rstrip('/')}/{db_name}",
            "CELERY_BROKER_URL": redis_url,
            "REDIS_URL": redis_url,
            "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "META_APP_ID": "bench-app-id",
            "META_APP_SECRET": BENCH_APP_SECRET,
            "META_VERIFY_TOKEN": "bench-verify-token",
            "TOKEN_ENCRYPTION_KEY": "bench-token-encryption-key-0123456789",
            "SECURE_SSL_REDIRECT": "0",
            "EMAIL_URL": "dummymail://",
            "LOG_LEVEL": "WARNING",
            "VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    return env


def standin_env(args, var_dir: Path, standin_port: int, extra: dict | None = None) -> dict:
    """``bench_env`` for a run's --db-name, --pg-url and --redis-url, with the Graph API base
    URLs pointed at the stand-in on this port (never at Meta)."""
    graph = f"http://127.0.0.1:{standin_port}/v24.0"
    return bench_env(
        db_name=args.db_name,
        pg_url=args.pg_url,
        redis_url=args.redis_url,
        var_dir=var_dir,
        extra={"META_GRAPH_URL": graph, "META_INSTAGRAM_GRAPH_URL": graph, **(extra or {})},
    )


SHOWN_SETTINGS = (
    "DEBUG",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "LOG_LEVEL",
    "WEBHOOK_DISPATCH",
    "CONN_MAX_AGE",
    "PRIVATE_REPLY_LIMIT_PER_HOUR",
    "SEND_LIMIT_PER_SECOND",
    "COMMENT_REPLY_LIMIT_PER_SECOND",
    "META_GRAPH_URL",
)


def settings_summary(env: dict[str, str]) -> str:
    shown = [f"{k}={env[k]}" for k in SHOWN_SETTINGS if k in env]
    shown.append(
        "SECRET_KEY, META_APP_ID, META_APP_SECRET, META_VERIFY_TOKEN, TOKEN_ENCRYPTION_KEY"
    )
    shown[-1] += " = bench values"
    return "; ".join(shown)


# --- PostgreSQL and Redis -------------------------------------------------------------------------
def _psql(pg_url: str, db: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", f"{pg_url.rstrip('/')}/{db}", "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


def recreate_database(pg_url: str, db_name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", db_name):
        raise SystemExit(f"--db-name must be a plain identifier, not {db_name!r}")
    _psql(
        pg_url,
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 - checked name
        f"WHERE datname = '{db_name}' AND pid <> pg_backend_pid()",
    )
    _psql(pg_url, "postgres", f"DROP DATABASE IF EXISTS {db_name}")
    _psql(pg_url, "postgres", f"CREATE DATABASE {db_name}")


def sql_value(pg_url: str, db_name: str, sql: str) -> str:
    return _psql(pg_url, db_name, sql)


def sql_rows(pg_url: str, db_name: str, sql: str) -> list[list[str]]:
    text = _psql(pg_url, db_name, sql)
    return [line.split("|") for line in text.splitlines() if line]


def db_sessions(pg_url: str, db_name: str) -> int:
    """Sessions ever opened on the database (pg_stat_database.sessions, PostgreSQL 14+); the
    query's own session counts too. -1 when unavailable."""
    try:
        value = _psql(
            pg_url,
            "postgres",
            "SELECT sessions FROM pg_stat_database WHERE datname = "  # noqa: S608 - checked name
            f"'{db_name}'",
        )
        return int(value)
    except (subprocess.SubprocessError, ValueError):
        return -1


def postgres_settings(pg_url: str) -> str:
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers")
    values = [_psql(pg_url, "postgres", f"SHOW {n}") for n in names]
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


def redis_cli(redis_url: str, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-u", redis_url, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip()


# --- processes ------------------------------------------------------------------------------------
class Processes:
    """Started subprocesses, each in its own session; ``stop_all`` kills their process groups.

    Use as a context manager: on leaving (normally, by an exception or by Ctrl-C) every process
    gets SIGTERM, then SIGKILL after a grace period.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
        if name in self.procs:
            raise RuntimeError(f"process {name} already running")
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.write(f"\n$ {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        self._logs[name] = log
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; last log lines:\n{self.tail(name)}"
                )

    def stop(self, name: str, grace: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Stray children (e.g. a worker that outlived its master) die with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def raise_priority(nice: int) -> str:
    """Run this process and everything it starts at ``nice`` (e.g. -10), so background load on a
    shared machine takes less CPU from the benchmark. PostgreSQL and Redis, started elsewhere,
    keep their priority. Returns a sentence for the report."""
    if nice == 0:
        return "normal priority"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        return f"normal priority (could not set nice {nice}: {exc.strerror})"
    return (
        f"benchmark processes (server, worker, stand-in, clients) at nice {nice}, to shield them "
        "from other load on the shared machine; PostgreSQL and Redis at their usual priority"
    )


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C, so ``finally`` blocks clean up the processes."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)
    # Also when started in the background by a shell, which makes SIGINT ignored by default.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_checked(
    argv: Sequence[str], env: dict[str, str], timeout: float = 180, stdin: str | None = None
) -> str:
    out = subprocess.run(
        list(argv),
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} failed ({out.returncode}):\n"
            f"{out.stdout[-2000:]}{out.stderr[-3000:]}"
        )
    return out.stdout


def prepare_database(env: dict[str, str], pg_url: str, db_name: str) -> None:
    """Fresh database, migrations, demo account and trigger."""
    recreate_database(pg_url, db_name)
    run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
    # load_demo refuses to create the demo *admin login* with DEBUG off (exit 1 after the account
    # and the trigger are stored); the benchmark needs only those, so it runs this one command
    # with DEBUG on. Everything that is measured runs with DEBUG off.
    run_checked([PYTHON, "manage.py", "load_demo"], {**env, "DEBUG": "1"})
    count = sql_value(
        pg_url,
        db_name,
        "SELECT count(*) FROM accounts_instagramaccount "  # noqa: S608 - a constant
        f"WHERE ig_user_id = '{DEMO_ACCOUNT_ID}'",
    )
    if count != "1":
        raise RuntimeError("load_demo did not create the demo account")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_json(port: int, method: str, path: str, timeout: float = 30.0) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path} -> {response.status} {body[:300]!r}")
        return json.loads(body)
    finally:
        conn.close()


def wait_http(
    port: int, path: str, procs: Processes, names: Iterable[str], timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive(*names)
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_get(port, path)
            if status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer 200 within {timeout}s")


def wait_log(procs: Processes, name: str, pattern: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        procs.check_alive(name)
        with contextlib.suppress(OSError):
            if regex.search(procs.log_path(name).read_text(errors="replace")):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not log {pattern!r} within {timeout}s:\n{procs.tail(name)}")


def gunicorn_argv(port: int, workers: int, threads: int, access_log: bool) -> list[str]:
    """The Procfile's `web` line, with the worker count (and optionally threads) varied."""
    argv = [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    if threads > 1:
        argv += ["--worker-class", "gthread", "--threads", str(threads)]
    if access_log:
        argv += ["--access-logfile", "-"]
    argv += ["--log-level", "info"]
    return argv


def parse_web_config(text: str) -> tuple[int, int]:
    """'3' or 'sync:3' -> (3 workers, 1 thread); 'gthread:2x4' -> (2 workers, 4 threads)."""
    text = text.strip()
    if text.startswith("gthread:"):
        workers, _, threads = text.removeprefix("gthread:").partition("x")
        return int(workers), int(threads or 4)
    return int(text.removeprefix("sync:")), 1


def web_config_name(workers: int, threads: int) -> str:
    return f"gthread:{workers}x{threads}" if threads > 1 else f"sync:{workers}"


# --- CPU accounting -------------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int, float, int] | None:
    """(comm, ppid, cpu seconds, start time in ticks) of one process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return comm, ppid, cpu, int(fields[19])


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


_PG_BACKEND = re.compile(r"^postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])")
_PG_AUTOVACUUM = re.compile(r"^postgres: (?:\S+: )?autovacuum worker (\S+)")


def _postgres_database(title: str) -> str | None:
    """The database a backend (or autovacuum worker) serves; None for shared processes."""
    match = _PG_BACKEND.match(title) or _PG_AUTOVACUUM.match(title)
    return match.group(1) if match else None


class CpuMeter:
    """Who used the CPU between ``start()`` and ``stop()``: groups of processes (started process
    trees), our database's PostgreSQL processes (plus the shared background ones), redis, kernel
    threads, and "other" (processes that are not part of the benchmark, e.g. someone else's test
    run on the same machine), plus the machine's busy share.

    A background thread samples /proc every ``interval`` seconds, so processes that start and
    exit during the measurement are counted too (up to their last sample; what a process
    shorter than ``interval`` used ends up as "unattributed").
    """

    def __init__(
        self,
        groups: dict[str, int],
        db_name: str,
        interval: float = 0.25,
        redis_pids: set[int] | None = None,
    ) -> None:
        self.groups = groups  # name -> root pid (its whole tree is counted)
        self.db_name = db_name
        self.interval = interval
        # With a private redis-server: only these count as "redis", any other as "other".
        self.redis_pids = redis_pids
        self._thread: threading.Thread | None = None

    @staticmethod
    def _machine() -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields[:8]]  # guest time is already in user
        return sum(ticks) / CLK_TCK, (ticks[3] + ticks[4]) / CLK_TCK  # total, idle+iowait

    def _sample(self, first: bool = False) -> None:
        for pid in _all_pids():
            stat = _proc_stat(pid)
            if stat is None:
                continue
            comm, ppid, cpu, started = stat
            key = (pid, started)
            seen = self._seen.get(key)
            if seen is None:
                title = _cmdline(pid) if comm in ("postgres", "postmaster") else ""
                # A process seen at start counts from there; a new one from zero.
                self._seen[key] = [comm, ppid, cpu if first else 0.0, cpu, title]
            else:
                seen[3] = cpu
                if seen[0] in ("postgres", "postmaster") and not seen[4]:
                    seen[4] = _cmdline(pid)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._seen: dict[tuple[int, int], list] = {}
        self._t0 = time.monotonic()
        self._total0, self._idle0 = self._machine()
        self._sample(first=True)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group, 'postgres', 'redis', 'kernel', 'other', 'unattributed';
        'wall' seconds; shares 'machine_busy' and 'other_share' of all cores."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        total, idle = self._machine()
        # pid -> ppid over everything seen (pids are not reused within seconds in practice)
        parents = {key[0]: entry[1] for key, entry in self._seen.items()}
        trees = {name: _descendants(root, parents) for name, root in self.groups.items()}
        ours_tree = _descendants(os.getpid(), parents)
        kernel_tree = _descendants(2, parents)
        result: dict[str, float] = dict.fromkeys(
            [*self.groups, "postgres", "redis", "kernel", "other", "_ours"], 0.0
        )
        for (pid, _), (comm, _, first, last, title) in self._seen.items():
            used = max(0.0, last - first)
            if comm in ("postgres", "postmaster"):
                db = _postgres_database(title)
                name = "postgres" if db in (None, self.db_name) else "other"
            elif comm.startswith("redis-server"):
                name = "redis" if self.redis_pids is None or pid in self.redis_pids else "other"
            elif pid in kernel_tree:
                name = "kernel"
            elif pid in ours_tree:
                name = next((g for g, tree in trees.items() if pid in tree), "_ours")
            else:
                name = "other"
            result[name] += used
        result["wall"] = time.monotonic() - self._t0
        spent = total - self._total0
        busy = spent - (idle - self._idle0)
        counted = sum(v for k, v in result.items() if k != "wall")
        result["unattributed"] = max(0.0, busy - counted)
        del result["_ours"]
        result["machine_busy"] = busy / spent if spent > 0 else 0.0
        result["other_share"] = result["other"] / spent if spent > 0 else 0.0
        return result


def cpu_speed_check(rounds: int = 5) -> float:
    """Milliseconds one core needs for a fixed pure-Python workload (best of ``rounds``).

    The host of a virtual machine can give it less CPU at times; comparing this figure at the
    start and the end of a run shows whether the machine itself changed speed meanwhile.
    """
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += (i * 7) % 13
        json.dumps([{"k": i, "v": str(i)} for i in range(2_000)])
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all cores busy over ``seconds``."""
    total0, idle0 = CpuMeter._machine()
    time.sleep(seconds)
    total1, idle1 = CpuMeter._machine()
    spent = total1 - total0
    return 1.0 - (idle1 - idle0) / spent if spent > 0 else 0.0


class QuietGate:
    """Before a measurement, wait (a little) until the machine is mostly idle, so someone else's
    test run does not end up in the figures. Bounded per wait and over the whole run."""

    def __init__(self, total_budget: float, per_wait: float = 10.0, threshold: float = 0.15):
        self.remaining = total_budget
        self.per_wait = per_wait
        self.threshold = threshold
        self.waited = 0.0

    def wait(self) -> float:
        """Returns the machine's last busy share (0..1)."""
        busy = machine_busy(0.2)
        if busy <= self.threshold or self.remaining <= 0:
            return busy
        limit = min(self.per_wait, self.remaining)
        print(f"  machine {busy:.0%} busy before measuring; waiting up to {limit:.0f}s ...")
        t0 = time.monotonic()
        while busy > self.threshold and time.monotonic() - t0 < limit:
            busy = machine_busy(0.5)
        spent = time.monotonic() - t0
        self.remaining -= spent
        self.waited += spent
        return busy


# --- figures --------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n*q/100), at least 1
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return "\n".join(out)


def machine_info() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem_gb = f"{kb / 1024 / 1024:.0f} GB"
    return (
        f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {model}, {mem_gb} RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def now_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    shown = (
        str(script.relative_to(BENCH_HOME)) if script.is_relative_to(BENCH_HOME) else sys.argv[0]
    )
    prefix = f"BENCH_PROJECT_DIR={SOURCE} " if SOURCE != BENCH_HOME else ""
    return prefix + ".venv/bin/python " + shlex.join([shown, *sys.argv[1:]])


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def _describe_source() -> str:
    try:
        commit = _git("rev-parse", "--short", "HEAD").strip()
        dirty = _git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" + uncommitted changes" if dirty else "")


def snapshot_project(work: Path) -> Path:
    """Copy the code under test (tracked and untracked, not ignored files) into ``work`` and
    measure that copy: other people committing meanwhile cannot change the code mid-run."""
    global ROOT
    dest = work / "code"
    files = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in files:
        src = SOURCE / name
        if not name or not src.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    ROOT = dest
    SNAPSHOT.update(version=_describe_source(), at=now_stamp())
    return dest


def code_version() -> str:
    """The code measured: commit, and whether the working tree had uncommitted changes."""
    if SNAPSHOT:
        text = f"{SNAPSHOT['version']}, copied at {SNAPSHOT['at']} and run from the copy"
        now = _describe_source()
        if now != SNAPSHOT["version"]:
            text += f" (the checkout has moved on to {now} since)"
        return text
    return _describe_source() + " (run from the live checkout)"


DOC_HEADER = """# Performance

Measured with the scripts in `bench/`. Each run writes its own section below (between its
markers) and leaves the other sections alone. Every figure is from a single machine that also runs
the load generator, PostgreSQL and Redis, so absolute numbers are only comparable between runs on
the same machine; the ratios and the aims are what matter.
"""


def update_doc_section(key: str, body: str) -> None:
    """Replace (or append) the section between `<!-- bench:KEY:start -->` and its end marker."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else DOC_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(DOC)


def make_work_dir(keep: bool) -> Path:
    """A fresh temporary folder for logs, VAR_DIR and the code copy, named after the script."""
    return Path(tempfile.mkdtemp(prefix=f"instadm-bench-{Path(sys.argv[0]).stem}-"))


def remove_work_dir(path: Path, *, keep: bool = False) -> None:
    """Remove a run's folder of logs, or say where it is when it is worth keeping."""
    if keep:
        print(f"logs kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"

"""A small HTTP/1.1 load generator over raw sockets, run in separate client processes.

Kept lean on purpose (pre-built request bytes, one blocking socket per process, no HTTP library)
so a client process costs a few tens of microseconds of CPU per request and the machine's cores
go to the server. Each process reports its own CPU time so the report can show the client is not
the bottleneck.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from _harness import BENCH_APP_SECRET, DEMO_ACCOUNT_ID

CTX = mp.get_context("fork")
SOCKET_TIMEOUT = 10.0


def build_get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\n\r\n".encode()


def build_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "User-Agent: bench"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def comment_webhook(
    *, comment_id: str, from_id: str, text: str = "guide please", occurred_at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed `comments` webhook body like Meta's (distinct ids -> distinct bytes)."""
    from meta.samples import comment_body, signed

    body = comment_body(
        account_id=DEMO_ACCOUNT_ID,
        text=text,
        from_id=from_id,
        from_username=f"fan.{from_id[-6:]}",
        comment_id=comment_id,
        occurred_at=occurred_at,
    )
    return signed(body, BENCH_APP_SECRET)


class Connection:
    """One keep-alive connection (reopened when the server closes it, as sync gunicorn does)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.buf = b""

    def request(self, raw: bytes) -> int:
        """Send one request, read the whole answer; returns the status (0 on a socket error)."""
        try:
            if self.sock is None:
                # No create_connection(): it resolves the address (getaddrinfo) every time.
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.sock.settimeout(SOCKET_TIMEOUT)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.connect(("127.0.0.1", self.port))
            self.sock.sendall(raw)
            status, close = self._read_response()
        except (OSError, ValueError):
            self.close()
            return 0
        if close:
            self.close()
        return status

    def _read_response(self) -> tuple[int, bool]:
        sock = self.sock
        assert sock is not None
        buf = self.buf
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed before the response head")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            # No length: the body ends when the server closes (HTTP/1.0 style).
            while chunk := sock.recv(65536):
                rest += chunk
            self.buf = b""
            return status, True
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed mid-body")
            rest += chunk
        self.buf = rest[length:]
        return status, close


@dataclass
class PhaseResult:
    """What the clients saw in one closed-loop phase."""

    latencies: list[float] = field(default_factory=list)  # seconds, successful (200) only
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    first_start: float = 0.0
    last_end: float = 0.0
    client_cpu: float = 0.0  # seconds, all client processes together
    timed_out: bool = False

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def elapsed(self) -> float:
        return max(self.last_end - self.first_start, 1e-9)

    @property
    def throughput(self) -> float:
        return self.sent / self.elapsed


def quiet_child_signals() -> None:
    """In a client process: the parent stops it (terminate) on Ctrl-C; no tracebacks here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _closed_loop_client(
    port: int,
    requests: Sequence[bytes],
    counter,  # mp.Value('l'): next index to send
    ready,  # mp.Barrier: all clients connected-ready, then go together
    deadline_after: float,
    out,  # mp.Queue
) -> None:
    quiet_child_signals()
    conn = Connection(port)
    records: list[tuple[float, float, int]] = []
    ready.wait(timeout=30)
    cpu0 = time.process_time()
    deadline = time.monotonic() + deadline_after
    limit = len(requests)
    while time.monotonic() < deadline:
        with counter.get_lock():
            index = counter.value
            if index >= limit:
                break
            counter.value = index + 1
        t0 = time.perf_counter()
        status = conn.request(requests[index])
        records.append((t0, time.perf_counter(), status))
    conn.close()
    out.put((records, time.process_time() - cpu0))


def run_closed_loop(
    port: int, requests: Sequence[bytes], concurrency: int, max_seconds: float
) -> PhaseResult:
    """Send every request in ``requests`` (or until ``max_seconds``) from ``concurrency`` client
    processes, each keeping one request in flight: a closed loop at fixed concurrency."""
    counter = CTX.Value("l", 0)
    ready = CTX.Barrier(concurrency)
    out = CTX.Queue()
    procs = [
        CTX.Process(
            target=_closed_loop_client,
            args=(port, requests, counter, ready, max_seconds, out),
            daemon=True,
        )
        for _ in range(concurrency)
    ]
    result = PhaseResult()
    interrupted = True
    try:
        for proc in procs:
            proc.start()
        collected = 0
        hard_deadline = time.monotonic() + max_seconds + 30
        records: list[tuple[float, float, int]] = []
        while collected < concurrency:
            remaining = hard_deadline - time.monotonic()
            if remaining <= 0:
                result.timed_out = True
                break
            try:
                part, cpu = out.get(timeout=min(remaining, 1.0))
            except Exception:  # queue.Empty
                if not any(p.is_alive() for p in procs) and out.empty():
                    break
                continue
            records.extend(part)
            result.client_cpu += cpu
            collected += 1
        interrupted = False
    finally:
        for proc in procs:
            if interrupted:
                proc.terminate()  # Ctrl-C or an error: stop the clients right away
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    if records:
        result.first_start = min(r[0] for r in records)
        result.last_end = max(r[1] for r in records)
    result.sent = len(records)
    for _, _, status in records:
        result.statuses[status] = result.statuses.get(status, 0) + 1
    result.latencies = sorted(t1 - t0 for t0, t1, status in records if status == 200)
    return result

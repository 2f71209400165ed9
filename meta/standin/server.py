"""The HTTP server: standard library only, HTTP/1.1 keep-alive, one thread per connection.

Quiet on purpose (no per-request stderr lines) so benchmarks at ~1,500 requests/s measure the
product, not terminal output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from .client import StandInControl
from .control import handle_control
from .errors import GraphError
from .graph import handle_graph
from .oauth import handle_oauth, route_path
from .state import State

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_standin"
MAX_BODY = 10 * 1024 * 1024
_REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # benchmarks open many connections at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State) -> None:
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut keep-alive connections too, or pooled clients would still be served after stop."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or disconnect mid-answer are normal here (delay/drop faults).
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MetaGraphStandIn/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers end with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        path, _, query_string = self.path.partition("?")
        try:
            raw_body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send_json(400, GraphError(100, "(#100) Invalid request body").body(), {})
            return
        state = self.server.state
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
            status, content_type, body = handle_control(
                state, self.command, path[len(CONTROL_PREFIX) :], query, raw_body
            )
            self._send(status, content_type, body, {})
            return
        try:
            endpoint = route_path(self.command, path)
            if endpoint is not None:
                outcome = handle_oauth(
                    state, endpoint, self.command, path, query_string, self.headers, raw_body
                )
            else:
                outcome = handle_graph(
                    state, self.command, path, query_string, self.headers, raw_body
                )
        except Exception:
            # A stand-in bug must not look like a dropped connection: answer like Meta's 500.
            logger.exception("stand-in failed on %s %s", self.command, self.path)
            self._send_json(500, GraphError(1, status=500, is_transient=True).body(), {})
            return
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.status is None:
            # A dropped answer: close without writing anything.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if outcome.raw is not None:
            self._send(outcome.status, outcome.content_type, outcome.raw, outcome.headers)
            return
        self._send_json(outcome.status, outcome.body, outcome.headers)

    def _send_json(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self._send(status, "application/json; charset=UTF-8", json.dumps(body).encode(), headers)

    def _send(self, status: int, content_type: str, body: bytes, headers: dict[str, str]) -> None:
        # One write for the whole answer: fewer syscalls than send_header() per line.
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + body)
        except OSError:
            # The client gave up (e.g. its timeout was shorter than a delay fault).
            self.close_connection = True


class StandIn:
    """A running stand-in: ``StandIn(port=0).start()``; ``url``; ``stop()``; context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        log_file: str | Path | None = None,
        state: State | None = None,
    ) -> None:
        self.state = state or State(log_path=log_file)
        # Bind now so ``url`` is known (port 0 picks a free port) before start().
        self._server = _Server((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> StandIn:
        """Serve in a daemon thread; returns self so ``s = StandIn().start()`` works."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"standin-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()
        self.state.close()

    def control(self) -> StandInControl:
        """A ``StandInControl`` for this server."""
        return StandInControl(self.url)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""Work a flooded account's backlog on CPU time nothing else wants.

The queue order decides what a worker takes next, but a viral backlog already running in
every worker process still takes the cores that a quiet account's comment then waits for.
On Linux a thread can join the SCHED_IDLE class, which only runs when no other thread
wants the CPU (unprivileged, it can never leave it). So each worker process keeps one such
thread and hands it the backlog's events: quiet events and sends preempt them, and the
backlog still uses every core they leave free. Where that is not possible the work simply
runs in the calling thread.
"""

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from django.db import close_old_connections

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _IdleThread:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self.idle = False
        self._thread = threading.Thread(target=self._serve, name="low-priority", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _serve(self) -> None:
        try:
            # pid 0: the calling thread, not the whole process.
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            self.idle = True
        except (AttributeError, OSError) as exc:
            logger.info("No idle CPU class here (%s); backlog work runs at normal priority", exc)
        self._ready.set()
        while True:
            future, work = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            # This thread has its own database connection: look after it as Celery's task
            # signals do for the main thread's (config/celery.py).
            close_old_connections()
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to the caller, raised there
                future.set_exception(exc)
            finally:
                close_old_connections()

    def run(self, work: Callable[[], T]) -> T:
        future: Future = Future()
        self._jobs.put((future, work))
        return future.result()


_threads: dict[int, _IdleThread] = {}
_lock = threading.Lock()


def _thread_for_this_process() -> _IdleThread:
    # Created lazily and per process id: Celery's prefork pool forks its children after
    # import, and a thread does not survive a fork.
    pid = os.getpid()
    with _lock:
        if pid not in _threads:
            _threads.clear()
            _threads[pid] = _IdleThread()
        return _threads[pid]


def run_at_low_priority(work: Callable[[], T]) -> T:
    """Run `work` in this process's idle-class thread and return its result (or raise)."""
    thread = _thread_for_this_process()
    if not thread.idle:
        return work()
    return thread.run(work)

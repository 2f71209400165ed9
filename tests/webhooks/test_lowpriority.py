"""The idle-class thread that works a flooded account's backlog."""

import os
import threading

import pytest

from webhooks.lowpriority import run_at_low_priority

needs_linux = pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE"), reason="the idle CPU class is Linux's"
)


@needs_linux
def test_work_runs_in_another_thread_of_the_idle_class_and_returns_its_result():
    def where():
        return threading.current_thread().name, os.sched_getscheduler(0)

    assert run_at_low_priority(where) == ("low-priority", os.SCHED_IDLE)
    # The caller keeps its own class: only the helper thread was moved.
    assert os.sched_getscheduler(0) != os.SCHED_IDLE


def test_an_error_in_the_work_is_raised_to_the_caller():
    def fails():
        raise ValueError("event 7 is broken")

    with pytest.raises(ValueError, match="event 7 is broken"):
        run_at_low_priority(fails)


def test_one_thread_serves_every_call_of_a_process():
    names = {run_at_low_priority(lambda: threading.get_ident()) for _ in range(5)}

    assert len(names) == 1

"""Per-task cost accounting inside a real Celery worker, for `bench/latency.py --profile`.

Imported by bench/whatif_settings.py when BENCH_WHAT_IF contains "instrument". For every task a
pool process runs it logs one line

    BENCH-TASK <name> wall_ms=.. cpu_ms=.. sql=.. redis=.. new_db_connections=..

(CPU time of the pool process, SQL statements through Django, Redis commands/pipelines through
redis-py, and PostgreSQL connections opened) so the benchmark can say where a comment's worker
time goes. Nothing here changes what the tasks do.
"""

from __future__ import annotations

import sys
import time

import redis
from celery.signals import task_postrun, task_prerun
from django.db.backends.signals import connection_created

_state: dict = {"sql": 0, "redis": 0, "connections": 0, "open": {}}

_execute_command = redis.Redis.execute_command
_pipeline_execute = redis.client.Pipeline.execute


def _counted_command(self, *args, **kwargs):
    _state["redis"] += 1
    return _execute_command(self, *args, **kwargs)


def _counted_pipeline(self, *args, **kwargs):
    _state["redis"] += 1  # one round trip
    return _pipeline_execute(self, *args, **kwargs)


redis.Redis.execute_command = _counted_command
redis.client.Pipeline.execute = _counted_pipeline


def _sql_counter(execute, sql, params, many, context):
    _state["sql"] += 1
    return execute(sql, params, many, context)


def _on_connection(sender, connection, **kwargs) -> None:
    _state["connections"] += 1


connection_created.connect(_on_connection, weak=False)


@task_prerun.connect(weak=False)
def _before(task_id=None, task=None, **kwargs) -> None:
    from django.db import connection

    wrapper = connection.execute_wrapper(_sql_counter)
    wrapper.__enter__()
    _state["open"][task_id] = (
        wrapper,
        time.perf_counter(),
        time.process_time(),
        _state["sql"],
        _state["redis"],
        _state["connections"],
    )


@task_postrun.connect(weak=False)
def _after(task_id=None, task=None, **kwargs) -> None:
    opened = _state["open"].pop(task_id, None)
    if opened is None:
        return
    wrapper, wall0, cpu0, sql0, redis0, conn0 = opened
    # Celery's Django fixup closes the connection after this signal; measure before it does.
    wall = (time.perf_counter() - wall0) * 1000
    cpu = (time.process_time() - cpu0) * 1000
    wrapper.__exit__(None, None, None)
    sys.__stdout__.write(
        f"BENCH-TASK {task.name} wall_ms={wall:.2f} cpu_ms={cpu:.2f} "
        f"sql={_state['sql'] - sql0} redis={_state['redis'] - redis0} "
        f"new_db_connections={_state['connections'] - conn0}\n"
    )
    sys.__stdout__.flush()

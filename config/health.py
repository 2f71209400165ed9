"""Health of the parts the product depends on, for /healthz/."""

import time
from pathlib import Path

from django.conf import settings
from django.db import connection


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        state = "ok"
    except Exception as exc:
        detail, state = f"{type(exc).__name__}: {exc}", "down"
    return {
        "state": state,
        "detail": detail,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if not folder.is_dir():
            raise RuntimeError(f"broker folder {folder} is missing")
        return "filesystem"
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport.driver_name


def _redis() -> str:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.ping()
    return "redis"


def health_report() -> tuple[bool, dict]:
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    if settings.REDIS_URL:
        checks["redis"] = _timed(_redis)
    healthy = all(check["state"] == "ok" for check in checks.values())
    return healthy, {"status": "ok" if healthy else "degraded", "dependencies": checks}

"""The web process's access log never keeps OAuth codes, states or the verify token."""

import datetime
import logging
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config

from config.access_log import RedactingLogger, redact_query, redact_uri

ROOT = Path(__file__).resolve().parents[1]
CODE = "AQDx-one-time-code"
STATE = "eyJ1Ijo1fQ:signed-state"


def _access_line(environ: dict) -> str:
    logger = RedactingLogger(Config())
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger.access_log.handlers = [Keep()]
    logger.access_log.setLevel(logging.INFO)
    logger.cfg.set("accesslog", "-")
    resp = SimpleNamespace(status="302 Found", sent=0, headers=[])
    req = SimpleNamespace(headers=[("REFERER", environ.get("HTTP_REFERER", "-"))])
    logger.access(resp, req, environ, datetime.timedelta(milliseconds=12))
    return "\n".join(records)


def test_the_oauth_callbacks_code_and_state_never_reach_the_access_log():
    query = f"code={CODE}&state={STATE}"
    line = _access_line(
        {
            "REQUEST_METHOD": "GET",
            "RAW_URI": f"/connect/instagram/callback/?{query}#_",
            "PATH_INFO": "/connect/instagram/callback/",
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "10.0.0.1",
            "HTTP_REFERER": f"https://app.example/connect/instagram/callback/?{query}",
        }
    )
    assert "/connect/instagram/callback/?code=***&state=***" in line
    assert CODE not in line and STATE not in line


def test_the_webhook_handshakes_verify_token_is_masked_and_the_challenge_kept():
    assert redact_query("hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=42") == (
        "hub.mode=subscribe&hub.verify_token=***&hub.challenge=42"
    )


def test_ordinary_urls_are_left_alone():
    assert redact_uri("/admin/messaging/delivery/?q=fay.films") == (
        "/admin/messaging/delivery/?q=fay.films"
    )
    assert redact_uri("/healthz/") == "/healthz/"


def test_an_unparsable_query_is_dropped_not_leaked():
    assert redact_query("code=%zz&&==") in ("***", "code=***")


def test_the_procfiles_web_process_logs_through_it():
    for name in ("Procfile", "Procfile.demo"):
        web = next(
            line for line in (ROOT / name).read_text().splitlines() if line.startswith("web:")
        )
        assert "--logger-class config.access_log.RedactingLogger" in web

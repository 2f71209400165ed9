"""The newcomer's first run: no configuration at all (SQLite, filesystem broker), real
processes started the way the demo starts them, and a simulated comment answered.

The environment is the one bin/demo gives its processes: nothing from the runner's own
configuration (DEBUG included: production is the default), then exactly what bin/demo-env
exports (DEBUG=1 and the stand-in's bases), so the test fails if the demo stops setting them.
"""

import json
import os
import subprocess

import pytest

from meta.standin import StandInControl
from tests.e2e.processes import BASE_DIR, VENV_BIN, Process, free_port, start_worker

pytestmark = pytest.mark.e2e

CONFIG_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "EMAIL_URL",
)


def _manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def demo_environment(base: dict[str, str], standin_port: int) -> dict[str, str]:
    """`base` plus what bin/demo exports (it sources bin/demo-env), read from a shell."""
    shell_env = {**base, "STANDIN_PORT": str(standin_port)}
    completed = subprocess.run(
        ["bash", "-c", ". bin/demo-env && env -0"],
        cwd=BASE_DIR,
        env=shell_env,
        capture_output=True,
        check=True,
        timeout=30,
    )
    pairs = completed.stdout.decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_zero_config_demo_answers_a_comment(tmp_path):
    standin_port, web_port = free_port(), free_port()
    newcomer = {key: value for key, value in os.environ.items() if key not in CONFIG_VARIABLES}
    newcomer["VAR_DIR"] = str(tmp_path / "var")
    env = demo_environment(newcomer, standin_port)
    assert env["DEBUG"] == "1"
    _manage(env, "migrate", "--noinput", "-v0")
    assert "demo.studio" in _manage(env, "load_demo")

    processes = []
    try:
        standin = Process(
            "standin",
            [str(VENV_BIN / "python"), "-m", "meta.standin", "--port", str(standin_port)],
            env,
            tmp_path,
        )
        processes.append(standin)
        web = Process(
            "web",
            [
                str(VENV_BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                "2",
            ],
            env,
            tmp_path,
        )
        processes.append(web)
        processes.append(start_worker(env, tmp_path))
        web.wait_for_output("Booting worker", timeout=30)
        standin.wait_for_output("127.0.0.1", timeout=30)

        output = _manage(
            env,
            "simulate_comment",
            "guide please",
            "--url",
            f"http://127.0.0.1:{web_port}/webhooks/instagram/",
        )
        assert "-> 200" in output

        control = StandInControl(f"http://127.0.0.1:{standin_port}")
        private = control.wait_for("private_reply", 1, timeout=30)
        public = control.wait_for("comment_reply", 1, timeout=30)
        assert private[0]["body"]["message"]["text"].startswith("Here is the guide")
        assert public[0]["body"]["message"] in {
            "Sent! Check your DMs 📬",
            "On its way to your inbox!",
        }

        def sent_records():
            records = json.loads(_manage(env, "export_deliveries", "--format", "json"))
            return records if [r["status"] for r in records] == ["sent", "sent"] else None

        from tests.e2e.processes import wait_until

        records = wait_until(sent_records, 20, "both deliveries recorded as sent")
        assert {record["kind"] for record in records} == {"public_reply", "private_reply"}

        # The flow: a "link" comment gets a private reply with a button; replying with the
        # button's title continues the flow and the link goes out as a DM.
        url = f"http://127.0.0.1:{web_port}/webhooks/instagram/"
        _manage(env, "simulate_comment", "link pls", "--from-id", "1789000000000077", "--url", url)
        offer = control.wait_for("private_reply", 2, timeout=30)[-1]
        assert offer["body"]["message"]["quick_replies"][0]["title"] == "Send me the link"
        _manage(
            env, "simulate_message", "Send me the link", "--from-id", "1789000000000077",
            "--url", url,
        )  # fmt: skip
        (link,) = control.wait_for("send_message", 1, timeout=30)
        assert link["body"]["message"] == {"text": "Here you go: https://example.com/link"}
        assert (tmp_path / "var" / "db.sqlite3").exists()
    finally:
        for process in reversed(processes):
            process.stop()

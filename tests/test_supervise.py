"""bin/supervise, what bin/demo runs its processes with: a process that stops is restarted and
the others go on (honcho stopped them all, so a newcomer saw "connection refused")."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SUPERVISE = Path(__file__).resolve().parents[1] / "bin" / "supervise"


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


@pytest.fixture
def supervised(tmp_path):
    procfile = tmp_path / "Procfile"
    sleep = f"{sys.executable} -c 'import time; time.sleep(600)'"
    procfile.write_text(f"# two processes\nfirst: {sleep}\nsecond: {sleep}\n")
    status_file = tmp_path / "status.json"
    supervisor = subprocess.Popen(
        [sys.executable, str(SUPERVISE), "-f", str(procfile), "--status-file", str(status_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def status():
        try:
            return json.loads(status_file.read_text())
        except (OSError, ValueError):
            return None

    try:
        wait_for(lambda: (s := status()) and all(p["pid"] for p in s.values()))
        yield supervisor, status
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait(10)


def test_a_killed_process_is_restarted_and_the_others_go_on(supervised):
    supervisor, status = supervised
    before = status()
    os.kill(before["first"]["pid"], signal.SIGKILL)

    after = wait_for(lambda: (s := status())["first"]["starts"] == 2 and s["first"]["pid"] and s)

    assert after["first"]["exits"][0]["exit"] == "signal 9"
    assert alive(after["first"]["pid"])
    assert after["first"]["pid"] != before["first"]["pid"]
    # The other process was not touched, and the supervisor runs on.
    assert after["second"] == before["second"]
    assert alive(before["second"]["pid"])
    assert supervisor.poll() is None


def test_stopping_the_supervisor_stops_every_process(supervised):
    supervisor, status = supervised
    pids = [p["pid"] for p in status().values()]

    os.kill(supervisor.pid, signal.SIGTERM)
    supervisor.wait(15)

    assert supervisor.returncode == 0
    wait_for(lambda: not any(alive(pid) for pid in pids))
    output = supervisor.stdout.read().decode()
    assert "first started with pid" in output and "stopping every process" in output

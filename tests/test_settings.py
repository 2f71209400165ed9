"""Production is the default: settings loaded in a fresh process with a given environment.

Each case starts from an environment without any of the runner's configuration (bin/test sets
DEBUG=1 for the suite itself), so what is checked is what a deploy gets.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

BASE_DIR = Path(__file__).resolve().parents[1]
KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
SECRETS = {
    "SECRET_KEY": "s" + secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "dm.example.com",
    "META_APP_ID": "1234",
    "META_APP_SECRET": "app-secret",
    "META_VERIFY_TOKEN": "verify",
    "TOKEN_ENCRYPTION_KEY": "token-key",
    "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
}
SHOWN = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "META_APP_SECRET",
    "TOKEN_ENCRYPTION_KEYS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "X_FRAME_OPTIONS",
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_USE_TLS",
    "CACHES",
)
PRINT_SETTINGS = (
    "import json, django; from django.conf import settings; django.setup(); "
    f"print(json.dumps({{name: getattr(settings, name) for name in {SHOWN!r}}}, default=str))"
)


def clean_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in KEEP}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path / "var"))
    env.update(variables)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(env: dict[str, str]) -> dict:
    completed = run(env, "-c", PRINT_SETTINGS)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def refusal(env: dict[str, str]) -> str:
    completed = run(env, "-c", PRINT_SETTINGS)
    assert completed.returncode != 0, completed.stdout
    assert "ImproperlyConfigured" in completed.stderr
    return completed.stderr.strip().splitlines()[-1]


def test_unset_debug_is_production_and_refuses_to_start_without_secrets(tmp_path):
    message = refusal(clean_env(tmp_path))
    assert "Set SECRET_KEY" in message


def test_unset_debug_with_the_secrets_runs_with_production_values(tmp_path):
    values = load(clean_env(tmp_path, **SECRETS))
    assert values["DEBUG"] is False
    assert values["SECRET_KEY"] == SECRETS["SECRET_KEY"]
    assert values["ALLOWED_HOSTS"] == ["dm.example.com"]
    assert values["TOKEN_ENCRYPTION_KEYS"] == ["token-key"]
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["X_FRAME_OPTIONS"] == "DENY"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_each_production_secret_is_required_outside_debug(tmp_path, missing):
    variables = {name: value for name, value in SECRETS.items() if name != missing}
    assert f"Set {missing}" in refusal(clean_env(tmp_path, **variables))


def test_development_values_only_when_debug_is_explicitly_on(tmp_path):
    values = load(clean_env(tmp_path, DEBUG="1"))
    assert values["DEBUG"] is True
    assert values["ALLOWED_HOSTS"] == ["*"]
    assert values["META_APP_SECRET"] == "demo-app-secret"
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


def test_email_is_configured_with_email_url(tmp_path):
    values = load(clean_env(tmp_path, **SECRETS))
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (values["EMAIL_HOST"], values["EMAIL_PORT"]) == ("smtp.example.com", 587)
    assert values["EMAIL_HOST_USER"] == "mailer"
    assert values["EMAIL_USE_TLS"] is True


@pytest.mark.parametrize(
    "variables",
    [
        {"EMAIL_URL": "consolemail://"},
        {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"},
        {"EMAIL_URL": "filemail:///tmp/mail"},
    ],
)
def test_email_backends_that_log_links_are_refused_outside_debug(tmp_path, variables):
    message = refusal(clean_env(tmp_path, **{**SECRETS, **variables}))
    assert "refused when DEBUG is off" in message


@pytest.mark.parametrize(
    ("redis_url", "backend"),
    [
        ("redis://127.0.0.1:6379/5", "django.core.cache.backends.redis.RedisCache"),
        ("", "django.core.cache.backends.db.DatabaseCache"),
    ],
)
def test_the_cache_is_shared_by_every_worker(tmp_path, redis_url, backend):
    values = load(clean_env(tmp_path, **SECRETS, REDIS_URL=redis_url))
    assert values["CACHES"]["default"]["BACKEND"] == backend


def production_env_example() -> dict[str, str]:
    """docs/configuration.md's production `.env`, each `<placeholder>` filled in."""
    text = (BASE_DIR / "docs" / "configuration.md").read_text()
    section = text.split("## Production `.env` example", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    variables = {}
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, value = line.split("=", 1)
        variables[name] = re.sub(r"<[^>]*>", lambda _: secrets.token_urlsafe(40), value)
    return variables


def test_check_deploy_is_clean_in_the_documented_production_configuration(tmp_path):
    example = production_env_example()
    assert example["DEBUG"] == "off"
    completed = run(
        clean_env(tmp_path, **example),
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues" in completed.stdout


def test_demo_environment_turns_debug_on(tmp_path):
    """bin/demo sources bin/demo-env: the demo is the one place development values come from."""
    env = clean_env(tmp_path)
    shell = subprocess.run(
        ["bash", "-c", '. bin/demo-env && printf %s "$DEBUG"'],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == "1"


@pytest.mark.django_db
def test_console_pages_carry_a_content_security_policy():
    response = Client().get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert response["X-Frame-Options"] == "DENY"


DATABASE_OPTIONS = (
    "import json, django; from django.conf import settings; django.setup(); "
    "db = settings.DATABASES['default']; print(json.dumps({'binding': "
    "db['OPTIONS'].get('server_side_binding'), 'no_cursors': db['DISABLE_SERVER_SIDE_CURSORS'], "
    "'prepare': db['OPTIONS'].get('prepare_threshold')}))"
)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, {"binding": True, "no_cursors": False, "prepare": 5}),
        (
            {"DATABASE_TRANSACTION_POOLING": "1"},
            {"binding": False, "no_cursors": True, "prepare": None},
        ),
        (
            {"DATABASE_SERVER_SIDE_BINDING": "0"},
            {"binding": False, "no_cursors": False, "prepare": None},
        ),
        ({"DATABASE_PREPARE_THRESHOLD": "2"}, {"binding": True, "no_cursors": False, "prepare": 2}),
        (
            {"DATABASE_PREPARE_THRESHOLD": "0"},
            {"binding": True, "no_cursors": False, "prepare": None},
        ),
    ],
)
def test_postgresql_prepares_statements_unless_a_transaction_pooler_sits_between(
    tmp_path, variables, expected
):
    env = clean_env(
        tmp_path, **SECRETS, DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", **variables
    )
    completed = run(env, "-c", DATABASE_OPTIONS)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == expected

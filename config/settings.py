"""Settings, read from the environment (and a `.env` file) with django-environ.

Production is the default: unless DEBUG is explicitly on, every production secret must be
set (a bad deploy fails at start instead of running with development values) and the
security settings are on, so that `manage.py check --deploy` is clean in the configuration
docs/configuration.md shows. `bin/demo` and `bin/test` turn DEBUG on; with it, the app runs
on SQLite and a broker that needs no server (kombu's filesystem transport, made safe for
several processes in config/broker.py) with development values, so a newcomer's first run
needs nothing.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

# Runtime files (SQLite database, filesystem broker, beat schedule); movable for tests.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Development values exist only so the zero-configuration demo runs (bin/demo sets DEBUG=1).
DEBUG = env.bool("DEBUG", default=False)


def _secret(name: str, dev_default: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"Set {name}: it is required when DEBUG is off.")


SECRET_KEY = _secret("SECRET_KEY", "dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else [])
if not ALLOWED_HOSTS:
    # Django would answer 400 to every request: refuse to start instead, saying why.
    raise ImproperlyConfigured(
        "Set ALLOWED_HOSTS (the host names the app answers to, comma-separated): it is "
        "required when DEBUG is off."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Django's admin with the console's site (its dashboard home page) as admin.site.
    "config.console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "triggers",
    "webhooks",
    "messaging",
    "config.console.apps.ConsoleConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The console's "Connect an Instagram account" link and reconnect banner.
                "accounts.context_processors.connect_nav",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker share the file: WAL lets readers and one writer overlap, IMMEDIATE
    # transactions avoid "database is locked" upgrades, and the timeout waits out a writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so the end-to-end tests' worker process sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Behind a pooler in transaction mode (PgBouncer), a client's statements may run on
    # different server connections: no server-side cursors, no prepared statements.
    DATABASE_TRANSACTION_POOLING = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_TRANSACTION_POOLING
    # Server-side parameters, and psycopg prepares a statement once a connection has run it
    # DATABASE_PREPARE_THRESHOLD times, so PostgreSQL stops parsing and planning the hot
    # paths' statements for every comment. Django leaves preparing off unless asked (for
    # poolers in transaction mode, where a prepared statement may be on another connection).
    DATABASE_SERVER_SIDE_BINDING = env.bool(
        "DATABASE_SERVER_SIDE_BINDING", default=not DATABASE_TRANSACTION_POOLING
    )
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = (
        DATABASE_SERVER_SIDE_BINDING
    )
    DATABASE_PREPARE_THRESHOLD = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
    if DATABASE_SERVER_SIDE_BINDING and not DATABASE_TRANSACTION_POOLING:
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = DATABASE_PREPARE_THRESHOLD or None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# How a stored webhook event reaches the broker. `relay`: the request only INSERTs (and
# NOTIFYs); one outbox relay, a thread in each worker and beat holding a PostgreSQL advisory
# lock, publishes it (webhooks/relay.py), so the webhook answers without a broker round trip.
# `request`: the request publishes right after the INSERT (the only way without PostgreSQL:
# the zero-configuration demo on SQLite).
_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
WEBHOOK_DISPATCH = env.str("WEBHOOK_DISPATCH", default="relay" if _POSTGRES else "request")
if WEBHOOK_DISPATCH not in ("relay", "request"):
    raise ImproperlyConfigured(
        f"WEBHOOK_DISPATCH={WEBHOOK_DISPATCH!r}: set it to `relay` or `request`."
    )
if WEBHOOK_DISPATCH == "relay" and not _POSTGRES:
    raise ImproperlyConfigured(
        "WEBHOOK_DISPATCH=relay needs PostgreSQL (LISTEN/NOTIFY and advisory locks): set "
        "DATABASE_URL to a PostgreSQL database, or WEBHOOK_DISPATCH=request."
    )
# The relay looks for stored events without a notification this often (a missed NOTIFY, a
# relay that just took over).
WEBHOOK_RELAY_POLL_SECONDS = env.float("WEBHOOK_RELAY_POLL_SECONDS", default=1.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# --- Sign-in (django-allauth): invitations only, no open sign-up -----------------------------
ACCOUNT_ADAPTER = "accounts.adapters.InvitationOnlyAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_FORMS = {"signup": "accounts.forms.InvitedSignupForm"}
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_URL = "/accounts/login/"
# Optional second factor: each person can turn on an authenticator app (TOTP) and recovery
# codes at /accounts/2fa/; the admin signs in through allauth, so it asks for the code too.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Instagram DM automation")
# Invitations expire after this many days.
INVITATION_DAYS = env.int("INVITATION_DAYS", default=7)

# --- Email: invitations and password resets ---------------------------------------------------
# EMAIL_URL the usual django-environ way: smtp+tls://user:password@host:587, smtp+ssl://...:465,
# or dummymail:// (no email at all: invitation links are shown to the inviting admin only).
# The console backend prints working sign-in links into the web log, so it is for DEBUG only.
EMAIL_URL = env.str("EMAIL_URL", default="consolemail://" if DEBUG else "")
if not EMAIL_URL:
    raise ImproperlyConfigured(
        "Set EMAIL_URL (e.g. smtp+tls://user:password@smtp.example.com:587, or dummymail:// "
        "to send no email): it is required when DEBUG is off."
    )
_email = env.email_url_config(EMAIL_URL)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
# A mail server that does not answer must not hold a web request (an invitation) for long.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Kept for installations that set it before EMAIL_URL existed: it overrides EMAIL_URL's backend.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=EMAIL_BACKEND)
_LOGGING_EMAIL_BACKENDS = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)
if not DEBUG and EMAIL_BACKEND in _LOGGING_EMAIL_BACKENDS:
    raise ImproperlyConfigured(
        f"EMAIL_URL/EMAIL_BACKEND select {EMAIL_BACKEND}, which writes working password-reset "
        "and invitation links where the server's logs or files keep them: it is refused when "
        "DEBUG is off. Use smtp://... (or dummymail:// to send no email)."
    )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

LANGUAGE_CODE = "en-us"
# Times to the second, year first (config/formats).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# The admin's CSS and JS, served by the app itself (no separate web server needed).
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production values unless DEBUG is on; `check --deploy` is clean with them) ------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Browsers remember to use HTTPS only; a year, subdomains included (docs/configuration.md).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
X_FRAME_OPTIONS = "DENY"
# Liveness probes and Meta's webhook come over plain HTTP from local proxies too.
SECURE_REDIRECT_EXEMPT = [r"^livez/$", r"^healthz/$"]
# The console's pages load scripts, styles and images from the app only (the admin's inline
# style attributes aside); forms post to the app and Meta's login dialogs (config/security.py).
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    # Authenticator-app QR codes (allauth.mfa) are data: images.
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# --- Meta ----------------------------------------------------------------------------------
META_GRAPH_VERSION = "v24.0"
META_APP_ID = _secret("META_APP_ID", "demo-app-id")
META_APP_SECRET = _secret("META_APP_SECRET", "demo-app-secret")
META_VERIFY_TOKEN = _secret("META_VERIFY_TOKEN", "demo-verify-token")
META_GRAPH_URL = env.str(
    "META_GRAPH_URL", default=f"https://graph.facebook.com/{META_GRAPH_VERSION}"
)
META_INSTAGRAM_GRAPH_URL = env.str(
    "META_INSTAGRAM_GRAPH_URL", default=f"https://graph.instagram.com/{META_GRAPH_VERSION}"
)
META_OAUTH_URL = env.str("META_OAUTH_URL", default=f"https://www.facebook.com/{META_GRAPH_VERSION}")
INSTAGRAM_APP_ID = env.str("INSTAGRAM_APP_ID", default="")
INSTAGRAM_APP_SECRET = env.str("INSTAGRAM_APP_SECRET", default="")
INSTAGRAM_OAUTH_URL = env.str("INSTAGRAM_OAUTH_URL", default="https://www.instagram.com")
INSTAGRAM_API_URL = env.str("INSTAGRAM_API_URL", default="https://api.instagram.com")
# (connect, read) seconds for every Graph API call.
META_HTTP_TIMEOUT = (
    env.float("META_CONNECT_TIMEOUT", default=3.05),
    env.float("META_READ_TIMEOUT", default=10.0),
)

# Comma-separated; the first key encrypts, all of them decrypt (rotation without downtime).
TOKEN_ENCRYPTION_KEYS = env.list("TOKEN_ENCRYPTION_KEY", default=[])
if not TOKEN_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("Set TOKEN_ENCRYPTION_KEY: it is required when DEBUG is off.")
    TOKEN_ENCRYPTION_KEYS = [f"derived-from-secret-key:{SECRET_KEY}"]

SEND_LIMIT_PER_SECOND = env.int("SEND_LIMIT_PER_SECOND", default=100)
PRIVATE_REPLY_LIMIT_PER_HOUR = env.int("PRIVATE_REPLY_LIMIT_PER_HOUR", default=750)
# Public comment replies count against Meta's business use case quota, not the Send API's.
COMMENT_REPLY_LIMIT_PER_SECOND = env.int("COMMENT_REPLY_LIMIT_PER_SECOND", default=100)
# Meta's own per-second budgets for private replies to live comments and for audio or video
# sends (meta-api.md section 5).
LIVE_PRIVATE_REPLY_LIMIT_PER_SECOND = env.int("LIVE_PRIVATE_REPLY_LIMIT_PER_SECOND", default=100)
MEDIA_SEND_LIMIT_PER_SECOND = env.int("MEDIA_SEND_LIMIT_PER_SECOND", default=10)
# The address people reach this app at (https://dm.example.com): tracked links in messages
# (/l/<token>) are built on it. Unset: links are sent as written and clicks are not counted.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")
# Quick replies and postback buttons in private replies to comments: reports conflict on
# whether Meta shows them to commenters [seen]. Off: they are left out and a typed reply
# continues the flow instead.
PRIVATE_REPLY_CHOICES = env.bool("PRIVATE_REPLY_CHOICES", default=True)
# bin/demo's ports: the simulate_* commands post to this demo and name its stand-in.
DEMO_PORT = env.int("DEMO_PORT", default=8000)
STANDIN_PORT = env.int("STANDIN_PORT", default=8001)

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
REDIS_URL = env.str("REDIS_URL", default="")
# The cache holds allauth's sign-in and password-reset rate limits: shared by every gunicorn
# worker (Redis, or the database, whose table `migrate` creates), never per process.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "app_cache"}
    )
}
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
CELERY_WORKER_ENABLE_REMOTE_CONTROL = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR.mkdir(exist_ok=True)
    # kombu's filesystem transport with atomic writes and claims (config/broker.py): the
    # stock one loses the worker to half-written files when web, worker and beat share it.
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    # One folder shared by web, worker and beat; polled often so the demo answers fast.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queues"),
        "data_folder_out": str(BROKER_DIR / "queues"),
        "polling_interval": 0.05,
    }
    (BROKER_DIR / "queues").mkdir(exist_ok=True)
    # No fanout exchange on this broker: remote control (and with it mingle and gossip,
    # which Celery enables only on Redis and AMQP) stays off.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
elif CELERY_BROKER_URL.startswith("redis"):
    # A message unacknowledged this long is redelivered; our tasks are idempotent.
    # "priority": queues are taken in the order of CELERY_TASK_QUEUES (see there).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 600,
        "queue_order_strategy": "priority",
    }

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Keep database connections across tasks (closed only when broken or past CONN_MAX_AGE, by
# the task signal handlers in config/celery.py), instead of reconnecting for every task.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_DEFAULT_QUEUE = "events"
# Intake processing and sending have separate queues so a send backlog never delays parsing.
# A flooded account's events go to events_bulk. Token upkeep (refresh, daily check) has its
# own queue so a fan-out over every account never queues in front of intake or sends.
# With Redis, workers take from them in this order, not in turn: sends first (they are few:
# the pacer hands each account at most PACER_MAX_IN_FLIGHT at a time, timed to its budget),
# then quiet accounts' events, and a flooded account's backlog only when nothing else
# waits (measured in bench/burst.py). The filesystem broker takes them in turn.
# `intent` holds the events of accounts with an enabled intent trigger (webhooks.services.
# intake_queue_for), so that only a worker consuming it loads the sentence model (hundreds of
# MB) and a worker started without it stays small. It comes right after `events`: those are
# quiet accounts' comments too, someone waiting for an answer, a few ms dearer each (the
# encode); ahead of token upkeep and a flooded account's backlog for the same reason `events` is.
CELERY_TASK_QUEUES = (
    Queue("sends"),
    Queue("events"),
    Queue("intent"),
    Queue("maintenance"),
    # Backlog work of flooded accounts, taken last and never in every worker slot at once
    # (config/backlog.py): their sends while they have a backlog, then their events.
    Queue("sends_bulk"),
    Queue("events_bulk"),
)
# How long a process trusts its list of accounts using intent triggers before reading it again
# (one query per process per interval; a trigger saved in the same process is seen at once).
INTENT_ROUTING_REFRESH_SECONDS = env.float("INTENT_ROUTING_REFRESH_SECONDS", default=5.0)
# Worker slots per node that backlog work (the *_bulk queues) never takes, so a quiet
# account's comment always finds one; a backlog task finding no backlog slot within the wait
# goes back to its queue for the retry time.
BACKLOG_RESERVED_SLOTS = env.int("BACKLOG_RESERVED_SLOTS", default=1)
BACKLOG_WAIT_SECONDS = env.float("BACKLOG_WAIT_SECONDS", default=0.05)
BACKLOG_RETRY_SECONDS = env.float("BACKLOG_RETRY_SECONDS", default=0.5)
# More webhook events than this for one account within 10 s marks it as flooded.
HOT_ACCOUNT_EVENTS_PER_WINDOW = env.int("HOT_ACCOUNT_EVENTS_PER_WINDOW", default=20)
CELERY_TASK_ROUTES = {
    "webhooks.*": {"queue": "events"},
    "messaging.send_delivery": {"queue": "sends"},
    "messaging.pace_account": {"queue": "sends"},
    "messaging.recover_sends": {"queue": "sends"},
    "messaging.resolve_delivery": {"queue": "sends"},
    "messaging.*": {"queue": "events"},
    "triggers.*": {"queue": "events"},
    "accounts.*": {"queue": "maintenance"},
    "console.*": {"queue": "maintenance"},
    "webhooks.read_interactions": {"queue": "maintenance"},
    "messaging.fill_contact_profiles": {"queue": "maintenance"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Recovery of sends whose worker died, and hand-over of unknown sends to a check with Meta.
SEND_RECOVERY_INTERVAL_SECONDS = env.float("SEND_RECOVERY_INTERVAL_SECONDS", default=2.0)
SWEEP_INTERVAL_SECONDS = env.float("SWEEP_INTERVAL_SECONDS", default=10.0)
CELERY_BEAT_SCHEDULE = {
    "requeue-pending-events": {
        "task": "webhooks.requeue_pending_events",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "sweep-deliveries": {
        "task": "messaging.sweep_deliveries",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    # Sends whose worker died (lease passed) and `unknown` sends due for a check with Meta.
    "recover-sends": {
        "task": "messaging.recover_sends",
        "schedule": SEND_RECOVERY_INTERVAL_SECONDS,
        # A run not taken in time is dropped, never piled up: the next one does the same.
        "options": {"expires": max(10.0, 5 * SEND_RECOVERY_INTERVAL_SECONDS)},
    },
    "sweep-flows": {
        "task": "triggers.sweep_flows",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    # What people did, read from processed events (the console's timeline and search).
    "read-interactions": {
        "task": "webhooks.read_interactions",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    # The dashboard's daily figures (console.rollups).
    "count-figures": {
        "task": "console.count_figures",
        "schedule": 60.0,
    },
    # Usernames of people who only sent DMs, from Meta's user profile.
    "fill-contact-profiles": {
        "task": "messaging.fill_contact_profiles",
        "schedule": 300.0,
    },
    # Expired pending connections; data deletions whose task was lost.
    "sweep-accounts": {
        "task": "accounts.sweep",
        "schedule": 60.0,
    },
    # Wall-clock schedules, not intervals: an interval restarts with beat, and a beat
    # restarted more often than daily would never run a daily job (docs/tokens.md).
    "refresh-tokens": {
        "task": "accounts.refresh_tokens",
        "schedule": crontab(minute=23, hour="*/6"),
    },
    "check-tokens": {
        "task": "accounts.check_tokens",
        "schedule": crontab(minute=17, hour=3),
    },
}
# Instagram-Login tokens (60 days) are refreshed this many days before they expire.
TOKEN_REFRESH_DAYS_BEFORE_EXPIRY = env.int("TOKEN_REFRESH_DAYS_BEFORE_EXPIRY", default=10)
# The daily check warns (status reason, check_tokens output) this many days before a token
# or Meta's data access that cannot be refreshed runs out.
TOKEN_EXPIRY_WARNING_DAYS = env.int("TOKEN_EXPIRY_WARNING_DAYS", default=14)
# An event or delivery left pending this long is handed to the queue again by the sweeper.
PENDING_EVENT_GRACE_SECONDS = env.float("PENDING_EVENT_GRACE_SECONDS", default=15.0)
# A sending worker holds a lease on its send, renewed every third of this while it works:
# a send whose lease passed is settled by the sweeper (its worker died) within seconds.
SEND_LEASE_SECONDS = env.float("SEND_LEASE_SECONDS", default=5.0)
# Only for sends claimed without a lease (by a worker of an older release): the old rule.
# Must exceed the longest Graph call (connect + read timeouts) plus the pre-send checks.
STALE_SENDING_SECONDS = env.float("STALE_SENDING_SECONDS", default=60.0)
# An `unknown` send is checked with Meta this long after its call started (time for Meta to
# finish a request it took), then again with backoff (messaging/resolve.py).
UNKNOWN_CHECK_AFTER_SECONDS = env.float("UNKNOWN_CHECK_AFTER_SECONDS", default=30.0)
# Checks with Meta before an `unknown` send is left to a person (0: never ask Meta).
UNKNOWN_MAX_CHECKS = env.int("UNKNOWN_MAX_CHECKS", default=5)
# Sends of an account that needs reconnecting wait this long (and never past their window).
HOLD_LIMIT_SECONDS = env.float("HOLD_LIMIT_SECONDS", default=6 * 3600.0)
# A rate-limited account pauses this long when Meta states no time to regain access.
RATE_LIMIT_PAUSE_SECONDS = env.float("RATE_LIMIT_PAUSE_SECONDS", default=60.0)
# Sends of one account handed to the send queue at a time; the rest wait in the database.
PACER_MAX_IN_FLIGHT = env.int("PACER_MAX_IN_FLIGHT", default=8)
# The worker that processed an event sends what it queued for now itself (no send task and
# broker round trip per send); off: every send is its own task on the sends queue.
SEND_AFTER_PROCESSING = env.bool("SEND_AFTER_PROCESSING", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

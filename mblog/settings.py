"""Settings come from the environment (see .env.example); production differs only by env.

Nothing set: SQLite file + in-process channel layer (one server process only).
DATABASE_URL=postgres://…  and  REDIS_URL=redis://…  for production.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from mblog.envfile import parse as parse_env_file

BASE_DIR = Path(__file__).resolve().parent.parent

# A .env file beside manage.py (or DJANGO_ENV_FILE), read with the same parser as
# deploy/envexec.py; variables already in the environment win over it.
_env_file = Path(os.environ.get("DJANGO_ENV_FILE") or BASE_DIR / ".env")
if os.environ.get("DJANGO_ENV_FILE") and not _env_file.is_file():
    raise ImproperlyConfigured(f"DJANGO_ENV_FILE={_env_file} does not exist")
if _env_file.is_file():
    for _key, _value in parse_env_file(_env_file).items():
        os.environ.setdefault(_key, _value)

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Read directly: django-environ would take a value starting with `$` for a reference
# to another variable, and a secret key may start with anything.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Production refuses to start without it "
            "(set DJANGO_DEBUG=1 for a development server with a throwaway key)."
        )
    SECRET_KEY = "insecure-development-key-not-for-production"

# Rotating the key: the new one in DJANGO_SECRET_KEY, the old ones here (comma-separated)
# until sessions signed with them have expired; nobody is signed out meanwhile.
SECRET_KEY_FALLBACKS = [k for k in env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[]) if k.strip()]

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "mblog",
    "inform",
    "chat",
    "tokens",
    "away",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "mblog.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tokens.middleware.TokenAuthMiddleware",  # before CSRF: its process_view runs first
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mblog.urls"
ASGI_APPLICATION = "mblog.asgi.application"
AUTH_USER_MODEL = "mblog.User"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

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
                "inform.context_processors.badge",
            ],
        },
    },
]

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=0)
# Under ASGI every database_sync_to_async call would open a fresh PostgreSQL connection
# (persistent connections are per thread, so Django advises CONN_MAX_AGE=0 there): a
# storm of signed-in sockets then crawls (docs/performance.md). psycopg's pool reuses them.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool("DJANGO_DB_POOL", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DJANGO_DB_POOL_MIN", default=2),
        "max_size": env.int("DJANGO_DB_POOL_MAX", default=20),
        "timeout": env.float("DJANGO_DB_POOL_TIMEOUT", default=10.0),
    }
    # The pool checks a connection on checkout: one the server closed (PostgreSQL
    # restarted) is replaced instead of failing the request or frame that drew it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # send_inform prepares its few statements once per connection (inform.services:
    # planning them on every call cost more than running them); Django's own queries are
    # never prepared (client-side binding). A pooler must keep prepared statements
    # (PgBouncer >= 1.21: max_prepared_statements), or DJANGO_DB_PREPARE=0.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        5 if env.bool("DJANGO_DB_PREPARE", default=True) else None)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The channel layer. Pub/sub was chosen on measurement (README, docs/performance.md):
# one PUBLISH per group_send and no per-channel capacity to overflow. Every daphne
# process holds one layer channel (realtime.hub), so subscriptions grow with
# processes and distinct signed-in users, not with sockets.
REDIS_URL = env.str("REDIS_URL", default="")
# Several servers, comma-separated, spread the channel layer's groups over them
# (realtime.layers: rendezvous hashing; every process must name the same set). The
# cache (request budgets) and the health check use the first.
REDIS_URLS = [url.strip() for url in REDIS_URL.split(",") if url.strip()]
if REDIS_URLS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ShardedPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": url,
                        # redis-py 8 defaults to 100; the pub/sub layer serialises its
                        # commands per shard, so a small pool is plenty; chosen, not inherited.
                        "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=50),
                        "socket_connect_timeout": 2,
                        "socket_timeout": env.float("REDIS_SOCKET_TIMEOUT", default=5.0),
                        "health_check_interval": 10,
                        # A command that meets a connection Redis closed (it restarted while
                        # this one was idle) reconnects and is sent again: otherwise a
                        # worker's first push after a restart is lost with no subscriber
                        # ever noticing (tests/test_faults.py, stale sender).
                        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3),
                    }
                    for url in REDIS_URLS
                ],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="mblog"),
            },
        }
    }
else:
    # The hub channel carries all of a process's traffic: give it room for bursts.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10000}}}

# Django's cache holds the request budgets (mblog.throttle): shared by every process
# through Redis when there is one, per process otherwise.
if REDIS_URLS:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URLS[0],
            "KEY_PREFIX": env.str("CHANNEL_LAYER_PREFIX", default="mblog"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _budget(name: str, default: str) -> tuple[int, int]:
    """THROTTLE_<NAME>=limit/seconds, e.g. 10/900; a limit of 0 turns it off."""
    limit, _, seconds = env.str(f"THROTTLE_{name.upper()}", default=default).partition("/")
    return int(limit), int(seconds)


THROTTLES = {
    "login_account": _budget("login_account", "10/900"),  # failed sign-ins per username
    "login_address": _budget("login_address", "30/300"),  # sign-in attempts per client address
    "signup_address": _budget("signup_address", "10/3600"),  # sign-up attempts per client address
    "chat_user": _budget("chat_user", "20/10"),  # chat messages per user, socket and HTTP alike
}
# Mentions in one post, reply or chat message that notify anyone; the rest are plain text.
MAX_MENTIONS = env.int("MAX_MENTIONS", default=10)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "media")
WHITENOISE_USE_FINDERS = True  # nginx serves /static/ in production; this keeps the embedded run simple
# Production (deploy/templates/mblog.env): collectstatic writes content-hashed names
# (inform.3f2a…9c.js), so an upgrade's JavaScript has new URLs and no browser runs old
# code against a new server, plus gzipped copies; nginx serves both with long caching.
# Off elsewhere: the tests and the development server use the plain names.
if env.bool("DJANGO_STATIC_MANIFEST", default=False):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        # one list of hashed names per release (a rollback serves its own files)
        "staticfiles": {"BACKEND": "mblog.staticstorage.ReleaseManifestStaticFilesStorage"},
    }

# Behind nginx (deploy/): trust its X-Forwarded-Proto for https detection.
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Session and CSRF cookies travel over https only, unless this is a development server
# (DJANGO_DEBUG=1) or DJANGO_SECURE_COOKIES=0 says the site is served over plain http
# (the tests' local servers).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)

# WebSocket guard rails (inform.consumers, chat.consumers).
WS_RATE_PER_SECOND = env.float("WS_RATE_PER_SECOND", default=10.0)
WS_RATE_BURST = env.int("WS_RATE_BURST", default=20)
WS_MAX_FRAME_CHARS = env.int("WS_MAX_FRAME_CHARS", default=8192)
# A socket whose peer leaves more than this many bytes unread is dropped (close 4413).
WS_MAX_BACKLOG_BYTES = env.int("WS_MAX_BACKLOG_BYTES", default=1024 * 1024)
# daphne's --websocket-max-message-size (deploy/ passes the same value): the largest
# frame in either direction. A client frame of WS_MAX_FRAME_CHARS characters fits;
# autobahn refuses to send a larger one, so no frame of ours may be larger.
WS_MAX_MESSAGE_BYTES = env.int("WS_MAX_MESSAGE_BYTES", default=4 * WS_MAX_FRAME_CHARS)
# The messages of one chat `history` frame, together (the envelope fits in the rest).
CHAT_HISTORY_MAX_BYTES = WS_MAX_MESSAGE_BYTES - 1024
# Open sockets per signed-in user and per client address, per process (mblog.ws_limits); 0: no cap.
# Load shedding per process (realtime.shed): past this many handshakes in progress, or
# open sockets, new sockets are told to come back later (close 4503, "retry after N"
# seconds, about WS_RETRY_AFTER_SECONDS). 0: no cap.
WS_MAX_PENDING_HANDSHAKES = env.int("WS_MAX_PENDING_HANDSHAKES", default=0)
WS_MAX_SOCKETS_PER_PROCESS = env.int("WS_MAX_SOCKETS_PER_PROCESS", default=0)
WS_RETRY_AFTER_SECONDS = env.float("WS_RETRY_AFTER_SECONDS", default=3.0)
WS_MAX_SOCKETS_PER_USER = env.int("WS_MAX_SOCKETS_PER_USER", default=32)
WS_MAX_SOCKETS_PER_ADDRESS = env.int("WS_MAX_SOCKETS_PER_ADDRESS", default=256)
# Chat presence: each socket refreshes its row this often; rows older than STALE are gone.
CHAT_PRESENCE_HEARTBEAT = env.float("CHAT_PRESENCE_HEARTBEAT", default=15.0)
CHAT_PRESENCE_STALE = env.float("CHAT_PRESENCE_STALE", default=45.0)
# Who may read /metrics (realtime.metrics), by the client address daphne reports. nginx
# refuses the path publicly and serves it on a private listener only.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
# How often each process checks that its layer subscription still delivers (seconds).
INFORM_HUB_PROBE_INTERVAL = env.float("INFORM_HUB_PROBE_INTERVAL", default=2.0)
# `manage.py inform_expire` removes read notifications older than this (unread ones stay).
INFORM_EXPIRE_READ_AFTER_DAYS = env.int("INFORM_EXPIRE_READ_AFTER_DAYS", default=90)
# Follows within this many seconds of a group's first one are one entry ("alice, bob and
# 1 more followed you"); a later follow starts a new entry. 0: follows never group.
INFORM_FOLLOW_GROUP_WINDOW = env.int("INFORM_FOLLOW_GROUP_WINDOW", default=24 * 3600)

# Notifications by email (for kinds a person set to "by email"): links point at this site.
INFORM_EMAIL_SITE_URL = env.str("INFORM_EMAIL_SITE_URL", default="http://127.0.0.1:8000")
# A development server (DJANGO_DEBUG=1: bin/serve, bin/manage) prints emails instead.
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=25)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="mblog <noreply@localhost>")
# An SMTP provider's sign-in and encryption: STARTTLS on 587 (USE_TLS) or TLS on 465 (USE_SSL).
EMAIL_HOST_USER = env.str("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")  # read directly, like the secret key
EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("DJANGO_EMAIL_USE_SSL", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "mblog": {"level": "INFO"},
        "inform": {"level": "INFO"},
        "chat": {"level": "INFO"},
        "realtime": {"level": "INFO"},
        "away": {"level": "INFO"},
    },
}
CSRF_FAILURE_VIEW = "mblog.views.csrf_failure"

# Reaching people who are away (away/, docs/away.md).
# A notification still unread this many seconds after it arrived is emailed (in a digest).
AWAY_EMAIL_DELAY = env.int("AWAY_EMAIL_DELAY", default=300)
# Older ones are never emailed (a sender that was stopped for a day does not flood).
AWAY_EMAIL_MAX_AGE = env.int("AWAY_EMAIL_MAX_AGE", default=2 * 24 * 3600)
# Presence: each process refreshes its sockets' rows this often; older rows are gone.
AWAY_PRESENCE_HEARTBEAT = env.float("AWAY_PRESENCE_HEARTBEAT", default=30.0)
AWAY_PRESENCE_STALE = env.float("AWAY_PRESENCE_STALE", default=90.0)
# Web Push (manage.py generate_vapid_keys prints a pair): unset, push is off.
VAPID_PUBLIC_KEY = env.str("VAPID_PUBLIC_KEY", default="")
VAPID_PRIVATE_KEY = os.environ.get("VAPID_PRIVATE_KEY", "")  # read directly, like the secret key
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:admin@localhost")
# A notification still unread this many seconds after it arrived is pushed (no tab in view).
AWAY_PUSH_DELAY = env.int("AWAY_PUSH_DELAY", default=20)
AWAY_PUSH_TTL = env.int("AWAY_PUSH_TTL", default=24 * 3600)  # how long a push service keeps one
# Hosts whose push endpoints may be plain http (a local test push service only).
AWAY_PUSH_INSECURE_HOSTS = env.list("AWAY_PUSH_INSECURE_HOSTS", default=[])
# mblog.csp: a Content-Security-Policy header on every response (0 turns it off).
CONTENT_SECURITY_POLICY = env.bool("DJANGO_CSP", default=True)

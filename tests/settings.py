"""Settings for the test suite: SQLite by default, PostgreSQL when DATABASE_URL says so."""

import os
import tempfile
from typing import Any

import dj_database_url

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL")
        or "sqlite:///" + os.path.join(tempfile.gettempdir(), "drs-tests.sqlite3")
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the worker and daphne processes of the live tests share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"drs-test-{os.getpid()}.sqlite3")
    }
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=wal; PRAGMA synchronous=normal;",
        # Writers take the lock when their transaction begins: concurrent jobs then wait
        # for each other instead of failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
    }
# Set by tests/live.py for the processes it starts: the test database of the run.
if os.environ.get("DRS_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DRS_DATABASE_NAME"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_remote_submission",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = os.environ.get("DRS_MEDIA_ROOT") or tempfile.mkdtemp(prefix="drs-test-media-")
# Set by tests/test_upgrade_2x.py to build a database with the migrations of an earlier
# development version of 3.0 (tests/drs2x/migrations_30dev).
if os.environ.get("DRS_MIGRATIONS"):
    MIGRATION_MODULES = {"django_remote_submission": os.environ["DRS_MIGRATIONS"]}

CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
}
if os.environ.get("DRS_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times socket reads out after 5 s, the very time channels-redis
                # blocks waiting for messages: give reads more time than that.
                "hosts": [{"address": os.environ["DRS_REDIS_URL"], "socket_timeout": 30}],
                "prefix": os.environ.get("DRS_CHANNEL_PREFIX", "asgi"),
            },
        }
    }

ASGI_APPLICATION = "tests.asgi.application"

# The broker and result backend are set by the redis fixture in tests/conftest.py (and
# for the processes tests/live.py starts, from the environment); until then nothing may
# reach a broker by accident.
CELERY_BROKER_URL = os.environ.get("DRS_REDIS_URL", "memory://")
CELERY_RESULT_BACKEND = os.environ.get("DRS_REDIS_URL", "cache+memory://")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("DRS_CELERY_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_remote_submission": {"handlers": ["console"], "level": "INFO"}},
}

# The sweep takes over jobs nobody follows: only the worker processes of the tests that
# are about it run one (a sweep in the test process would take over other tests' jobs).
REMOTE_SUBMISSION_SWEEP = os.environ.get("DRS_SWEEP") == "1"
if os.environ.get("DRS_LEASE_SECONDS"):
    REMOTE_SUBMISSION_LEASE_SECONDS = float(os.environ["DRS_LEASE_SECONDS"])
if os.environ.get("DRS_QUEUE_GRACE"):
    REMOTE_SUBMISSION_QUEUE_GRACE = float(os.environ["DRS_QUEUE_GRACE"])
if os.environ.get("DRS_HAND_OVER_AFTER"):
    REMOTE_SUBMISSION_HAND_OVER_AFTER = float(os.environ["DRS_HAND_OVER_AFTER"])
if os.environ.get("DRS_RECONNECT_TIMEOUT"):
    REMOTE_SUBMISSION_RECONNECT_TIMEOUT = float(os.environ["DRS_RECONNECT_TIMEOUT"])

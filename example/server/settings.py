"""Settings of the example project, read from the environment and example/.env.

Every variable is listed, with its default, in example/.env.base. Nothing here is needed
for `make demo`: the demo fills in what is missing (an embedded Redis, an embedded SSH
server on loopback, a demo user).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

#: Where the demo keeps its database, results, keys and embedded servers' files.
VAR_DIR = Path(env.str("EXAMPLE_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key made once and kept in VAR_DIR (mode 0600)."""
    if env.str("DJANGO_SECRET_KEY", default=""):
        return env.str("DJANGO_SECRET_KEY")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
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
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_remote_submission",
    "server",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "server.urls"
WSGI_APPLICATION = "server.wsgi.application"
ASGI_APPLICATION = "server.asgi.application"

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
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write at the same time: WAL and a patient lock.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=wal; PRAGMA synchronous=normal;",
        # Writers take the lock when their transaction begins, so that jobs running at
        # the same time wait for each other instead of failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "example"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
# Results are downloaded through the REST API, which checks who asks; MEDIA_ROOT is
# never served as it is.
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# One Redis for the broker, the result backend and the channel layer.
REDIS_URL = env.str("REDIS_URL", default="") or "redis://127.0.0.1:6379/0"
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = env.str("EXAMPLE_CELERY_QUEUE", default="celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

CHANNEL_LAYERS: dict[str, Any] = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels-redis blocks 5 s waiting for messages; reads need longer than that.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": env.str("EXAMPLE_CHANNEL_PREFIX", default="asgi"),
        },
    }
}

REST_FRAMEWORK = {
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 10,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The app's settings (docs/settings.rst). Unknown host keys are refused: the demo pins
# its embedded server's key, and a real host's key comes from EXAMPLE_SERVER_HOST_KEY,
# `manage.py remote_pin_host_key` or the worker's ~/.ssh/known_hosts.
REMOTE_SUBMISSION_HOST_KEY_POLICY = env.str("REMOTE_SUBMISSION_HOST_KEY_POLICY", default="reject")
REMOTE_SUBMISSION_MAX_CONNECTIONS_PER_HOST = env.int(
    "REMOTE_SUBMISSION_MAX_CONNECTIONS_PER_HOST", default=4
)


# The example's own settings, named as in 2.x. An empty value counts as unset; the demo
# fills in what is unset (its embedded SSH server and a key of its own).
def _value(name: str, default: str) -> str:
    return env.str(name, default="").strip() or default


EXAMPLE_PYTHON_PATH = _value("EXAMPLE_PYTHON_PATH", "/usr/bin/python3")
EXAMPLE_PYTHON_ARGUMENTS = [
    argument.strip()
    for argument in _value("EXAMPLE_PYTHON_ARGUMENTS", "-u").split(",")
    if argument.strip()
]
EXAMPLE_SERVER_HOSTNAME = _value("EXAMPLE_SERVER_HOSTNAME", "127.0.0.1")
EXAMPLE_SERVER_PORT = int(_value("EXAMPLE_SERVER_PORT", "22"))
EXAMPLE_SERVER_HOST_KEY = _value("EXAMPLE_SERVER_HOST_KEY", "")
EXAMPLE_REMOTE_DIRECTORY = _value("EXAMPLE_REMOTE_DIRECTORY", "/tmp/")  # noqa: S108 (2.x default)
EXAMPLE_REMOTE_FILENAME = _value("EXAMPLE_REMOTE_FILENAME", "example_job.py")
EXAMPLE_REMOTE_USER = _value("EXAMPLE_REMOTE_USER", "")
EXAMPLE_REMOTE_PASSWORD = _value("EXAMPLE_REMOTE_PASSWORD", "")
EXAMPLE_REMOTE_KEY_FILENAME = _value("EXAMPLE_REMOTE_KEY_FILENAME", "")
# The worker's own key for what gives no credentials: the admin's actions (Test connection,
# Submit to server, Run a copy) log in with it as the example's pages do.
REMOTE_SUBMISSION_KEY_FILENAME = EXAMPLE_REMOTE_KEY_FILENAME or None
EXAMPLE_SERVE_STATIC = env.bool("EXAMPLE_SERVE_STATIC", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_remote_submission": {"handlers": ["console"], "level": "INFO"},
        "server": {"handlers": ["console"], "level": "INFO"},
    },
}

"""System checks for the REMOTE_SUBMISSION_* settings, the database and the Celery app.

Ids are stable: ``django_remote_submission.E0NN`` for errors, ``.W0NN`` for warnings.
Each id stands for one problem, so silencing one silences nothing else. Once released
an id is never reused for another meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error, Warning
from django.db import router
from django.utils.module_loading import import_string

from django_remote_submission.conf import DEFAULTS, HOST_KEY_POLICIES, PREFIX

ID = "django_remote_submission.{}"


def _value(name: str) -> Any:
    return getattr(settings, PREFIX + name, DEFAULTS[name])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _found(value: Any) -> str:
    """The value and its type, for settings that hold no secret."""
    return f"{value!r} ({type(value).__name__})"


@dataclass(frozen=True)
class Rule:
    expected: str
    valid: Callable[[Any], bool]
    # What turns a string from an environment variable into an accepted value.
    convert: str


POSITIVE_NUMBER = Rule("a positive number", lambda v: _is_number(v) and v > 0, "float")
NON_NEGATIVE_NUMBER = Rule("a number >= 0", lambda v: _is_number(v) and v >= 0, "float")
POSITIVE_INTEGER = Rule("a positive integer", lambda v: _is_int(v) and v > 0, "int")
NON_NEGATIVE_INTEGER = Rule(
    "an integer >= 0 (0 turns it off)", lambda v: _is_int(v) and v >= 0, "int"
)
OPTIONAL_POSITIVE_INTEGER = Rule(
    "a positive integer, or None for no limit",
    lambda v: v is None or (_is_int(v) and v > 0),
    "int",
)

# One id per setting: E002 kept the first of the settings it used to cover.
NUMERIC_SETTINGS: dict[str, tuple[str, Rule]] = {
    "CONNECT_TIMEOUT": ("E002", POSITIVE_NUMBER),
    "KEEPALIVE_INTERVAL": ("E007", NON_NEGATIVE_INTEGER),
    "MAX_CONNECTIONS_PER_HOST": ("E008", POSITIVE_INTEGER),
    "KILL_GRACE": ("E009", POSITIVE_NUMBER),
    "RECONNECT_TIMEOUT": ("E010", POSITIVE_NUMBER),
    "LEASE_SECONDS": ("E011", POSITIVE_NUMBER),
    "QUEUE_GRACE": ("E012", POSITIVE_NUMBER),
    "HAND_OVER_AFTER": ("E013", NON_NEGATIVE_NUMBER),
    "REATTACH_WINDOW": ("E014", POSITIVE_NUMBER),
    "LOG_BATCH_LINES": ("E015", POSITIVE_INTEGER),
    "LOG_BATCH_SECONDS": ("E016", POSITIVE_NUMBER),
    "LOG_MAX_LINE_LENGTH": ("E017", POSITIVE_INTEGER),
    "LOG_MAX_BYTES": ("E018", OPTIONAL_POSITIVE_INTEGER),
    "RESULT_MAX_FILE_SIZE": ("E019", OPTIONAL_POSITIVE_INTEGER),
    "RESULT_MAX_TOTAL_SIZE": ("E020", OPTIONAL_POSITIVE_INTEGER),
    "STUCK_AFTER": ("E022", POSITIVE_INTEGER),
}

# Transactions that take SQLite's write lock when they begin, so that the busy timeout
# applies; a DEFERRED one that later needs it fails at once when another writer has it.
LOCKING_TRANSACTION_MODES = ("IMMEDIATE", "EXCLUSIVE")


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []

    policy = _value("HOST_KEY_POLICY")
    if policy not in HOST_KEY_POLICIES:
        errors.append(
            Error(
                f"{PREFIX}HOST_KEY_POLICY is {_found(policy)}.",
                hint="Use one of: " + ", ".join(repr(p) for p in HOST_KEY_POLICIES) + ".",
                id=ID.format("E001"),
            )
        )
    elif policy == "auto-add":
        errors.append(
            Warning(
                f"{PREFIX}HOST_KEY_POLICY is 'auto-add': unknown SSH host keys are trusted "
                "without any check, so a man in the middle can read passwords and jobs.",
                hint="Use 'reject' and pin each server's key, or 'tofu'.",
                id=ID.format("W001"),
            )
        )

    for name, (check_id, rule) in NUMERIC_SETTINGS.items():
        value = _value(name)
        if not rule.valid(value):
            errors.append(_bad_number(name, value, rule, check_id))

    for name, check_id in (("KNOWN_HOSTS_FILE", "E003"), ("KEY_FILENAME", "E021")):
        path = _value(name)
        if (
            path is not None
            and not isinstance(path, str | bytes)
            and not hasattr(path, "__fspath__")
        ):
            errors.append(
                Error(
                    f"{PREFIX}{name} is {_found(path)}; it must be a path, or None.",
                    hint="Give the path of one file as a str or pathlib.Path, or remove the "
                    "setting.",
                    id=ID.format(check_id),
                )
            )

    secret = _value("SECRET_KEY")
    if secret not in (None, "") and (not isinstance(secret, str) or len(secret) < 32):
        # The type only: even a key too short to use is somebody's secret.
        errors.append(
            Error(
                f"{PREFIX}SECRET_KEY is a {type(secret).__name__}"
                + (" shorter than 32 characters" if isinstance(secret, str) else "")
                + "; it must be a str of at least 32 characters.",
                hint="Generate one with python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))', or remove the setting to derive the key "
                "from SECRET_KEY.",
                id=ID.format("E004"),
            )
        )

    prefix = _value("WEBSOCKET_PREFIX")
    if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.endswith("/"):
        errors.append(
            Error(
                f"{PREFIX}WEBSOCKET_PREFIX is {_found(prefix)}; it must be a str that starts "
                "and ends with '/'.",
                hint="Use the path where your ASGI application mounts websocket_urlpatterns, "
                "e.g. '/ws/' for the app's own 'ws/job-log/...' routes at the root.",
                id=ID.format("E005"),
            )
        )
    errors += _check_login_policy()
    errors += _check_channel_layer()
    errors += _check_sqlite()
    return errors


def _check_login_policy() -> list[CheckMessage]:
    path = _value("LOGIN_POLICY")
    if path in (None, ""):
        return []
    problem = ""
    if not isinstance(path, str):
        problem = "it must be the dotted path of a function, as a str"
    else:
        try:
            policy = import_string(path)
        except Exception as exc:  # whatever the module raises: a report, not a crash
            problem = f"it does not import: {type(exc).__name__}: {exc}"
        else:
            if not callable(policy):
                problem = f"it names a {type(policy).__name__}, not callable"
    if not problem:
        return []
    return [
        Error(
            f"{PREFIX}LOGIN_POLICY is {_found(path)}; {problem}.",
            hint="Name a function like django_remote_submission.logins.default_policy, "
            "e.g. 'myproject.policies.cluster_logins', or remove the setting to use the "
            "app's own policy.",
            id=ID.format("E006"),
        )
    ]


def _check_channel_layer() -> list[CheckMessage]:
    """channels-redis blocks 5 s waiting for messages; redis-py 8 gives up reading after
    5 s by default, so idle sockets die with a TimeoutError unless the hosts say more."""
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get("default", {})
    if not str(layer.get("BACKEND", "")).startswith("channels_redis."):
        return []
    try:
        import inspect

        from redis.asyncio.connection import AbstractConnection
    except ImportError:
        return []
    default = inspect.signature(AbstractConnection.__init__).parameters["socket_timeout"].default
    if default is None or not isinstance(default, int | float) or default > 5:
        return []
    # Without hosts channels-redis connects to localhost:6379, with redis-py's defaults.
    hosts = layer.get("CONFIG", {}).get("hosts") or ["redis://localhost:6379"]
    short = [
        host
        for host in hosts
        if not isinstance(host, dict)
        or (
            host.get("socket_timeout", default) is not None
            and host.get("socket_timeout", default) <= 5
        )
    ]
    if not short:
        return []
    return [
        Warning(
            "CHANNEL_LAYERS['default'] (channels-redis) will drop idle WebSocket consumers: "
            f"redis-py times socket reads out after {default:g} s, as long as channels-redis "
            "waits for messages.",
            hint='Write each host as {"address": "redis://...", "socket_timeout": 30}.',
            id=ID.format("W002"),
        )
    ]


def _check_sqlite() -> list[CheckMessage]:
    """Concurrent jobs write at once: SQLite's defaults make some of them fail."""
    databases = getattr(settings, "DATABASES", {})
    # The aliases the app's rows are written to, as the project's routers decide.
    aliases = sorted(
        {
            router.db_for_write(model)
            for model in apps.get_app_config("django_remote_submission").get_models()
        }
    )
    warnings: list[CheckMessage] = []
    for alias in aliases:
        database = databases.get(alias, {})
        if database.get("ENGINE") != "django.db.backends.sqlite3":
            continue
        options = database.get("OPTIONS") or {}
        missing = []
        if str(options.get("transaction_mode") or "").upper() not in LOCKING_TRANSACTION_MODES:
            missing.append('"transaction_mode": "IMMEDIATE"')
        if "timeout" not in options:
            missing.append('"timeout"')
        if not missing:
            continue
        warnings.append(
            Warning(
                f"DATABASES[{alias!r}] is SQLite and its OPTIONS have no "
                + " and no ".join(missing)
                + ": concurrent jobs fail with 'database is locked' and lose their output.",
                hint=f'Add to DATABASES["{alias}"]["OPTIONS"]: '
                '{"transaction_mode": "IMMEDIATE", "timeout": 30}; optionally also '
                '"init_command": "PRAGMA journal_mode=wal; PRAGMA synchronous=normal;" so '
                "that readers do not wait for writers. Or use PostgreSQL.",
                id=ID.format("W003"),
            )
        )
    return warnings


# Registered when ready() imports this module for check_settings; kept apart from it so
# that a process with no Celery app of its own (a script, a test) can check settings alone.
@checks.register()
def check_celery_app(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    from celery import _state

    if not hasattr(_state, "_tls") or not hasattr(_state, "default_app"):
        return []  # a Celery whose internals moved: better no warning than a wrong one
    app = _current_celery_app()
    package = str(getattr(settings, "SETTINGS_MODULE", "") or "").rpartition(".")[0] or "proj"
    if app is None or _is_fallback(app):
        return [
            Warning(
                "No Celery app is set up: submit_job_to_server.delay() and the other tasks "
                "would go to Celery's default broker (amqp://localhost:5672) with none of "
                "the CELERY_* settings, and jobs would stay 'initial'.",
                hint=f"Create the app in {package}/celery.py: app = Celery({package!r}); "
                'app.config_from_object("django.conf:settings", namespace="CELERY"); '
                f"app.autodiscover_tasks(); and import it in {package}/__init__.py: "
                "from .celery import app as celery_app.",
                id=ID.format("W004"),
            )
        ]
    conf = app.conf
    if conf.broker_write_url or conf.task_always_eager:
        return []
    namespace = app.namespace
    setting = f"{namespace}_BROKER_URL" if namespace else "CELERY_BROKER_URL"
    return [
        Warning(
            f"The Celery app {app.main!r} has no broker: submit_job_to_server.delay() and "
            "the other tasks would go to amqp://localhost:5672, and jobs would stay "
            "'initial' unless a worker listens there.",
            hint=f'Set {setting} = "redis://localhost:6379/0" (your broker) in the '
            "settings"
            + (
                ""
                if namespace
                else ', and read them with app.config_from_object("django.conf:settings", '
                'namespace="CELERY")'
            )
            + ".",
            id=ID.format("W005"),
        )
    ]


def _current_celery_app() -> Any:
    """The app ``delay()`` sends with in this thread, or None.

    Not ``celery.current_app``: with no app set up it creates Celery's fallback app and
    makes it the default of every thread, so an app imported later would not be used.
    """
    from celery import _state

    state: Any = _state  # private: the type stubs do not describe it
    return getattr(state._tls, "current_app", None) or state.default_app


def _is_fallback(app: Any) -> bool:
    # celery._state makes its fallback app as Celery("default", fixups=[],
    # set_as_current=False): an app of a project's own has Celery's fixups (Django's).
    return app.main == "default" and app.set_as_current is False and not app.fixups


def _bad_number(name: str, value: Any, rule: Rule, check_id: str) -> Error:
    return Error(
        f"{PREFIX}{name} is {_found(value)}; it must be {rule.expected}.",
        hint=f"Give {rule.expected}; a value read from the environment is a str and needs "
        f"{rule.convert}(...). Or remove the setting to use the default, "
        f"{DEFAULTS[name]!r}.",
        id=ID.format(check_id),
    )

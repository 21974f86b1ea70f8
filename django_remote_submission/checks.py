"""System checks for the REMOTE_SUBMISSION_* settings.

Ids are stable: ``django_remote_submission.E0NN`` for errors, ``.W0NN`` for warnings.
Once released an id is never reused for another meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

from django_remote_submission.conf import DEFAULTS, HOST_KEY_POLICIES, PREFIX

ID = "django_remote_submission.{}"

# Settings that must be a positive number; those that may also be None to mean "no limit".
POSITIVE_NUMBERS = (
    "CONNECT_TIMEOUT",
    "LOG_BATCH_SECONDS",
    "KILL_GRACE",
    "RECONNECT_TIMEOUT",
    "LEASE_SECONDS",
    "QUEUE_GRACE",
    "REATTACH_WINDOW",
)
POSITIVE_INTEGERS = ("MAX_CONNECTIONS_PER_HOST", "LOG_BATCH_LINES", "LOG_MAX_LINE_LENGTH")
OPTIONAL_POSITIVE_INTEGERS = ("LOG_MAX_BYTES", "RESULT_MAX_FILE_SIZE", "RESULT_MAX_TOTAL_SIZE")
NON_NEGATIVE_INTEGERS = ("KEEPALIVE_INTERVAL",)
NON_NEGATIVE_NUMBERS = ("HAND_OVER_AFTER",)


def _value(name: str) -> Any:
    return getattr(settings, PREFIX + name, DEFAULTS[name])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []

    policy = _value("HOST_KEY_POLICY")
    if policy not in HOST_KEY_POLICIES:
        errors.append(
            Error(
                f"{PREFIX}HOST_KEY_POLICY is {policy!r}.",
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

    for name in POSITIVE_NUMBERS:
        value = _value(name)
        if not _is_number(value) or value <= 0:
            errors.append(_bad_value(name, value, "a positive number"))
    for name in POSITIVE_INTEGERS:
        value = _value(name)
        if not _is_int(value) or value <= 0:
            errors.append(_bad_value(name, value, "a positive integer"))
    for name in NON_NEGATIVE_INTEGERS:
        value = _value(name)
        if not _is_int(value) or value < 0:
            errors.append(_bad_value(name, value, "an integer >= 0 (0 turns it off)"))
    for name in NON_NEGATIVE_NUMBERS:
        value = _value(name)
        if not _is_number(value) or value < 0:
            errors.append(_bad_value(name, value, "a number >= 0"))
    for name in OPTIONAL_POSITIVE_INTEGERS:
        value = _value(name)
        if value is not None and (not _is_int(value) or value <= 0):
            errors.append(_bad_value(name, value, "a positive integer, or None for no limit"))

    known_hosts = _value("KNOWN_HOSTS_FILE")
    if (
        known_hosts is not None
        and not isinstance(known_hosts, str | bytes)
        and not hasattr(known_hosts, "__fspath__")
    ):
        errors.append(_bad_value("KNOWN_HOSTS_FILE", known_hosts, "a path, or None", "E003"))

    secret = _value("SECRET_KEY")
    if secret not in (None, "") and (not isinstance(secret, str) or len(secret) < 32):
        errors.append(
            Error(
                f"{PREFIX}SECRET_KEY must be a string of at least 32 characters.",
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
                f"{PREFIX}WEBSOCKET_PREFIX is {prefix!r}; it must start and end with '/'.",
                hint="Use the path where your ASGI application mounts websocket_urlpatterns, "
                "e.g. '/ws/' for the app's own 'ws/job-log/...' routes at the root.",
                id=ID.format("E005"),
            )
        )
    errors += _check_login_policy()
    errors += _check_channel_layer()
    return errors


def _check_login_policy() -> list[CheckMessage]:
    path = _value("LOGIN_POLICY")
    if path in (None, ""):
        return []
    problem = ""
    if not isinstance(path, str):
        problem = "it must be the dotted path of a function, as a string"
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
            f"{PREFIX}LOGIN_POLICY is {path!r}; {problem}.",
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
            "The Redis channel layer will drop idle WebSocket consumers: redis-py times "
            f"socket reads out after {default:g} s, as long as channels-redis waits for "
            "messages.",
            hint='Write each host as {"address": "redis://...", "socket_timeout": 30}.',
            id=ID.format("W002"),
        )
    ]


def _bad_value(name: str, value: Any, expected: str, check_id: str = "E002") -> Error:
    return Error(
        f"{PREFIX}{name} is {value!r}; it must be {expected}.",
        hint=f"Remove the setting to use the default, {DEFAULTS[name]!r}.",
        id=ID.format(check_id),
    )

"""Every REMOTE_SUBMISSION_* setting, typed, with its default, read when it is used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

PREFIX = "REMOTE_SUBMISSION_"

HOST_KEY_POLICIES = ("reject", "tofu", "auto-add")

DEFAULTS: dict[str, Any] = {
    "HOST_KEY_POLICY": "reject",
    "KNOWN_HOSTS_FILE": None,
    "KEY_FILENAME": None,
    "CONNECT_TIMEOUT": 10.0,
    "KEEPALIVE_INTERVAL": 30,
    "MAX_CONNECTIONS_PER_HOST": 4,
    "KILL_GRACE": 10.0,
    "RECONNECT_TIMEOUT": 600.0,
    "LEASE_SECONDS": 20.0,
    "QUEUE_GRACE": 300.0,
    "SWEEP": True,
    "HAND_OVER_AFTER": 1.0,
    "REATTACH_WINDOW": 86400.0,
    "WEBSOCKET_PREFIX": "/ws/",
    "SECRET_KEY": None,
    "LOG_BATCH_LINES": 2000,
    "LOG_BATCH_SECONDS": 0.1,
    "LOG_MAX_LINE_LENGTH": 64 * 1024,
    "LOG_MAX_BYTES": 64 * 1024 * 1024,
    "RESULT_MAX_FILE_SIZE": 1024 * 1024 * 1024,
    "RESULT_MAX_TOTAL_SIZE": 4 * 1024 * 1024 * 1024,
    "LOGIN_POLICY": None,
    "STUCK_AFTER": 600,
}


def _get(name: str) -> Any:
    return getattr(settings, PREFIX + name, DEFAULTS[name])


def _path(name: str) -> Path | None:
    """A setting that names a file: a str, bytes or path-like, as its check allows;
    None or empty means none."""
    value = _get(name)
    if value in (None, "", b""):
        return None
    return Path(os.fsdecode(value))


class Settings:
    """Settings are looked up on every access, so override_settings just works.

    Values are returned as configured; ``checks.check_settings`` reports values of
    the wrong type or range at start-up, with the ids documented in the docs.
    """

    @property
    def HOST_KEY_POLICY(self) -> str:
        value: str = _get("HOST_KEY_POLICY")
        return value

    @property
    def KNOWN_HOSTS_FILE(self) -> Path | None:
        return _path("KNOWN_HOSTS_FILE")  # check E003

    @property
    def KEY_FILENAME(self) -> Path | None:
        return _path("KEY_FILENAME")  # check E021

    @property
    def CONNECT_TIMEOUT(self) -> float:
        return float(_get("CONNECT_TIMEOUT"))

    @property
    def KEEPALIVE_INTERVAL(self) -> int:
        return int(_get("KEEPALIVE_INTERVAL"))

    @property
    def MAX_CONNECTIONS_PER_HOST(self) -> int:
        return int(_get("MAX_CONNECTIONS_PER_HOST"))

    @property
    def KILL_GRACE(self) -> float:
        return float(_get("KILL_GRACE"))

    @property
    def RECONNECT_TIMEOUT(self) -> float:
        """Seconds a job's worker tries to connect again after losing the connection."""
        return float(_get("RECONNECT_TIMEOUT"))

    @property
    def LEASE_SECONDS(self) -> float:
        """Seconds a worker holds a job without renewing its lease; a job whose worker
        died is taken over by another within 1.25 times this."""
        return float(_get("LEASE_SECONDS"))

    @property
    def QUEUE_GRACE(self) -> float:
        """Seconds a queued job waits for its task before the sweep sends it again."""
        return float(_get("QUEUE_GRACE"))

    @property
    def SWEEP(self) -> bool:
        """Whether each Celery worker runs the sweep (takes over jobs nobody follows)."""
        return bool(_get("SWEEP"))

    @property
    def HAND_OVER_AFTER(self) -> float:
        """Seconds a task follows the job it launched before handing it to its worker
        host's follower (which follows many jobs over one connection)."""
        return max(0.0, float(_get("HAND_OVER_AFTER")))

    @property
    def REATTACH_WINDOW(self) -> float:
        """Seconds during which a job that failed because its server stayed away is
        taken up again when the server answers (its program may have run on)."""
        return float(_get("REATTACH_WINDOW"))

    @property
    def WEBSOCKET_PREFIX(self) -> str:
        """Where the project mounts websocket_urlpatterns, as the pages' scripts see it."""
        value: str = _get("WEBSOCKET_PREFIX")
        return value

    @property
    def SECRET_KEY(self) -> str | None:
        value = _get("SECRET_KEY")
        return value or None

    @property
    def LOG_BATCH_LINES(self) -> int:
        return int(_get("LOG_BATCH_LINES"))

    @property
    def LOG_BATCH_SECONDS(self) -> float:
        return float(_get("LOG_BATCH_SECONDS"))

    @property
    def LOG_MAX_LINE_LENGTH(self) -> int:
        return int(_get("LOG_MAX_LINE_LENGTH"))

    @property
    def LOG_MAX_BYTES(self) -> int | None:
        value = _get("LOG_MAX_BYTES")
        return None if value is None else int(value)

    @property
    def RESULT_MAX_FILE_SIZE(self) -> int | None:
        value = _get("RESULT_MAX_FILE_SIZE")
        return None if value is None else int(value)

    @property
    def RESULT_MAX_TOTAL_SIZE(self) -> int | None:
        value = _get("RESULT_MAX_TOTAL_SIZE")
        return None if value is None else int(value)

    @property
    def LOGIN_POLICY(self) -> str | None:
        """The dotted path of the project's login policy; None for the app's own."""
        value = _get("LOGIN_POLICY")
        return value or None

    @property
    def STUCK_AFTER(self) -> int:
        """Seconds a job may wait in the queue before the operators' page calls it stuck."""
        return int(_get("STUCK_AFTER"))


conf = Settings()

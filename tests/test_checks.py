"""The system checks: each problem provoked, reported with an id of its own, documented."""

import inspect
import os
import re
import subprocess
import sys
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings

from django_remote_submission.checks import check_settings

ROOT = Path(__file__).parent.parent
PREFIX = "django_remote_submission."


def ids(messages):
    return [message.id for message in messages]


def redis_py_read_timeout():
    from redis.asyncio.connection import AbstractConnection

    return inspect.signature(AbstractConnection.__init__).parameters["socket_timeout"].default


REDIS_PY_TIMES_OUT = redis_py_read_timeout() is not None and redis_py_read_timeout() <= 5


def sqlite(options=None, name="site.sqlite3"):
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if options is not None:
        database["OPTIONS"] = options
    return database


@contextmanager
def configured(**overrides):
    with warnings.catch_warnings():
        # Only the settings are read: no connection is made with the overridden DATABASES.
        warnings.filterwarnings("ignore", "Overriding setting DATABASES", UserWarning)
        with override_settings(**overrides):
            yield


# Every problem check_settings reports, with the id it must get and what provokes it; the
# Celery app's problems are provoked in projects of their own below.
PROBLEMS = {
    "unknown host key policy": ("E001", {"REMOTE_SUBMISSION_HOST_KEY_POLICY": "sometimes"}),
    "unchecked host keys": ("W001", {"REMOTE_SUBMISSION_HOST_KEY_POLICY": "auto-add"}),
    "connect timeout": ("E002", {"REMOTE_SUBMISSION_CONNECT_TIMEOUT": "10"}),
    "known hosts file": ("E003", {"REMOTE_SUBMISSION_KNOWN_HOSTS_FILE": 42}),
    "short secret key": ("E004", {"REMOTE_SUBMISSION_SECRET_KEY": "short"}),
    "websocket prefix": ("E005", {"REMOTE_SUBMISSION_WEBSOCKET_PREFIX": "ws/"}),
    "login policy": ("E006", {"REMOTE_SUBMISSION_LOGIN_POLICY": "tests.no_such_module.f"}),
    "keepalive interval": ("E007", {"REMOTE_SUBMISSION_KEEPALIVE_INTERVAL": -5}),
    "connections per host": ("E008", {"REMOTE_SUBMISSION_MAX_CONNECTIONS_PER_HOST": "4"}),
    "kill grace": ("E009", {"REMOTE_SUBMISSION_KILL_GRACE": 0}),
    "reconnect timeout": ("E010", {"REMOTE_SUBMISSION_RECONNECT_TIMEOUT": None}),
    "lease": ("E011", {"REMOTE_SUBMISSION_LEASE_SECONDS": -20.0}),
    "queue grace": ("E012", {"REMOTE_SUBMISSION_QUEUE_GRACE": "300"}),
    "hand over after": ("E013", {"REMOTE_SUBMISSION_HAND_OVER_AFTER": -1}),
    "reattach window": ("E014", {"REMOTE_SUBMISSION_REATTACH_WINDOW": True}),
    "log batch lines": ("E015", {"REMOTE_SUBMISSION_LOG_BATCH_LINES": 2.5}),
    "log batch seconds": ("E016", {"REMOTE_SUBMISSION_LOG_BATCH_SECONDS": -1}),
    "log line length": ("E017", {"REMOTE_SUBMISSION_LOG_MAX_LINE_LENGTH": None}),
    "log bytes": ("E018", {"REMOTE_SUBMISSION_LOG_MAX_BYTES": 0}),
    "result file size": ("E019", {"REMOTE_SUBMISSION_RESULT_MAX_FILE_SIZE": "1G"}),
    "results' total size": ("E020", {"REMOTE_SUBMISSION_RESULT_MAX_TOTAL_SIZE": -1}),
    "worker's key file": ("E021", {"REMOTE_SUBMISSION_KEY_FILENAME": ["a", "b"]}),
    "stuck after": ("E022", {"REMOTE_SUBMISSION_STUCK_AFTER": "600"}),
    "redis read timeout": (
        "W002",
        {
            "CHANNEL_LAYERS": {
                "default": {
                    "BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
                }
            }
        },
    ),
    "sqlite locking": ("W003", {"DATABASES": {"default": sqlite()}}),
}
PROVOKABLE = {
    problem: value
    for problem, value in PROBLEMS.items()
    if value[0] != "W002" or REDIS_PY_TIMES_OUT  # W002 only where redis-py says 5 s
}
CELERY_IDS = {"W004", "W005"}  # provoked in a project of their own, below


def test_defaults_are_clean():
    assert check_settings() == []


def test_registered_with_django():
    with override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="sometimes"):
        messages = checks.run_checks()
    assert PREFIX + "E001" in ids(messages)


@pytest.mark.parametrize(("check_id", "overrides"), PROVOKABLE.values(), ids=list(PROVOKABLE))
def test_each_problem_is_reported_with_its_id(check_id, overrides):
    with configured(**overrides):
        assert ids(check_settings()) == [PREFIX + check_id]


def test_each_problem_has_an_id_of_its_own():
    reported = {}
    for problem, (_, overrides) in PROVOKABLE.items():
        with configured(**overrides):
            [message] = check_settings()
        reported[problem] = message.id
    assert len(set(reported.values())) == len(reported), reported


def test_every_id_is_documented_once():
    text = (ROOT / "docs" / "settings.rst").read_text(encoding="utf-8")
    labels = re.findall(r"^\.\. _check-([ew]\d{3}):$", text, re.MULTILINE)
    headings = re.findall(r"^``django_remote_submission\.([EW]\d{3})``$", text, re.MULTILINE)
    assert sorted(label.upper() for label in labels) == sorted(headings)
    tested = {check_id for check_id, _ in PROBLEMS.values()} | CELERY_IDS
    assert sorted(headings) == sorted(tested)


@override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="sometimes")
def test_unknown_host_key_policy():
    [message] = check_settings()
    assert "'sometimes' (str)" in message.msg
    assert "'reject'" in message.hint


@override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="auto-add")
def test_auto_add_warns():
    [message] = check_settings()
    assert isinstance(message, checks.Warning)


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("CONNECT_TIMEOUT", 0, "E002"),
        ("CONNECT_TIMEOUT", "10", "E002"),
        ("LOG_BATCH_SECONDS", -1, "E016"),
        ("LOG_BATCH_LINES", 0, "E015"),
        ("LOG_BATCH_LINES", 2.5, "E015"),
        ("LOG_BATCH_LINES", True, "E015"),
        ("LOG_MAX_LINE_LENGTH", None, "E017"),
        ("MAX_CONNECTIONS_PER_HOST", "4", "E008"),
        ("KEEPALIVE_INTERVAL", -5, "E007"),
        ("KEEPALIVE_INTERVAL", 1.5, "E007"),
        ("HAND_OVER_AFTER", "0", "E013"),
        ("LOG_MAX_BYTES", 0, "E018"),
        ("RESULT_MAX_FILE_SIZE", "1G", "E019"),
        ("RESULT_MAX_TOTAL_SIZE", -1, "E020"),
        ("STUCK_AFTER", 0, "E022"),
        ("STUCK_AFTER", 1.5, "E022"),
    ],
)
def test_bad_values_are_reported(name, value, check_id):
    with override_settings(**{f"REMOTE_SUBMISSION_{name}": value}):
        [message] = check_settings()
    assert message.id == PREFIX + check_id
    assert f"REMOTE_SUBMISSION_{name} is {value!r} ({type(value).__name__})" in message.msg
    assert "remove the setting to use the default" in message.hint


def test_a_number_from_the_environment_is_told_how_to_convert():
    with override_settings(REMOTE_SUBMISSION_LOG_BATCH_LINES="500"):
        [message] = check_settings()
    assert "int(...)" in message.hint
    assert "2000" in message.hint  # the default


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_MAX_BYTES", None),
        ("RESULT_MAX_FILE_SIZE", None),
        ("KEEPALIVE_INTERVAL", 0),
        ("HAND_OVER_AFTER", 0),
        ("CONNECT_TIMEOUT", 2.5),
        ("KNOWN_HOSTS_FILE", "/etc/ssh/ssh_known_hosts"),
        ("KNOWN_HOSTS_FILE", Path("/etc/ssh/ssh_known_hosts")),
    ],
)
def test_good_values_pass(name, value):
    with override_settings(**{f"REMOTE_SUBMISSION_{name}": value}):
        assert check_settings() == []


@override_settings(REMOTE_SUBMISSION_KNOWN_HOSTS_FILE=42)
def test_known_hosts_file_must_be_a_path():
    [message] = check_settings()
    assert "REMOTE_SUBMISSION_KNOWN_HOSTS_FILE is 42 (int)" in message.msg


@pytest.mark.parametrize("key", ["too-short-a-secret", b"x" * 40])
def test_a_bad_secret_key_names_its_type_not_its_value(key):
    with override_settings(REMOTE_SUBMISSION_SECRET_KEY=key):
        [message] = check_settings()
    assert message.id == PREFIX + "E004"
    assert f"REMOTE_SUBMISSION_SECRET_KEY is a {type(key).__name__}" in message.msg
    shown = message.msg + message.hint
    assert "too-short" not in shown
    assert "xxxx" not in shown


@pytest.mark.parametrize(
    ("hosts", "warned"),
    [
        (["redis://127.0.0.1:6379/0"], True),
        ([{"address": "redis://127.0.0.1:6379/0"}], True),
        ([{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 30}], False),
        ([{"address": "redis://127.0.0.1:6379/0", "socket_timeout": None}], False),
    ],
)
def test_redis_channel_layer_with_redis_py_short_timeouts_warns(hosts, warned):
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": hosts},
        }
    }
    warned = warned and REDIS_PY_TIMES_OUT
    with override_settings(CHANNEL_LAYERS=layers):
        messages = check_settings()
    assert ids(messages) == ([PREFIX + "W002"] if warned else [])
    if warned:
        assert "CHANNEL_LAYERS['default']" in messages[0].msg


def test_redis_channel_layer_without_hosts_uses_redis_py_defaults():
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers):
        expected = [PREFIX + "W002"] if REDIS_PY_TIMES_OUT else []
        assert ids(check_settings()) == expected


@pytest.mark.parametrize("prefix", ["ws/", "/ws", "", 3])
def test_the_websocket_prefix_must_be_a_path(prefix):
    with override_settings(REMOTE_SUBMISSION_WEBSOCKET_PREFIX=prefix):
        [message] = check_settings()
    assert message.id == PREFIX + "E005"
    assert f"({type(prefix).__name__})" in message.msg


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("tests.no_such_module.policy", "does not import"),
        ("tests.test_logins.no_such_policy", "does not import"),
        ("policy", "does not import"),
        ("tests.test_logins.CANARY", "not callable"),
        (42, "dotted path"),
    ],
)
def test_the_login_policy_must_name_a_callable(value, reason):
    with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY=value):
        [message] = check_settings()
    assert message.id == PREFIX + "E006"
    assert _found(value) in message.msg
    assert reason in message.msg


def _found(value):
    return f"{value!r} ({type(value).__name__})"


@pytest.mark.parametrize("value", [None, "", "tests.test_logins.cluster_logins"])
def test_a_login_policy_that_imports_passes(value):
    with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY=value):
        assert check_settings() == []


# SQLite ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        (None, ['"transaction_mode": "IMMEDIATE"', '"timeout"']),
        ({}, ['"transaction_mode": "IMMEDIATE"', '"timeout"']),
        ({"timeout": 30}, ['"transaction_mode": "IMMEDIATE"']),
        ({"timeout": 30, "transaction_mode": "DEFERRED"}, ['"transaction_mode": "IMMEDIATE"']),
        ({"transaction_mode": "IMMEDIATE"}, ['"timeout"']),
    ],
)
def test_sqlite_without_a_write_lock_at_begin_and_a_timeout_warns(options, missing):
    with configured(DATABASES={"default": sqlite(options)}):
        [message] = check_settings()
    assert message.id == PREFIX + "W003"
    assert isinstance(message, checks.Warning)
    assert "DATABASES['default'] is SQLite" in message.msg
    for option in missing:
        assert f"no {option}" in message.msg
    assert '{"transaction_mode": "IMMEDIATE", "timeout": 30}' in message.hint
    assert "journal_mode=wal" in message.hint


@pytest.mark.parametrize(
    "databases",
    [
        {"default": sqlite({"transaction_mode": "IMMEDIATE", "timeout": 20})},
        {"default": sqlite({"transaction_mode": "immediate", "timeout": 20})},
        {"default": sqlite({"transaction_mode": "EXCLUSIVE", "timeout": 20})},
        {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "site"}},
        # The app writes to the default database only (no router sends it elsewhere).
        {
            "default": {"ENGINE": "django.db.backends.postgresql", "NAME": "site"},
            "cache": sqlite(),
        },
    ],
)
def test_databases_the_app_writes_safely_to_pass(databases):
    with configured(DATABASES=databases):
        assert check_settings() == []


class EverythingToJobs:
    def db_for_write(self, model, **hints):
        return "jobs"


def test_the_database_a_router_sends_the_app_to_is_checked():
    databases = {
        "default": sqlite({"transaction_mode": "IMMEDIATE", "timeout": 20}),
        "jobs": sqlite(),
    }
    with configured(DATABASES=databases, DATABASE_ROUTERS=[f"{__name__}.EverythingToJobs"]):
        [message] = check_settings()
    assert message.id == PREFIX + "W003"
    assert "DATABASES['jobs']" in message.msg


# The Celery app: `python -m django check` in projects of their own --------------------

SETTINGS = """
SECRET_KEY = "a-project-for-the-checks"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_remote_submission",
]
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "db.sqlite3",
        "OPTIONS": {{"transaction_mode": "IMMEDIATE", "timeout": 20}},
    }}
}}
{extra}
"""

CELERY_PY = """
from celery import Celery

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
"""


def django_check(tmp_path, *, init="", celery_py=None, extra=""):
    """Runs `python -m django check` in the project proj in tmp_path; its reported ids."""
    package = tmp_path / "proj"
    package.mkdir()
    (package / "settings.py").write_text(SETTINGS.format(extra=extra))
    (package / "__init__.py").write_text(textwrap.dedent(init))
    if celery_py is not None:
        (package / "celery.py").write_text(celery_py)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CELERY_", "DRS_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="proj.settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    return re.findall(r"\(django_remote_submission\.(\w+)\)", output), output


def test_a_project_without_a_celery_app_is_warned(tmp_path):
    reported, output = django_check(tmp_path, extra='CELERY_BROKER_URL = "memory://"')
    assert reported == ["W004"]
    assert "No Celery app is set up" in output
    assert "amqp://localhost:5672" in output
    assert "proj/celery.py" in output
    assert "proj/__init__.py: from .celery import app as celery_app" in output
    assert 'app.config_from_object("django.conf:settings", namespace="CELERY")' in output


def test_celery_s_fallback_app_is_no_app(tmp_path):
    # Code that asks for celery.current_app with no app set up makes Celery's own.
    init = "from celery import current_app\ncurrent_app.main\n"
    reported, _ = django_check(tmp_path, init=init, extra='CELERY_BROKER_URL = "memory://"')
    assert reported == ["W004"]


def test_a_project_with_a_celery_app_and_a_broker_passes(tmp_path):
    reported, output = django_check(
        tmp_path,
        init="from .celery import app as celery_app\n",
        celery_py=CELERY_PY,
        # A broker nobody answers at: the check must not connect to it.
        extra='CELERY_BROKER_URL = "redis://127.0.0.1:1/0"',
    )
    assert reported == [], output


def test_a_celery_app_without_a_broker_is_warned(tmp_path):
    reported, output = django_check(
        tmp_path, init="from .celery import app as celery_app\n", celery_py=CELERY_PY
    )
    assert reported == ["W005"]
    assert "The Celery app 'proj' has no broker" in output
    assert 'Set CELERY_BROKER_URL = "redis://' in output


def test_a_celery_app_that_runs_tasks_eagerly_needs_no_broker(tmp_path):
    reported, output = django_check(
        tmp_path,
        init="from .celery import app as celery_app\n",
        celery_py=CELERY_PY,
        extra="CELERY_TASK_ALWAYS_EAGER = True",
    )
    assert reported == [], output


def test_the_example_project_passes(tmp_path):
    pytest.importorskip("environ")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CELERY_", "DRS_", "DJANGO_"))
    }
    env.update(DJANGO_SETTINGS_MODULE="server.settings", EXAMPLE_VAR_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=ROOT / "example",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "django_remote_submission." not in done.stdout + done.stderr

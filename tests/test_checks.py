import pytest
from django.core import checks
from django.test import override_settings

from django_remote_submission.checks import check_settings


def ids(messages):
    return [message.id for message in messages]


def test_defaults_are_clean():
    assert check_settings() == []


def test_registered_with_django():
    with override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="sometimes"):
        messages = checks.run_checks()
    assert "django_remote_submission.E001" in ids(messages)


@override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="sometimes")
def test_unknown_host_key_policy():
    [message] = check_settings()
    assert message.id == "django_remote_submission.E001"
    assert "'sometimes'" in message.msg
    assert "'reject'" in message.hint


@override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="auto-add")
def test_auto_add_warns():
    [message] = check_settings()
    assert message.id == "django_remote_submission.W001"
    assert isinstance(message, checks.Warning)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONNECT_TIMEOUT", 0),
        ("CONNECT_TIMEOUT", "10"),
        ("LOG_BATCH_SECONDS", -1),
        ("LOG_BATCH_LINES", 0),
        ("LOG_BATCH_LINES", 2.5),
        ("LOG_BATCH_LINES", True),
        ("LOG_MAX_LINE_LENGTH", None),
        ("MAX_CONNECTIONS_PER_HOST", "4"),
        ("KEEPALIVE_INTERVAL", -5),
        ("LOG_MAX_BYTES", 0),
        ("RESULT_MAX_FILE_SIZE", "1G"),
        ("RESULT_MAX_TOTAL_SIZE", -1),
    ],
)
def test_bad_values_are_reported(name, value):
    with override_settings(**{f"REMOTE_SUBMISSION_{name}": value}):
        [message] = check_settings()
    assert message.id == "django_remote_submission.E002"
    assert f"REMOTE_SUBMISSION_{name}" in message.msg
    assert repr(value) in message.msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_MAX_BYTES", None),
        ("RESULT_MAX_FILE_SIZE", None),
        ("KEEPALIVE_INTERVAL", 0),
        ("CONNECT_TIMEOUT", 2.5),
        ("KNOWN_HOSTS_FILE", "/etc/ssh/ssh_known_hosts"),
    ],
)
def test_good_values_pass(name, value):
    with override_settings(**{f"REMOTE_SUBMISSION_{name}": value}):
        assert check_settings() == []


@override_settings(REMOTE_SUBMISSION_KNOWN_HOSTS_FILE=42)
def test_known_hosts_file_must_be_a_path():
    [message] = check_settings()
    assert message.id == "django_remote_submission.E003"


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
    import inspect

    from redis.asyncio.connection import AbstractConnection

    default = inspect.signature(AbstractConnection.__init__).parameters["socket_timeout"].default
    warned = warned and default is not None and default <= 5  # only where redis-py says 5 s
    with override_settings(CHANNEL_LAYERS=layers):
        assert ids(check_settings()) == (["django_remote_submission.W002"] if warned else [])


def test_redis_channel_layer_without_hosts_uses_redis_py_defaults():
    import inspect

    from redis.asyncio.connection import AbstractConnection

    default = inspect.signature(AbstractConnection.__init__).parameters["socket_timeout"].default
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers):
        expected = ["django_remote_submission.W002"] if default and default <= 5 else []
        assert ids(check_settings()) == expected


@pytest.mark.parametrize("prefix", ["ws/", "/ws", "", 3])
def test_the_websocket_prefix_must_be_a_path(prefix):
    with override_settings(REMOTE_SUBMISSION_WEBSOCKET_PREFIX=prefix):
        assert ids(check_settings()) == ["django_remote_submission.E005"]


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
    assert message.id == "django_remote_submission.E006"
    assert repr(value) in message.msg
    assert reason in message.msg


@pytest.mark.parametrize("value", [None, "", "tests.test_logins.cluster_logins"])
def test_a_login_policy_that_imports_passes(value):
    with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY=value):
        assert check_settings() == []

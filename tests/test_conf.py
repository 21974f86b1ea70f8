from pathlib import Path

from django.test import override_settings

from django_remote_submission.conf import conf


def test_defaults():
    assert conf.HOST_KEY_POLICY == "reject"
    assert conf.KNOWN_HOSTS_FILE is None
    assert conf.LOG_BATCH_LINES > 0
    assert conf.LOG_BATCH_SECONDS > 0


def test_settings_are_read_at_access_time():
    with override_settings(
        REMOTE_SUBMISSION_HOST_KEY_POLICY="tofu",
        REMOTE_SUBMISSION_KNOWN_HOSTS_FILE="/srv/known_hosts",
        REMOTE_SUBMISSION_LOG_MAX_BYTES=None,
    ):
        assert conf.HOST_KEY_POLICY == "tofu"
        assert Path("/srv/known_hosts") == conf.KNOWN_HOSTS_FILE
        assert conf.LOG_MAX_BYTES is None
    assert conf.HOST_KEY_POLICY == "reject"


def test_a_known_hosts_file_given_as_bytes_or_a_path_is_read_as_a_path():
    # Check E003 accepts what os.fspath accepts; so must the setting.
    for value in (b"/srv/known_hosts", Path("/srv/known_hosts")):
        with override_settings(REMOTE_SUBMISSION_KNOWN_HOSTS_FILE=value):
            assert Path("/srv/known_hosts") == conf.KNOWN_HOSTS_FILE


def test_the_login_policy_is_a_dotted_path_read_at_access_time():
    assert conf.LOGIN_POLICY is None
    with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY="tests.test_logins.cluster_logins"):
        assert conf.LOGIN_POLICY == "tests.test_logins.cluster_logins"
    with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY=""):
        assert conf.LOGIN_POLICY is None


def test_stuck_after_is_ten_minutes_unless_set():
    assert conf.STUCK_AFTER == 600
    with override_settings(REMOTE_SUBMISSION_STUCK_AFTER=60):
        assert conf.STUCK_AFTER == 60

import pytest
from django.test import override_settings

from django_remote_submission import secrets
from django_remote_submission.checks import check_settings


def test_seal_hides_the_value_and_unseal_restores_it():
    sealed = secrets.seal("hunter2")
    assert secrets.is_sealed(sealed)
    assert "hunter2" not in repr(sealed)
    assert secrets.unseal(sealed) == "hunter2"
    assert secrets.seal("hunter2") != sealed  # a fresh token every time


def test_unseal_leaves_other_values_alone():
    assert secrets.unseal("plain") == "plain"
    assert secrets.unseal(None) is None
    assert secrets.unseal({"a": 1}) == {"a": 1}


def test_keys_rotate_through_secret_key_fallbacks():
    sealed = secrets.seal("pw")
    with override_settings(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=["tests-only-not-secret"]):
        assert secrets.unseal(sealed) == "pw"
    with (
        override_settings(SECRET_KEY="another-secret-key", SECRET_KEY_FALLBACKS=[]),
        pytest.raises(secrets.SecretError, match="must share SECRET_KEY"),
    ):
        secrets.unseal(sealed)


def test_a_dedicated_key_setting_wins():
    dedicated = "x" * 40
    with override_settings(REMOTE_SUBMISSION_SECRET_KEY=dedicated):
        sealed = secrets.seal("pw")
        with override_settings(SECRET_KEY="changed"):
            assert secrets.unseal(sealed) == "pw"
    with pytest.raises(secrets.SecretError):
        secrets.unseal(sealed)


def test_tampering_is_detected():
    sealed = secrets.seal("pw")
    token = sealed[secrets.MARKER]
    broken = {secrets.MARKER: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
    with pytest.raises(secrets.SecretError):
        secrets.unseal(broken)


@override_settings(REMOTE_SUBMISSION_SECRET_KEY="short")
def test_a_short_dedicated_key_is_reported():
    [message] = check_settings()
    assert message.id == "django_remote_submission.E004"

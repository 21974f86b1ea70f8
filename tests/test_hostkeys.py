import subprocess

import pytest

from django_remote_submission.testing import generate_key_pair
from django_remote_submission.transport.hostkeys import HostKey, known_hosts_name


def test_fingerprint_matches_ssh_keygen(tmp_path):
    _, public = generate_key_pair(tmp_path / "k", comment="a comment")
    keygen = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{tmp_path / 'k'}.pub"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert HostKey.parse(public).fingerprint == keygen.stdout.split()[1]


def test_parse_key_lines_and_known_hosts_lines(tmp_path):
    _, public = generate_key_pair(tmp_path / "k")
    key = HostKey.parse(public)
    assert key.key_type == "ssh-ed25519"
    assert HostKey.parse(f"[127.0.0.1]:2222 {public}") == key
    assert HostKey.parse(f"{public} with a comment") == key
    assert key.line == public
    assert str(key) == f"ssh-ed25519 {key.fingerprint}"


@pytest.mark.parametrize("text", ["", "garbage", "ssh-ed25519", "ssh-ed25519 not*base64!"])
def test_parse_refuses_what_is_not_a_key(text):
    with pytest.raises(ValueError, match="Not an SSH public key"):
        HostKey.parse(text)


def test_known_hosts_name():
    assert known_hosts_name("example.org", 22) == "example.org"
    assert known_hosts_name("example.org", 2222) == "[example.org]:2222"

"""The operator's management commands."""

import io

import pytest
from django.core.management import CommandError, call_command

from django_remote_submission.testing import free_port, generate_key_pair
from django_remote_submission.transport.hostkeys import HostKey
from tests.factories import make_server

pytestmark = [pytest.mark.django_db, pytest.mark.ssh]


def pin(*args, answer=None, monkeypatch=None):
    out = io.StringIO()
    if answer is not None:
        monkeypatch.setattr("builtins.input", lambda prompt: answer)
    call_command("remote_pin_host_key", *args, stdout=out)
    return out.getvalue()


def test_pin_host_key_fetches_shows_and_pins(ssh_account):
    server = make_server(hostname=ssh_account.hostname, port=ssh_account.port, title="cluster")
    output = pin(str(server.pk), "--yes")
    expected = HostKey.parse(ssh_account.host_key)
    assert expected.fingerprint in output
    assert "Pinned" in output
    server.refresh_from_db()
    assert HostKey.parse(server.host_key) == expected
    assert "already pinned" in pin("cluster", "--yes")


def test_pin_host_key_asks_first(ssh_account, monkeypatch):
    server = make_server(hostname=ssh_account.hostname, port=ssh_account.port)
    with pytest.raises(CommandError, match="Not pinned"):
        pin(str(server.pk), answer="no", monkeypatch=monkeypatch)
    server.refresh_from_db()
    assert server.host_key == ""
    pin(str(server.pk), answer="yes", monkeypatch=monkeypatch)
    server.refresh_from_db()
    assert server.host_key


def test_pin_host_key_warns_when_replacing(ssh_account, tmp_path):
    _, old = generate_key_pair(tmp_path / "old")
    server = make_server(hostname=ssh_account.hostname, port=ssh_account.port, host_key=old)
    output = pin(str(server.pk), "--yes")
    assert f"replaces the pinned key ssh-ed25519 {HostKey.parse(old).fingerprint}" in output
    server.refresh_from_db()
    assert HostKey.parse(server.host_key) == HostKey.parse(ssh_account.host_key)


def test_pin_a_given_key_without_fetching(tmp_path):
    _, given = generate_key_pair(tmp_path / "given")
    server = make_server(hostname="unreachable.invalid")
    pin(str(server.pk), "--key", given, "--yes")
    server.refresh_from_db()
    assert server.host_key == given.split(" ", 2)[0] + " " + given.split()[1]


def test_pin_host_key_errors():
    with pytest.raises(CommandError, match="No server has the id or title 'ghost'"):
        pin("ghost", "--yes")
    server = make_server(hostname="127.0.0.1", port=free_port())
    with pytest.raises(CommandError, match="refused"):
        pin(str(server.pk), "--yes")
    with pytest.raises(CommandError, match="Not an SSH public key"):
        pin(str(server.pk), "--key", "garbage", "--yes")

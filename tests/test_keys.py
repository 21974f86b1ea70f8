import pytest

from django_remote_submission.exceptions import AuthenticationFailed, RemoteSubmissionError
from django_remote_submission.keys import deploy_key, find_public_key, remove_key
from django_remote_submission.testing import generate_key_pair
from django_remote_submission.transport import SSHTransport
from django_remote_submission.transport.ssh import ConnectionPool
from tests.conftest import ssh_transport, unavailable

pytestmark = pytest.mark.ssh


def key_login(account, key):
    return SSHTransport(
        account.hostname,
        account.port,
        account.username,
        key_filename=key,
        host_key=account.host_key,
        connection_pool=ConnectionPool(),
    )


def ssh_dir_state(t):
    listing = t.run(["sh", "-c", 'cd "$HOME/.ssh" && ls -A && stat -c "%a %n" . authorized_keys'])
    assert listing.ok, listing.stderr
    return listing.stdout.decode().split("\n")


def test_deploy_then_remove_a_key(ssh_account, tmp_path):
    if ssh_account.name == "external":
        pytest.skip("does not edit the external server's authorized_keys")
    if not ssh_account.password:
        unavailable(f"the {ssh_account.name} server offers no password login here")
    key, public = generate_key_pair(tmp_path / "deployed", comment="drs-test-key")
    with ssh_transport(ssh_account) as admin:
        before = admin.read_file(".ssh/authorized_keys")
        with pytest.raises(AuthenticationFailed):
            key_login(ssh_account, key).open()

        assert deploy_key(admin, public) is True
        assert deploy_key(admin, public) is False  # idempotent
        # The same key under another comment counts as present too.
        assert deploy_key(admin, public.replace("drs-test-key", "other")) is False
        text = admin.read_file(".ssh/authorized_keys").decode()
        assert text.count(public.split()[1]) == 1
        assert text.startswith(before.decode())

        state = ssh_dir_state(admin)
        assert "700 ." in state
        assert "600 authorized_keys" in state
        assert [name for name in state if name.startswith(".authorized_keys")] == []

        with key_login(ssh_account, key) as t:
            assert t.run(["whoami"]).stdout.strip().decode() == ssh_account.username

        assert remove_key(admin, public) is True
        assert remove_key(admin, public) is False
        assert admin.read_file(".ssh/authorized_keys") == before
        assert ssh_dir_state(admin) == state
    with pytest.raises(AuthenticationFailed):
        key_login(ssh_account, key).open()
    with key_login(ssh_account, ssh_account.key_filename) as t:  # the others still work
        assert t.run(["true"]).ok


def test_deploy_creates_a_missing_ssh_directory_with_safe_modes(tmp_path, monkeypatch):
    from django_remote_submission.transport import LocalTransport

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    _, public = generate_key_pair(tmp_path / "k")
    with LocalTransport(tmp_path) as t:
        assert deploy_key(t, public)
    ssh = tmp_path / "home" / ".ssh"
    assert ssh.stat().st_mode & 0o777 == 0o700
    assert (ssh / "authorized_keys").stat().st_mode & 0o777 == 0o600
    assert (ssh / "authorized_keys").read_text() == public + "\n"
    assert sorted(p.name for p in ssh.iterdir()) == ["authorized_keys"]


def test_deploy_appends_on_a_new_line_when_the_file_lacks_one(tmp_path, monkeypatch):
    from django_remote_submission.transport import LocalTransport

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir(mode=0o700)
    (tmp_path / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAAexisting no-newline")
    _, public = generate_key_pair(tmp_path / "k")
    with LocalTransport(tmp_path) as t:
        deploy_key(t, public)
    lines = (tmp_path / ".ssh" / "authorized_keys").read_text().splitlines()
    assert lines == ["ssh-ed25519 AAAAexisting no-newline", public]


def test_refuses_what_is_not_a_public_key(tmp_path):
    from django_remote_submission.transport import LocalTransport

    with pytest.raises(ValueError, match="Not an SSH public key"):
        deploy_key(LocalTransport(tmp_path), "rm -rf ~")


def test_find_public_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RemoteSubmissionError, match="No public key found"):
        find_public_key()
    key, public = generate_key_pair(tmp_path / ".ssh" / "id_ed25519")
    assert find_public_key() == public
    assert find_public_key(str(key)) == public  # a private key path finds its .pub
    assert find_public_key(f"{key}.pub") == public
    other, other_public = generate_key_pair(tmp_path / "elsewhere")
    assert find_public_key(other) == other_public

"""The public helpers of django_remote_submission.testing."""

import base64
import io
import socket
import time
from pathlib import Path

import paramiko
import pytest

from django_remote_submission.testing import (
    EmbeddedSSHServer,
    RedisServer,
    free_port,
    generate_key_pair,
)
from tests.conftest import unavailable


def test_generate_key_pair_writes_a_private_key_paramiko_loads(tmp_path):
    path, public = generate_key_pair(tmp_path / "k", comment="me@here")
    assert path.stat().st_mode & 0o777 == 0o600
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    assert public == f"ssh-ed25519 {key.get_base64()} me@here"
    assert (tmp_path / "k.pub").read_text() == public + "\n"


def test_generate_key_pair_with_passphrase(tmp_path):
    path, _ = generate_key_pair(tmp_path / "k", passphrase="s3cret")
    with pytest.raises(paramiko.PasswordRequiredException):
        paramiko.Ed25519Key.from_private_key_file(str(path))
    paramiko.Ed25519Key.from_private_key_file(str(path), password="s3cret")


def login(server, username=None, **credentials):
    """A paramiko client that trusts only the server's own host key."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_type, data = server.host_key.split()[:2]
    host_key = paramiko.PKey.from_type_string(key_type, base64.b64decode(data))
    client.get_host_keys().add(f"[{server.host}]:{server.port}", key_type, host_key)
    try:
        client.connect(
            server.host,
            server.port,
            username or server.username,
            allow_agent=False,
            look_for_keys=False,
            **credentials,
        )
    except BaseException:
        client.close()
        raise
    return client


@pytest.mark.ssh
def test_embedded_server_reads_authorized_keys_from_its_home_at_each_login(tmp_path):
    key, public = generate_key_pair(tmp_path / "k")
    with EmbeddedSSHServer(home=tmp_path / "home") as server:
        with pytest.raises(paramiko.AuthenticationException):
            login(server, key_filename=str(key))
        (server.home / ".ssh").mkdir(parents=True)
        (server.home / ".ssh" / "authorized_keys").write_text(public + "\n")
        with login(server, key_filename=str(key)) as client:
            _, stdout, _ = client.exec_command("pwd; echo $HOME")
            assert stdout.read().decode().split() == [str(server.home)] * 2
            with client.open_sftp() as sftp:
                sftp.putfo(io.BytesIO(b"relative"), "rel.txt")
        assert (server.home / "rel.txt").read_bytes() == b"relative"
    assert server.known_hosts_line.startswith(f"[127.0.0.1]:{server.port} ssh-ed25519 ")


@pytest.mark.ssh
def test_embedded_server_refuses_other_users_and_interactive_shells(tmp_path):
    with EmbeddedSSHServer(password="pw", home=tmp_path) as server:
        with pytest.raises(paramiko.AuthenticationException):
            login(server, "someone-else", password="pw")
        with pytest.raises(paramiko.AuthenticationException):
            login(server, password="wrong")
        with login(server, password="pw") as client:
            channel = client.get_transport().open_session()
            channel.invoke_shell()
            assert channel.recv_exit_status() == 1
            channel.close()


@pytest.mark.ssh
def test_embedded_server_passes_stdin_and_reports_a_signal_death(tmp_path):
    with (
        EmbeddedSSHServer(password="pw", home=tmp_path) as server,
        login(server, password="pw") as client,
    ):
        stdin, stdout, _ = client.exec_command("tr a-z A-Z")
        stdin.write(b"hello\n")
        stdin.channel.shutdown_write()
        assert stdout.read() == b"HELLO\n"
        assert stdout.channel.recv_exit_status() == 0
        _, stdout, _ = client.exec_command("kill -TERM $$")
        assert stdout.channel.recv_exit_status() == -1  # paramiko's "killed by a signal"


@pytest.mark.ssh
def test_embedded_server_stop_ends_the_commands_still_running(tmp_path):
    marker = tmp_path / "started"
    with EmbeddedSSHServer(password="pw", home=tmp_path) as server:
        client = login(server, password="pw")
        # A command that would outlive its connection, as `tail -f` does.
        client.exec_command(f"touch {marker}; sleep 300 & echo $! > {tmp_path}/pid; wait")
        deadline = time.monotonic() + 30
        while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = int((tmp_path / "pid").read_text())
        client.close()
    # stop() waited for it: the sleep is gone, not even a zombie of ours.
    assert not Path(f"/proc/{pid}").exists() or "(sleep) Z" in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.redis
def test_redis_server_starts_and_stops():
    import redis

    try:
        server = RedisServer().start()
    except RuntimeError as exc:
        unavailable(str(exc))
    try:
        with redis.Redis.from_url(server.url) as connection:
            assert connection.ping()
    finally:
        server.stop()
    with (
        redis.Redis.from_url(server.url, socket_connect_timeout=1) as connection,
        pytest.raises(redis.ConnectionError),
    ):
        connection.ping()


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

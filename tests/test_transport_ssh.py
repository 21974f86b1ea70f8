"""What only SSHTransport does: authentication, host keys, errors, the connection pool."""

import logging
import select
import socket
import threading
import time

import paramiko
import pytest
from django.test import override_settings

from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRejected,
)
from django_remote_submission.testing import free_port, generate_key_pair
from django_remote_submission.transport import SSHTransport
from django_remote_submission.transport.hostkeys import HostKey
from django_remote_submission.transport.ssh import ConnectionPool, fetch_host_key
from tests.conftest import unavailable

pytestmark = pytest.mark.ssh


@pytest.fixture
def secret_logs(caplog):
    """Every log record of every logger, paramiko's included, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    """The worker's own ~/.ssh (known_hosts, keys) must not decide these tests."""
    home = tmp_path / "worker-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def transport(account, *, pool=None, **options):
    options.setdefault("host_key", account.host_key)
    return SSHTransport(
        account.hostname,
        account.port,
        options.pop("username", account.username),
        connection_pool=pool if pool is not None else ConnectionPool(),
        **options,
    )


def assert_secret_nowhere(secret, exc, caplog):
    assert secret not in str(exc)
    assert secret not in repr(exc.value if hasattr(exc, "value") else exc)
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert all(secret not in str(record.args) for record in caplog.records)


def needs_password(account):
    if not account.password:
        unavailable(f"the {account.name} server offers no password login here")


def test_password_login(ssh_account, secret_logs):
    needs_password(ssh_account)
    with transport(ssh_account, password=ssh_account.password) as t:
        assert t.run(["whoami"]).stdout.strip().decode() == ssh_account.username
    assert_secret_nowhere(ssh_account.password, "", secret_logs)


def test_wrong_password(ssh_account, secret_logs):
    needs_password(ssh_account)
    wrong = "Wr0ng-" + ssh_account.password[:6]
    with pytest.raises(AuthenticationFailed, match="refused the password") as excinfo:
        transport(ssh_account, password=wrong).open()
    assert_secret_nowhere(wrong, excinfo.value, secret_logs)
    assert f"{ssh_account.hostname}:{ssh_account.port}" in str(excinfo.value)


def test_wrong_user(ssh_account, secret_logs):
    needs_password(ssh_account)
    with pytest.raises(AuthenticationFailed, match="'nobody-here'") as excinfo:
        transport(ssh_account, password=ssh_account.password, username="nobody-here").open()
    assert_secret_nowhere(ssh_account.password, excinfo.value, secret_logs)


def test_key_login(ssh_account):
    with transport(ssh_account, key_filename=ssh_account.key_filename) as t:
        assert t.run(["true"]).ok


def test_key_login_with_the_path_of_the_pub_file(ssh_account):
    with transport(ssh_account, key_filename=f"{ssh_account.key_filename}.pub") as t:
        assert t.run(["true"]).ok


def test_key_with_passphrase(ssh_account, secret_logs):
    if not ssh_account.passphrase_key_filename:
        unavailable(f"the {ssh_account.name} server has no passphrase key here")
    key = ssh_account.passphrase_key_filename
    with transport(ssh_account, key_filename=key, passphrase=ssh_account.passphrase) as t:
        assert t.run(["true"]).ok
    with pytest.raises(AuthenticationFailed, match="encrypted: give its passphrase"):
        transport(ssh_account, key_filename=key).open()
    with pytest.raises(AuthenticationFailed, match="passphrase does not open") as excinfo:
        transport(ssh_account, key_filename=key, passphrase="not-the-passphrase").open()
    assert_secret_nowhere(ssh_account.passphrase, excinfo.value, secret_logs)


def test_key_the_server_does_not_know(ssh_account, tmp_path):
    stranger, _ = generate_key_pair(tmp_path / "stranger")
    with pytest.raises(AuthenticationFailed, match="refused the key"):
        transport(ssh_account, key_filename=stranger).open()


def test_missing_key_files(ssh_account, tmp_path):
    with pytest.raises(AuthenticationFailed, match="does not exist"):
        transport(ssh_account, key_filename=tmp_path / "nope").open()
    (tmp_path / "orphan.pub").write_text("ssh-ed25519 AAAA")
    with pytest.raises(AuthenticationFailed, match="its private key .*orphan does not exist"):
        transport(ssh_account, key_filename=tmp_path / "orphan.pub").open()


def test_agent_and_default_keys_when_no_credentials_are_given(ssh_account, empty_home):
    """Without password or key, the worker's ~/.ssh keys are tried (as 2.x did)."""
    ssh_dir = empty_home / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_bytes(ssh_account.key_filename.read_bytes())
    (ssh_dir / "id_ed25519").chmod(0o600)
    with transport(ssh_account, allow_agent=False) as t:
        assert t.run(["true"]).ok


def test_connection_refused():
    port = free_port()
    with pytest.raises(ConnectionFailed, match=f"refused by 127.0.0.1:{port}"):
        SSHTransport("127.0.0.1", port, "x", password="p", connection_pool=ConnectionPool()).open()


def test_unknown_host_name():
    with pytest.raises(
        ConnectionFailed, match="Cannot resolve the host name 'no-such-host.invalid'"
    ):
        SSHTransport("no-such-host.invalid", 22, "x", connection_pool=ConnectionPool()).open()


@override_settings(REMOTE_SUBMISSION_CONNECT_TIMEOUT=0.5)
def test_a_server_that_never_sends_its_banner_times_out_saying_so():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        expected = (
            f"Timed out after 0.5 s waiting for the SSH banner of 127.0.0.1:{port}: something "
            "accepts connections there but does not speak SSH (or is too busy to answer)."
        )
        with pytest.raises(ConnectionFailed) as excinfo:
            SSHTransport(
                "127.0.0.1", port, "x", password="p", connection_pool=ConnectionPool()
            ).open()
        assert str(excinfo.value) == expected
        with pytest.raises(ConnectionFailed) as excinfo:
            fetch_host_key("127.0.0.1", port)
        assert str(excinfo.value) == expected


class CuttingProxy:
    """Forwards connections to a server, but closes the first ``cut`` it accepts at once,
    before the server's banner, as sshd's MaxStartups does with new connections while too
    many are being opened."""

    def __init__(self, port, cut):
        self.target = port
        self.cut = cut
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = False
        self.threads = [threading.Thread(target=self._accept)]
        self.threads[0].start()

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            self.accepted += 1
            if self.accepted <= self.cut:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            thread = threading.Thread(target=self._relay, args=(client, upstream))
            self.threads.append(thread)
            thread.start()

    def _relay(self, client, upstream):
        with client, upstream:
            while not self.closing:
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                        if not data:
                            return
                        (upstream if sock is client else client).sendall(data)
                    except OSError:
                        return  # reset by one side

    def close(self):
        self.closing = True
        for thread in self.threads:
            thread.join(10)
        self.listener.close()


@pytest.fixture
def cutting_proxy(openssh_account):
    proxies = []

    def start(cut):
        proxies.append(CuttingProxy(openssh_account.port, cut))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


def test_a_handshake_the_server_cuts_short_is_tried_again(openssh_account, cutting_proxy):
    proxy = cutting_proxy(cut=2)
    pool = ConnectionPool()
    t = SSHTransport(
        "127.0.0.1",
        proxy.port,
        openssh_account.username,
        connection_pool=pool,
        host_key=openssh_account.host_key,
        **credentials(openssh_account),
    )
    with t:
        assert t.run(["echo", "in"]).stdout == b"in\n"
    assert proxy.accepted == 3
    pool.close_all()
    proxy.cut = 4
    assert fetch_host_key("127.0.0.1", proxy.port) == HostKey.parse(openssh_account.host_key)
    assert proxy.accepted == 5


def test_a_server_that_always_cuts_the_handshake_short(cutting_proxy):
    proxy = cutting_proxy(cut=100)
    with pytest.raises(ConnectionFailed) as excinfo:
        SSHTransport(
            "127.0.0.1", proxy.port, "x", password="p", connection_pool=ConnectionPool()
        ).open()
    assert str(excinfo.value) == (
        f"127.0.0.1:{proxy.port} closed the connection before sending its SSH banner, 4 times "
        "in a row: it may be refusing new connections while many are being opened (sshd's "
        "MaxStartups), or to this address."
    )
    assert proxy.accepted == 4


# Host keys -----------------------------------------------------------------------------


def credentials(account):
    if account.password:
        return {"password": account.password}
    return {"key_filename": account.key_filename}


def test_unknown_host_key_is_rejected_by_default(ssh_account, secret_logs):
    offered = HostKey.parse(ssh_account.host_key)
    with pytest.raises(HostKeyRejected, match="is unknown") as excinfo:
        transport(ssh_account, host_key=None, **credentials(ssh_account)).open()
    assert offered.fingerprint in str(excinfo.value)
    if ssh_account.password:
        assert_secret_nowhere(ssh_account.password, excinfo.value, secret_logs)


def test_pinned_key_is_accepted(ssh_account):
    with transport(ssh_account, **credentials(ssh_account)) as t:
        assert t.run(["true"]).ok


def test_changed_key_is_refused_with_both_fingerprints(ssh_account, tmp_path):
    _, other = generate_key_pair(tmp_path / "impostor")
    with pytest.raises(HostKeyRejected, match="CHANGED") as excinfo:
        transport(ssh_account, host_key=other, **credentials(ssh_account)).open()
    assert HostKey.parse(other).fingerprint in str(excinfo.value)
    assert HostKey.parse(ssh_account.host_key).fingerprint in str(excinfo.value)


def test_known_hosts_of_the_worker_are_honoured(ssh_account, empty_home):
    (empty_home / ".ssh").mkdir()
    (empty_home / ".ssh" / "known_hosts").write_text(ssh_account.known_hosts_line + "\n")
    with transport(ssh_account, host_key=None, **credentials(ssh_account)) as t:
        assert t.run(["true"]).ok


def test_a_changed_key_in_known_hosts_is_refused(ssh_account, empty_home, tmp_path):
    _, other = generate_key_pair(tmp_path / "impostor")
    (empty_home / ".ssh").mkdir()
    name = ssh_account.known_hosts_line.split()[0]
    (empty_home / ".ssh" / "known_hosts").write_text(f"{name} {other}\n")
    with pytest.raises(HostKeyRejected, match="CHANGED"):
        transport(ssh_account, host_key=None, **credentials(ssh_account)).open()


def test_known_hosts_file_setting_is_honoured(ssh_account, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(ssh_account.known_hosts_line + "\n")
    with (
        override_settings(REMOTE_SUBMISSION_KNOWN_HOSTS_FILE=str(known)),
        transport(ssh_account, host_key=None, **credentials(ssh_account)) as t,
    ):
        assert t.run(["true"]).ok


def test_trust_on_first_use_pins_then_refuses_a_change(ssh_account, tmp_path):
    pinned = []
    with override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="tofu"):
        first = transport(
            ssh_account, host_key=None, on_new_host_key=pinned.append, **credentials(ssh_account)
        )
        with first:
            assert first.run(["true"]).ok
        assert [HostKey.parse(line) for line in pinned] == [HostKey.parse(ssh_account.host_key)]
        with transport(ssh_account, host_key=pinned[0], **credentials(ssh_account)) as again:
            assert again.run(["true"]).ok
        _, other = generate_key_pair(tmp_path / "impostor")
        with pytest.raises(HostKeyRejected, match="CHANGED"):
            transport(ssh_account, host_key=other, **credentials(ssh_account)).open()


def test_auto_add_accepts_an_unknown_key(ssh_account, secret_logs):
    with (
        override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="auto-add"),
        transport(ssh_account, host_key=None, **credentials(ssh_account)) as t,
    ):
        assert t.run(["true"]).ok
    assert any("auto-add" in record.getMessage() for record in secret_logs.records)


def test_a_connection_the_server_closes_mid_command_fails_readably(openssh_account):
    pool = ConnectionPool()
    with transport(openssh_account, pool=pool, **credentials(openssh_account)) as t:
        t.mkdir_p(openssh_account.remote_directory)
        assert t.file_size(openssh_account.remote_directory) is not None  # SFTP is open
        # The command's parent is the server's process for this connection.
        with pytest.raises(ConnectionFailed) as excinfo:
            t.run_shell("echo started; kill -KILL $PPID; sleep 10")
        with pytest.raises(ConnectionFailed) as later:
            t.file_size(openssh_account.remote_directory)
    where = f"{openssh_account.username}@{openssh_account.hostname}:{openssh_account.port}"
    assert str(excinfo.value) == (
        f"The connection to {where} was closed by the server while running a command."
    )
    assert str(later.value).startswith(f"The connection to {where} was closed")
    assert "EOFError" not in str(later.value)
    pool.close_all()


def test_a_command_with_input_on_a_connection_the_server_closes(openssh_account):
    pool = ConnectionPool()
    with transport(openssh_account, pool=pool, **credentials(openssh_account)) as t:
        # Input unread when the server's process dies makes its kernel reset the
        # connection, rather than close it.
        gone = r"The connection to \S+ (was closed by the server|was lost) while"
        with pytest.raises(ConnectionFailed, match=gone + " running a command"):
            t.run_shell("kill -KILL $PPID; sleep 10", input=b"x" * 100_000)
        # Nothing else of ours was on that connection: the next command takes another.
        assert t.run(["echo", "again"]).stdout == b"again\n"
    pool.close_all()


def test_a_dead_connection_that_carried_a_session_of_ours_is_not_replaced(openssh_account):
    pool = ConnectionPool()
    with transport(openssh_account, pool=pool, **credentials(openssh_account)) as t:
        follower = t._stream("sleep 30")  # what a job's tail -f is
        gone = r"The connection to \S+ (was closed by the server|was lost) while"
        with pytest.raises(ConnectionFailed, match=gone + " running a command"):
            t.run_shell("kill -KILL $PPID; sleep 10", input=b"x" * 100_000)
        # Another connection must not hide that the follower's connection was lost.
        with pytest.raises(ConnectionFailed, match=gone + " in use"):
            t.run(["true"])
        follower.close()
    pool.close_all()


def test_the_reason_the_server_gives_for_dropping_a_connection_is_told(openssh_account):
    pool = ConnectionPool()
    with transport(openssh_account, pool=pool, **credentials(openssh_account)) as t:
        assert t.run(["true"]).ok
        follower = t._stream("sleep 30")  # a session of ours, lost with the connection
        # What paramiko did, now and then, under load: an end-of-file on a channel both
        # sides have closed already, which makes sshd drop the whole connection.
        connection = t.client.get_transport()
        channel = connection.open_session()
        channel.exec_command("true")
        channel.recv_exit_status()
        while not channel.closed:
            time.sleep(0.01)
        time.sleep(0.2)  # for the server to read our close
        eof = paramiko.Message()
        eof.add_byte(paramiko.common.cMSG_CHANNEL_EOF)
        eof.add_int(channel.remote_chanid)
        connection._send_user_message(eof)
        deadline = time.monotonic() + 10
        while connection.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConnectionFailed) as excinfo:
            t.run(["true"])
        follower.close()
    assert "was closed by the server" in str(excinfo.value)
    assert "ieof packet referred to nonexistent channel" in str(excinfo.value)
    pool.close_all()


def test_fetch_host_key(ssh_account):
    assert fetch_host_key(ssh_account.hostname, ssh_account.port) == HostKey.parse(
        ssh_account.host_key
    )
    with pytest.raises(ConnectionFailed, match="refused"):
        fetch_host_key("127.0.0.1", free_port())


# Connections ---------------------------------------------------------------------------


def test_transports_with_the_same_credentials_share_one_connection(ssh_account):
    pool = ConnectionPool()
    first = transport(ssh_account, pool=pool, **credentials(ssh_account))
    second = transport(ssh_account, pool=pool, **credentials(ssh_account))
    with first, second:
        shared = first.client
        assert second.client is shared
        assert first.run(["echo", "1"]).stdout == b"1\n"
        assert second.run(["echo", "2"]).stdout == b"2\n"
        assert len(pool) == 1
    with transport(ssh_account, pool=pool, **credentials(ssh_account)) as third:
        assert third.client is shared  # the idle connection, reused without a handshake
        assert third.run(["true"]).ok
    assert len(pool) == 1  # kept open, idle, for the next job
    pool.close_all()
    assert len(pool) == 0


def test_other_credentials_never_ride_on_a_pooled_connection(ssh_account, tmp_path):
    needs_password(ssh_account)
    pool = ConnectionPool()
    with transport(ssh_account, pool=pool, password=ssh_account.password) as good:
        assert good.run(["true"]).ok
        with pytest.raises(AuthenticationFailed):
            transport(ssh_account, pool=pool, password="wrong").open()
    pool.close_all()


@override_settings(REMOTE_SUBMISSION_MAX_CONNECTIONS_PER_HOST=1)
def test_the_per_host_cap_makes_a_second_login_wait(ssh_account):
    needs_password(ssh_account)
    pool = ConnectionPool()
    holder = transport(ssh_account, pool=pool, password=ssh_account.password)
    waiter = transport(ssh_account, pool=pool, key_filename=ssh_account.key_filename)
    opened = threading.Event()

    def open_waiter():
        waiter.open()
        opened.set()

    with holder:
        thread = threading.Thread(target=open_waiter)
        thread.start()
        assert not opened.wait(1.0)  # the one allowed connection is busy
        assert len(pool) == 1
    assert opened.wait(30)  # released: the idle connection is evicted for the waiter
    thread.join()
    assert waiter.run(["true"]).ok
    assert len(pool) == 1
    waiter.close()
    pool.close_all()


def test_a_broken_connection_is_replaced(ssh_account):
    pool = ConnectionPool()
    with transport(ssh_account, pool=pool, **credentials(ssh_account)) as first:
        first.client.get_transport().close()
    with transport(ssh_account, pool=pool, **credentials(ssh_account)) as second:
        assert second.run(["true"]).ok
    pool.close_all()


def test_repr_and_pool_key_show_no_secret(ssh_account):
    t = transport(ssh_account, password="Sup3r-secret")
    assert "Sup3r-secret" not in repr(t)
    assert "Sup3r-secret" not in repr(t._pool_key())


def test_discard_closes_the_idle_connections_of_one_account(ssh_account):
    pool = ConnectionPool()
    with transport(ssh_account, pool=pool, **credentials(ssh_account)) as busy:
        busy.run(["true"])
        pool.discard(ssh_account.hostname, ssh_account.port, ssh_account.username)
        assert len(pool) == 1  # in use: left alone
    pool.discard(ssh_account.hostname, ssh_account.port, "someone-else")
    assert len(pool) == 1
    pool.discard(ssh_account.hostname, ssh_account.port, ssh_account.username)
    assert len(pool) == 0


def test_the_sftp_listing_fallback_agrees_with_find(ssh_account):
    with transport(ssh_account, **credentials(ssh_account)) as t:
        base = f"{ssh_account.remote_directory}/listing-{ssh_account.name}"
        t.mkdir_p(f"{base}/a/b")
        t.put_bytes(b"12", f"{base}/a/b/one")
        t.put_bytes(b"345", f"{base}/two")
        try:
            by_find = t.list_tree(base)
            by_sftp = t._sftp_list_tree(base)
            assert [(f.path, f.size) for f in by_find] == [("a/b/one", 2), ("two", 3)]
            assert [(f.path, f.size, int(f.mtime)) for f in by_sftp] == [
                (f.path, f.size, int(f.mtime)) for f in by_find
            ]
            assert t._sftp_list_tree(f"{base}/missing") == []
        finally:
            t.remove(base, recursive=True)


def test_no_credentials_say_what_the_worker_looked_for(ssh_account, empty_home, monkeypatch):
    """No password, no key file, no default key, no agent: which login on which server,
    where the worker looked (paths only) and the ways to fix it."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthenticationFailed) as excinfo:
        transport(ssh_account).open()
    message = str(excinfo.value)
    where = f"{ssh_account.hostname}:{ssh_account.port}"
    assert message.startswith(f"No way to log in as {ssh_account.username!r} on {where}:")
    assert "no password was given" in message
    for name in ("id_rsa", "id_ecdsa", "id_ed25519"):
        assert str(empty_home / ".ssh" / name) in message
    assert "SSH_AUTH_SOCK is not set" in message
    for fix in ("password", "public_key_filename", "REMOTE_SUBMISSION_KEY_FILENAME"):
        assert fix in message
    assert "copy_key_to_server" in message
    assert "login policy" in message
    assert "No authentication methods available" not in message


def test_the_workers_key_file_setting_logs_in_without_credentials(ssh_account, tmp_path):
    with (
        override_settings(REMOTE_SUBMISSION_KEY_FILENAME=str(ssh_account.key_filename)),
        transport(ssh_account, allow_agent=False) as t,
    ):
        assert t.run(["true"]).ok
    stranger, _ = generate_key_pair(tmp_path / "stranger")
    with (
        override_settings(REMOTE_SUBMISSION_KEY_FILENAME=stranger),
        pytest.raises(AuthenticationFailed, match=f"refused the key {stranger}"),
    ):
        transport(ssh_account, allow_agent=False).open()

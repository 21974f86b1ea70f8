"""A private OpenSSH sshd on a loopback port, for tests. Nothing of the system sshd is used.

As root it logs in a local account of its own (created for the run, removed after it),
so password and key logins both work and runs side by side do not meet. As any other
user it runs unprivileged, and only key logins to that same user work.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django_remote_submission.testing import free_port, generate_key_pair

SSHD = "/usr/sbin/sshd"
ACCOUNT_PREFIX = "drs-t-"
#: An account left by a run that was killed is removed after this many seconds.
STALE_SECONDS = 6 * 3600


def _remove_stale_accounts() -> None:
    now = time.time()
    for entry in pwd.getpwall():
        if not entry.pw_name.startswith(ACCOUNT_PREFIX):
            continue
        try:
            age = now - os.stat(entry.pw_dir).st_mtime
        except OSError:
            age = STALE_SECONDS
        if age >= STALE_SECONDS:
            subprocess.run(["userdel", "--remove", entry.pw_name], check=False, capture_output=True)


@dataclass
class SSHAccount:
    """Everything a test needs to log in to one SSH server."""

    name: str
    hostname: str
    port: int
    username: str
    password: str | None
    key_filename: Path | None
    public_key: str | None
    host_key: str | None
    home: str | None
    remote_directory: str
    passphrase_key_filename: Path | None = None
    passphrase: str | None = None
    python: str = "/usr/bin/python3"
    python_arguments: tuple[str, ...] = ("-u",)

    @property
    def known_hosts_line(self) -> str:
        host = self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"
        return f"{host} {self.host_key}"


class OpenSSHServer:
    """``max_sessions`` is sshd's ``MaxSessions``: sessions one connection may have open at once
    (OpenSSH's own default is 10; the suite's server allows many more)."""

    def __init__(self, directory: Path, *, max_sessions: int = 100) -> None:
        self.directory = directory
        self.max_sessions = max_sessions
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.privileged = os.geteuid() == 0
        self.account: str | None = None

    @staticmethod
    def available() -> str | None:
        """Why this can't run here, or None when it can."""
        if not os.path.exists(SSHD):
            return f"OpenSSH server not installed ({SSHD} missing; apt-get install openssh-server)"
        return None

    def start(self) -> SSHAccount:
        self.directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key_path)],
            check=True,
        )
        client_key, public_key = generate_key_pair(self.directory / "client_ed25519")
        passphrase = secrets.token_urlsafe(12)
        locked_key, locked_public = generate_key_pair(
            self.directory / "client_locked_ed25519", passphrase=passphrase
        )
        authorized = f"{public_key}\n{locked_public}\n"
        if self.privileged:
            username, password, home = self._provision_account(authorized)
        else:
            username, password, home = pwd.getpwuid(os.getuid()).pw_name, None, None
            (self.directory / "authorized_keys").write_text(authorized)
            (self.directory / "work").mkdir(exist_ok=True)
        self.config_path.write_text(self._config(username))
        if self.privileged:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log_path = self.directory / "sshd.log"
        self._listen()
        remote_directory = f"{home}/work" if home else str(self.directory / "work")
        return SSHAccount(
            name="openssh",
            hostname="127.0.0.1",
            port=self.port,
            username=username,
            password=password,
            key_filename=client_key,
            public_key=public_key,
            host_key=" ".join(Path(f"{self.host_key_path}.pub").read_text().split()[:2]),
            home=home,
            remote_directory=remote_directory,
            passphrase_key_filename=locked_key,
            passphrase=passphrase,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.account is not None:
            # Its programs first (a test may have left one behind), then the account.
            subprocess.run(["pkill", "-KILL", "-u", self.account], check=False)
            subprocess.run(["userdel", "--remove", self.account], check=False, capture_output=True)
            self.account = None

    def _listen(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._wait_ready()

    def drop_connections(self) -> None:
        """What a network cut does to the connections open now: their sshd processes
        die (the programs they started in sessions of their own live on)."""
        assert self.process is not None
        # Each connection is served by a monitor process (a child of the listener) and
        # the login's own sshd process under it: either alone keeps the connection up.
        monitors = _children([self.process.pid])
        for pid in _children(monitors) + monitors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def halt(self) -> None:
        """The server goes away: no connection stays, no new one is accepted."""
        assert self.process is not None
        self.drop_connections()
        self.process.kill()
        self.process.wait()
        self.process = None

    def resume(self) -> None:
        """The server is back, on the same port, with the same keys and account."""
        self._listen()

    @property
    def host_key_path(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def config_path(self) -> Path:
        return self.directory / "sshd_config"

    def _config(self, username: str) -> str:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.directory / 'sshd.pid'}",
            "PubkeyAuthentication yes",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin no",
            f"AllowUsers {username}",
            "Subsystem sftp internal-sftp",
            "MaxStartups 100:30:200",
            f"MaxSessions {self.max_sessions}",
            "LogLevel VERBOSE",
        ]
        if self.privileged:
            lines += [
                "PasswordAuthentication yes",
                "AuthorizedKeysFile .ssh/authorized_keys",
                "StrictModes yes",
            ]
        else:
            # Unprivileged sshd cannot check passwords; its key file lives in our temp dir,
            # which StrictModes would refuse as it sits under the world-writable /tmp.
            lines += [
                "PasswordAuthentication no",
                f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
                "StrictModes no",
            ]
        return "\n".join(lines) + "\n"

    def _provision_account(self, authorized_keys: str) -> tuple[str, str, str]:
        """A local account of this run's own, so that runs side by side never meet."""
        _remove_stale_accounts()
        name = f"{ACCOUNT_PREFIX}{secrets.token_hex(4)}"
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", "--comment", "django-remote-"
             "submission test run", name],
            check=True,
        )  # fmt: skip
        self.account = name
        entry = pwd.getpwnam(name)
        password = secrets.token_urlsafe(18)
        subprocess.run(["chpasswd"], input=f"{name}:{password}".encode(), check=True)
        home = Path(entry.pw_dir)
        home.chmod(0o755)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(authorized_keys)
        (ssh_dir / "authorized_keys").chmod(0o600)
        (home / "work").mkdir()
        for path in (ssh_dir, ssh_dir / "authorized_keys", home / "work"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return name, password, str(home)

    def _wait_ready(self) -> None:
        import socket

        deadline = time.monotonic() + 30
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)


def _children(parents: list[int]) -> list[int]:
    if not parents:
        return []
    found = subprocess.run(
        ["pgrep", "-P", ",".join(map(str, parents))], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]

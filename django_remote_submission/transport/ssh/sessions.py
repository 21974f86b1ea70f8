"""An SSH transport's sessions: its login, the connections it leases and the sessions on them."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import paramiko

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import ConnectionFailed, ConnectionLost
from django_remote_submission.transport.base import Transport
from django_remote_submission.transport.hostkeys import HostKey
from django_remote_submission.transport.ssh.connect import (
    _FAILURES,
    Login,
    _gone_now,
    _lost,
    _text,
    connect,
)
from django_remote_submission.transport.ssh.connection_pool import (
    ConnectionPool,
    _Connection,
    pool,
)


def _refused(exc: Exception, transport: paramiko.Transport | None) -> bool:
    """Whether opening a session failed because the server refused it, the connection
    being fine. paramiko keeps one refusal per connection for the thread that asked: when
    two threads ask at once, one of them may find the other's refusal taken and get a
    bare "Unable to open channel." instead of a ChannelException."""
    if isinstance(exc, paramiko.ChannelException):
        return True
    return (
        isinstance(exc, paramiko.SSHException)
        and transport is not None
        and transport.is_active()
        and str(exc) == "Unable to open channel."
    )


class _Session:
    """A session channel, counted on its connection until it is closed."""

    def __init__(self, channel: paramiko.Channel, connection: _Connection) -> None:
        self.channel = channel
        self.connection = connection


class _SSHSessions(Transport):
    """The SSH half of ``SSHTransport``: the login, the connections leased from the pool
    and the sessions opened on them, with paramiko's failures on them as ours."""

    def __init__(
        self,
        hostname: str,
        port: int = 22,
        username: str | None = None,
        *,
        password: str | None = None,
        key_filename: str | os.PathLike[str] | None = None,
        passphrase: str | None = None,
        allow_agent: bool | None = None,
        host_key: str | None = None,
        on_new_host_key: Callable[[str], None] | None = None,
        connection_pool: ConnectionPool | None = None,
    ) -> None:
        super().__init__()
        self.hostname = hostname
        self.port = int(port)
        self.username = username or getpass.getuser()
        self._password = password
        self._key_filename = str(key_filename) if key_filename else None
        self._passphrase = passphrase
        self._allow_agent = allow_agent
        self.host_key = HostKey.parse(host_key) if host_key else None
        self.on_new_host_key = on_new_host_key
        self._pool = connection_pool if connection_pool is not None else pool
        #: The connections leased from the pool, the one leased on opening first.
        self._held: list[_Connection] = []
        self._sessions: list[_Session] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_session: _Session | None = None

    def __repr__(self) -> str:
        # Never show credentials, even in a debugger or a traceback.
        return f"<SSHTransport {self.description}>"

    @property
    def description(self) -> str:
        return f"{self.username}@{self.hostname}:{self.port}"

    # Connecting ----------------------------------------------------------------------

    def _pool_key(self) -> tuple[Any, ...]:
        secret = hashlib.sha256()
        for part in (
            self._password,
            self._key_filename,
            self._passphrase,
            self._allow_agent,
            self.host_key.line if self.host_key else None,
        ):
            secret.update(repr(part).encode() + b"\0")
        return (self.hostname, self.port, self.username, secret.hexdigest())

    @property
    def _pool_wait(self) -> float:
        return max(60.0, conf.CONNECT_TIMEOUT * 6)

    def _open(self) -> None:
        self._held = [self._pool.lease(self._pool_key(), self._connect, self._pool_wait)]

    def _close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(*_FAILURES):
                self._sftp.close()
            self._sftp = None
        if self._sftp_session is not None:
            self._end_session(self._sftp_session)
            self._sftp_session = None
        # Sessions a caller left open (a stream not closed) end with the transport.
        for session in list(self._sessions):
            self._end_session(session)
        held, self._held = self._held, []
        for connection in held:
            self._pool.release(self._pool_key(), connection)

    def _connect(self) -> paramiko.SSHClient:
        return connect(
            Login(
                self.hostname,
                self.port,
                self.username,
                password=self._password,
                key_filename=self._key_filename,
                passphrase=self._passphrase,
                allow_agent=self._allow_agent,
                host_key=self.host_key,
                on_new_host_key=self.on_new_host_key,
            )
        )

    @property
    def client(self) -> paramiko.SSHClient:
        """The connection leased on opening (sessions may also go to others)."""
        self.open()
        return self._held[0].client

    @property
    def sftp(self) -> paramiko.SFTPClient:
        tries = 2
        while self._sftp is None:
            tries -= 1
            session = self._session()
            try:
                session.channel.invoke_subsystem("sftp")
                self._sftp = paramiko.SFTPClient(session.channel)
            except _FAILURES as exc:
                self._end_session(session)
                transport = session.channel.get_transport()
                if tries and self._replaced_if_stale(session.connection, transport):
                    continue
                if _gone_now(transport):
                    raise ConnectionLost(
                        _lost(self.description, transport, "while opening an SFTP session", exc)
                    ) from None
                raise ConnectionFailed(
                    f"Cannot open an SFTP session on {self.description}: {_text(exc)} (the "
                    "server ended it as it began: is SFTP enabled there?)"
                ) from None
            self._sftp_session = session
        return self._sftp

    def _session(self) -> _Session:
        """A new session, on the first connection with room for it: end it with
        ``_end_session``. A session the server refuses is opened on another connection."""
        self.open()
        if not self._sessions:
            # Dead while it waited in the pool (a network cut, a restarted sshd): no
            # session of ours was on it, so nothing is lost by taking another.
            for held in [held for held in self._held if not held.alive]:
                self._drop(held)
        for held in self._held:
            if not held.alive:
                # It took its sessions (a job's followers) with it: another connection
                # must not hide that.
                raise ConnectionLost(
                    _lost(self.description, held.client.get_transport(), "while in use")
                )
        key = self._pool_key()
        stale = 0
        while True:
            connection = self._pool.take_session(
                key, self._connect_another, self._pool_wait, self._held
            )
            transport = connection.client.get_transport()
            try:
                if transport is None:
                    raise paramiko.SSHException("the connection is closed")
                channel = transport.open_session(timeout=conf.CONNECT_TIMEOUT)
            except _FAILURES as exc:
                if not _refused(exc, transport):
                    self._pool.end_session(connection, opened=False)
                    if stale < len(self._held) and self._replaced_if_stale(connection, transport):
                        stale += 1
                        continue
                    if _gone_now(transport):
                        raise ConnectionLost(
                            _lost(self.description, transport, "while opening a session", exc)
                        ) from None
                    raise ConnectionFailed(
                        f"Cannot open a session on {self.description}: {_text(exc)}"
                    ) from None
                if not self._pool.refused_session(key, connection):
                    raise ConnectionFailed(
                        f"Cannot open a session on {self.description}: the server refused "
                        f"even the first one on a connection ({exc})."
                    ) from None
                continue
            self._pool.opened_session(connection)
            session = _Session(channel, connection)
            self._sessions.append(session)
            return session

    def _replaced_if_stale(
        self, connection: _Connection, transport: paramiko.Transport | None
    ) -> bool:
        """Whether a connection found dead only as a session began (paramiko had not
        noticed yet) was dropped for another: so it is when no session of ours was on it,
        and nothing is lost."""
        if self._sessions or not _gone_now(transport):
            return False
        self._drop(connection)
        return True

    def _drop(self, connection: _Connection) -> None:
        """Give a dead connection back to the pool, which forgets it; lease another in its
        place if it was the only one."""
        connection.client.close()  # not alive: the pool forgets it once nobody holds it
        if connection in self._held:
            self._held.remove(connection)
            self._pool.release(self._pool_key(), connection)
        if not self._held:
            self._held = [self._pool.lease(self._pool_key(), self._connect, self._pool_wait)]

    def _connect_another(self) -> paramiko.SSHClient:
        try:
            return self._connect()
        except ConnectionFailed as exc:
            raise ConnectionFailed(
                f"Cannot open a session on {self.description}: its connections carry as many "
                f"as they may, and opening another failed: {exc}"
            ) from None

    def _end_session(self, session: _Session) -> None:
        """Close a session; let go of a connection that carries no other of ours."""
        if session not in self._sessions:
            return
        self._sessions.remove(session)
        with contextlib.suppress(*_FAILURES):
            session.channel.close()
        connection = session.connection
        self._pool.end_session(connection)
        home = self._held[:1]
        if connection not in home and all(s.connection is not connection for s in self._sessions):
            self._held.remove(connection)
            self._pool.release(self._pool_key(), connection)

    def _failure(
        self, exc: BaseException, transport: paramiko.Transport | None, doing: str
    ) -> ConnectionFailed:
        """A failure of paramiko's while ``doing`` something ("while reading x"), as ours."""
        if _gone_now(transport):
            return ConnectionLost(_lost(self.description, transport, doing, exc))
        return ConnectionFailed(
            f"The connection to {self.description} failed {doing}: {_text(exc)}."
        )

    @contextmanager
    def _channel(self, doing: str) -> Iterator[paramiko.Channel]:
        """A session channel, closed after use; connection errors become ours."""
        session = self._session()
        try:
            yield session.channel
        except _FAILURES as exc:
            raise self._failure(exc, session.channel.get_transport(), f"while {doing}") from None
        finally:
            self._end_session(session)

    def _exit_code(self, channel: paramiko.Channel, doing: str) -> int:
        code = channel.recv_exit_status()
        if code >= 0:
            return code
        transport = channel.get_transport()
        if _gone_now(transport):
            raise ConnectionLost(_lost(self.description, transport, f"while {doing}"))
        # A command killed by a signal has no exit status; report it like a shell does.
        return 255

"""SSHTransport and, for now, everything else of the SSH transport (split next)."""

from __future__ import annotations

import atexit
import contextlib
import errno
import getpass
import hashlib
import logging
import os
import posixpath
import random
import select
import shlex
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import paramiko

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import (
    AuthenticationFailed,
    CommandTimedOut,
    ConnectionFailed,
    HostKeyRejected,
    TransportError,
)
from django_remote_submission.transport.base import (
    ByteStream,
    CommandResult,
    RemoteFile,
    Transport,
)
from django_remote_submission.transport.hostkeys import HostKey, known_hosts_name
from django_remote_submission.transport.shell import qpath, quote, remote_path

#: find's output for list_tree: relative path, size, mtime, each ended by a NUL.
_FIND_PRINTF = "-printf " + shlex.quote("%P\\0%s\\0%T@\\0")
logger = logging.getLogger(__name__)
_T = TypeVar("_T")

CHUNK = 1024 * 1024
#: Seconds an unused pooled connection stays open for the next job on the same host.
IDLE_SECONDS = 60.0
#: The most sessions opened at once on one pooled connection. A running job keeps three
#: (two ``tail -f`` and SFTP) and opens one more for each short command. OpenSSH allows 10
#: (``MaxSessions``) and lets go of a closed session only a moment later, once it has read
#: the close and the command has ended: 8 leaves a margin for that. A server that allows
#: fewer refuses a session, and the pool then opens no more on that connection than it
#: had open.
SESSIONS_PER_CONNECTION = 8
#: Refusals in a row, while fewer sessions are open than were before, after which a
#: connection is taken to allow no more than are open.
REFUSALS_TO_LEARN = 3
#: Tries at a handshake that the server cuts short, and the pause after the first one
#: (doubled after each). sshd's MaxStartups drops new connections at random while many
#: are being opened at once: the next try usually gets through.
HANDSHAKE_TRIES = 4
HANDSHAKE_BACKOFF = 0.25

#: What paramiko raises when talking to a server fails: EOFError (the server closed the
#: connection) is neither an SSHException nor an OSError.
_FAILURES = (paramiko.SSHException, OSError, EOFError)


class _Transport(paramiko.Transport):
    """paramiko's Transport, remembering why the server ended the connection (paramiko
    only logs it), so that the error can say so."""

    disconnect_reason = ""

    def _parse_disconnect(self, m: paramiko.Message) -> None:
        m.get_int()
        self.disconnect_reason = m.get_text()
        m.rewind()
        parse = getattr(super(), "_parse_disconnect", None)
        if parse is not None:
            parse(m)


def _new_transport(sock: Any, /, **options: Any) -> paramiko.Transport:
    return _Transport(sock, **options)


class _HandshakeCut(ConnectionFailed):
    """The server closed the connection during the handshake: worth another try."""


def _gone(transport: paramiko.Transport | None) -> bool:
    """Whether the connection is closed or closing. paramiko closes the channels of a
    dead connection a moment before it marks the connection inactive, but it has saved
    the reason by then."""
    if transport is None or not transport.is_active():
        return True
    if getattr(transport, "disconnect_reason", ""):
        return True
    saved = transport.saved_exception
    # A refused session or a failed login is saved there too: the connection lives on.
    return saved is not None and not isinstance(
        saved, paramiko.ChannelException | paramiko.AuthenticationException
    )


def _gone_now(transport: paramiko.Transport | None) -> bool:
    """``_gone``, for a failure just seen: paramiko may have closed a channel of a dying
    connection without having marked it, or saved why, yet (another thread may have
    taken the reason). Worth a moment in an error path only."""
    if _gone(transport):
        return True
    assert transport is not None
    transport.join(0.1)
    return _gone(transport)


def _without_input(command: str) -> str:
    """``command`` with its standard input from /dev/null on the server, for a session
    to which the client sends no end-of-file at all.

    OpenSSH forgets a channel once both sides have closed it, and drops the whole
    connection, with every other session on it, when a packet for a forgotten channel
    arrives ("ieof packet referred to nonexistent channel"). A quick command ends, and its
    channel is closed by both sides, as the client sends its EOF: paramiko builds that
    message under the channel's lock but sends it after letting go, while its own thread
    may answer the server's close in between. Nothing sent, nothing late."""
    return f"exec </dev/null\n{command}"


def _draining_input(command: str) -> str:
    """``command`` in a subshell, then the rest of its input read to the end: the session
    cannot end, and be closed, before the client's data and end-of-file have arrived,
    even when the command exits without reading them (see ``_without_input``)."""
    return f"(\n{command}\n)\nstatus=$?\ncat >/dev/null 2>&1\nexit $status"


def _text(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and code is not None:
        return os.strerror(code)
    return str(exc).strip() or type(exc).__name__


def _lost(
    description: str,
    transport: paramiko.Transport | None,
    doing: str,
    exc: BaseException | None = None,
) -> str:
    """Why a connection is gone, in words; ``doing`` says when ("while reading x").

    paramiko hands the saved cause to the first thread that waits on the connection and
    forgets it: that thread's ``exc`` is then the cause."""
    reason = getattr(transport, "disconnect_reason", "")
    cause: BaseException | None = transport.saved_exception if transport is not None else None
    if cause is None and (isinstance(exc, EOFError) or getattr(exc, "errno", None)):
        cause = exc  # not a mere symptom such as "Socket is closed"
    if reason:
        return f"The connection to {description} was closed by the server {doing}: {reason}."
    if isinstance(cause, EOFError):
        return f"The connection to {description} was closed by the server {doing}."
    if isinstance(cause, OSError):
        return f"The connection to {description} was lost {doing}: {_text(cause)}."
    if cause is not None:
        return f"The connection to {description} failed {doing}: {_text(cause)}."
    return f"The connection to {description} was closed {doing}."


def _cut(exc: BaseException) -> bool:
    """Whether a handshake failed because the server closed or reset the connection:
    paramiko reports that on reading the banner as an SSHException caused by the EOF."""
    for cause in (exc, exc.__context__):
        if isinstance(cause, EOFError | ConnectionResetError | BrokenPipeError):
            return True
    return False


def _handshake_error(
    where: str, transport: paramiko.Transport, exc: BaseException, timeout: float
) -> ConnectionFailed | None:
    """What failed before the login, in words; None if the handshake was done."""
    if transport.initial_kex_done:
        return None
    if not transport.remote_version:
        if _cut(exc):
            return _HandshakeCut(f"{where} closed the connection before sending its SSH banner")
        if "protocol version" in str(exc):
            return ConnectionFailed(
                f"{where} does not speak SSH: {exc} (is it the port of an SSH server?)."
            )
        return ConnectionFailed(
            f"Timed out after {timeout:g} s waiting for the SSH banner of {where}: something "
            "accepts connections there but does not speak SSH (or is too busy to answer)."
        )
    if _cut(exc):
        return _HandshakeCut(f"{where} closed the connection during the SSH key exchange")
    if isinstance(exc, TimeoutError | socket.timeout) or transport.is_active():
        # paramiko gives up waiting for the key exchange without a word: the login step
        # that follows then finds "No existing session".
        return ConnectionFailed(
            f"Timed out after {timeout:g} s in the SSH key exchange with {where}."
        )
    return ConnectionFailed(f"The SSH handshake with {where} failed: {_text(exc)}.")


def _retrying_handshakes(attempt: Callable[[], _T]) -> _T:
    """``attempt()``, tried again after a pause when the server cut the handshake short."""
    for tries in range(1, HANDSHAKE_TRIES + 1):
        try:
            return attempt()
        except _HandshakeCut as exc:
            if tries == HANDSHAKE_TRIES:
                raise ConnectionFailed(
                    f"{exc}, {tries} times in a row: it may be refusing new connections while "
                    "many are being opened (sshd's MaxStartups), or to this address."
                ) from None
            # Spread out, so that the connections cut at once do not come back at once.
            jitter = random.uniform(0.5, 1.5)  # noqa: S311 - not a secret
            pause = HANDSHAKE_BACKOFF * 2 ** (tries - 1) * jitter
            logger.info("%s; trying again in %.2f s", exc, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


def _host_key_of(key: paramiko.PKey) -> HostKey:
    return HostKey(key.get_name(), key.get_base64())


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Decides about a key that no pinned key and no known_hosts entry vouches for."""

    def __init__(self, policy: str, where: str, on_new_key: Callable[[str], None] | None):
        self.policy = policy
        self.where = where
        self.on_new_key = on_new_key

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        offered = _host_key_of(key)
        if self.policy == "auto-add":
            logger.warning(
                "Trusting the unknown host key of %s (%s): auto-add", self.where, offered
            )
            return
        if self.policy == "tofu":
            logger.info("Pinning the first host key seen for %s: %s", self.where, offered)
            if self.on_new_key is not None:
                self.on_new_key(offered.line)
            return
        raise HostKeyRejected(
            f"The host key of {self.where} is unknown ({offered}). Check this fingerprint "
            "with the server's administrator, then pin it (manage.py remote_pin_host_key) "
            "or add it to the worker's known_hosts."
        )


@dataclass(eq=False)
class _Connection:
    client: paramiko.SSHClient
    #: Transports holding it.
    users: int = 0
    #: Sessions taken on it: those open and those being opened.
    sessions: int = 0
    #: Sessions open on it, and the most it ever had open at once.
    opened: int = 0
    peak: int = 0
    #: The most sessions taken on it at once: lowered to what the server allows.
    room: int = SESSIONS_PER_CONNECTION
    #: Refusals in a row, and until when it is not asked again after one.
    refusals: int = 0
    resting_until: float = 0.0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    @property
    def free(self) -> int:
        return self.room - self.sessions

    def ready(self, now: float) -> bool:
        return self.free > 0 and now >= self.resting_until


class ConnectionPool:
    """SSH connections shared by the transports of one process.

    Transports that log in to the same account with the same credentials share their
    connections (SSH multiplexes their sessions), at most ``SESSIONS_PER_CONNECTION``
    sessions on each, fewer where the server refused one; beyond that a session is opened
    on another connection of the same account. At most ``MAX_CONNECTIONS_PER_HOST``
    connections per host:port are open at once; beyond that a transport waits for a free
    one instead of opening a connection storm. An unused connection stays open for
    ``IDLE_SECONDS`` so that the next job on the host skips the handshake.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._connections: dict[tuple[Any, ...], list[_Connection]] = {}
        self._opening: set[tuple[Any, ...]] = set()

    def _per_host(self, host: tuple[str, int]) -> int:
        count = sum(len(group) for key, group in self._connections.items() if key[:2] == host)
        return count + sum(1 for key in self._opening if key[:2] == host)

    def _remove(self, key: tuple[Any, ...], connection: _Connection) -> None:
        group = self._connections.get(key, [])
        if connection in group:
            group.remove(connection)
            if not group:
                del self._connections[key]
        connection.client.close()

    def _evict(self, host: tuple[str, int] | None = None, *, expired_only: bool) -> bool:
        now = time.monotonic()
        for key, group in list(self._connections.items()):
            if host is not None and key[:2] != host:
                continue
            for connection in group:
                if connection.users:
                    continue
                if expired_only and now - connection.last_used < IDLE_SECONDS and connection.alive:
                    continue
                self._remove(key, connection)
                return True
        return False

    def lease(
        self, key: tuple[Any, ...], connect: Callable[[], paramiko.SSHClient], wait: float
    ) -> _Connection:
        """A connection of ``key`` for one more transport: the one with the most room for
        sessions, or a new one. Give it back with ``release``."""
        return self._acquire(key, connect, wait, held=None)

    def take_session(
        self,
        key: tuple[Any, ...],
        connect: Callable[[], paramiko.SSHClient],
        wait: float,
        held: list[_Connection],
    ) -> _Connection:
        """A connection with room for one more session, which is counted as taken: one of
        the transport's ``held`` connections if one has room, else another, leased and
        added to ``held``. Report the outcome with ``opened_session`` or
        ``refused_session``, and ``end_session`` once it is closed."""
        return self._acquire(key, connect, wait, held=held)

    def _acquire(
        self,
        key: tuple[Any, ...],
        connect: Callable[[], paramiko.SSHClient],
        wait: float,
        held: list[_Connection] | None,
    ) -> _Connection:
        host = (key[0], key[1])
        session = int(held is not None)
        deadline = time.monotonic() + wait
        with self._condition:
            while True:
                while self._evict(expired_only=True):
                    pass
                for connection in list(self._connections.get(key, [])):
                    if not connection.alive:
                        self._remove(key, connection)
                now = time.monotonic()
                for connection in held or []:
                    if connection.alive and connection.ready(now):
                        connection.sessions += 1
                        return connection
                group = self._connections.get(key, [])
                ready = [c for c in group if c.ready(now)]
                if ready:
                    connection = max(ready, key=lambda c: c.free)
                    connection.users += 1
                    connection.sessions += session
                    if held is not None:
                        held.append(connection)
                    return connection
                # One that refused a session a moment ago soon has room again: cheaper
                # than a new connection.
                resting = [c.resting_until for c in group if c.free > 0]
                if not resting and key not in self._opening:
                    limit = conf.MAX_CONNECTIONS_PER_HOST
                    if self._per_host(host) < limit or self._evict(host, expired_only=False):
                        self._opening.add(key)
                        break
                remaining = deadline - now
                if remaining <= 0:
                    raise ConnectionFailed(
                        f"All {conf.MAX_CONNECTIONS_PER_HOST} connections to "
                        f"{host[0]}:{host[1]} allowed by REMOTE_SUBMISSION_MAX_CONNECTIONS_"
                        f"PER_HOST stayed busy for {wait:g} s."
                    )
                self._condition.wait(min([remaining, *(t - now for t in resting)]))
        try:
            client = connect()
        except BaseException:
            with self._condition:
                self._opening.discard(key)
                self._condition.notify_all()
            raise
        connection = _Connection(client, users=1, sessions=session)
        with self._condition:
            self._opening.discard(key)
            self._connections.setdefault(key, []).append(connection)
            self._condition.notify_all()
        if held is not None:
            held.append(connection)
        return connection

    def opened_session(self, connection: _Connection) -> None:
        with self._condition:
            connection.opened += 1
            connection.peak = max(connection.peak, connection.opened)
            connection.refusals = 0

    def refused_session(self, key: tuple[Any, ...], connection: _Connection) -> bool:
        """The server refused the session taken on ``connection``. False if it refused a
        connection's first session: it allows none."""
        with self._condition:
            connection.sessions -= 1
            self._condition.notify_all()
            if not connection.peak and not connection.sessions:
                return False
            connection.refusals += 1
            if connection.opened < connection.peak and connection.refusals <= REFUSALS_TO_LEARN:
                # It had more open before: sessions closed here that the server has not
                # let go of yet (it does so after it has read the close, not at once).
                pause = 0.05 * 2**connection.refusals
                connection.resting_until = time.monotonic() + pause
            else:
                connection.room = connection.opened
                connection.refusals = 0
                logger.info(
                    "%s@%s:%s allows %s sessions on a connection: using another for more",
                    key[2],
                    key[0],
                    key[1],
                    connection.room,
                )
            return True

    def end_session(self, connection: _Connection, *, opened: bool = True) -> None:
        with self._condition:
            connection.sessions -= 1
            connection.opened -= int(opened)
            self._condition.notify_all()

    def release(self, key: tuple[Any, ...], connection: _Connection) -> None:
        """A transport gives back a connection it leased."""
        with self._condition:
            connection.users -= 1
            connection.last_used = time.monotonic()
            if not connection.alive:
                self._remove(key, connection)
            self._condition.notify_all()

    def discard(self, hostname: str, port: int, username: str) -> None:
        """Close the idle connections of one account, e.g. after its keys changed."""
        with self._condition:
            for key, group in list(self._connections.items()):
                if key[:3] != (hostname, port, username):
                    continue
                for connection in list(group):
                    if not connection.users:
                        self._remove(key, connection)
            self._condition.notify_all()

    def close_all(self) -> None:
        with self._condition:
            for group in self._connections.values():
                for connection in group:
                    connection.client.close()
            self._connections.clear()
            self._condition.notify_all()

    def __len__(self) -> int:
        return sum(len(group) for group in self._connections.values())


pool = ConnectionPool()
atexit.register(pool.close_all)


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


class _ChannelStream(ByteStream):
    def __init__(self, channel: paramiko.Channel, close: Callable[[], None]) -> None:
        self._channel = channel
        self._close = close

    def fileno(self) -> int:
        return self._channel.fileno()

    def read_available(self) -> bytes | None:
        while self._channel.recv_stderr_ready():
            self._channel.recv_stderr(CHUNK)  # tail's complaints are not job output
        if self._channel.recv_ready() or self._channel.eof_received or self._channel.closed:
            return self._channel.recv(CHUNK)
        return None

    def close(self) -> None:
        self._close()


class SSHTransport(Transport):
    """Reaches a server over SSH.

    Credentials: a ``password`` (then only the password is tried), or a private key file
    (``key_filename``; the path of its ``.pub`` file works too) with an optional
    ``passphrase``, or, when neither is given, the worker's ssh-agent and its default
    keys in ``~/.ssh``.

    Host keys: a ``host_key`` (OpenSSH ``"TYPE BASE64"``) pins the server's key; without
    one, the worker's known_hosts files decide, and an unknown key is handled by
    ``REMOTE_SUBMISSION_HOST_KEY_POLICY``. ``on_new_host_key`` receives the key that
    trust-on-first-use accepted, to be pinned by the caller.
    """

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
        return _retrying_handshakes(self._connect_once)

    def _connect_once(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        name = known_hosts_name(self.hostname, self.port)
        if self.host_key is not None:
            client.get_host_keys().add(
                name,
                self.host_key.key_type,
                paramiko.PKey.from_type_string(self.host_key.key_type, _b64(self.host_key.blob)),
            )
        else:
            for path in _known_hosts_files():
                try:
                    client.load_system_host_keys(str(path))
                except _FAILURES as exc:
                    logger.warning("Ignoring unreadable known_hosts file %s: %s", path, exc)
        client.set_missing_host_key_policy(
            _HostKeyPolicy(conf.HOST_KEY_POLICY, self.description, self.on_new_host_key)
        )
        options: dict[str, Any] = {
            "timeout": conf.CONNECT_TIMEOUT,
            "banner_timeout": conf.CONNECT_TIMEOUT,
            "auth_timeout": conf.CONNECT_TIMEOUT,
            "channel_timeout": conf.CONNECT_TIMEOUT,
        }
        if self._password is not None:
            options.update(password=self._password, allow_agent=False, look_for_keys=False)
        if self._key_filename is not None:
            options.update(pkey=self._load_key(), allow_agent=False, look_for_keys=False)
        if self._password is None and self._key_filename is None:
            allow = True if self._allow_agent is None else self._allow_agent
            options.update(allow_agent=allow, look_for_keys=True)
        try:
            client.connect(
                self.hostname, self.port, self.username, transport_factory=_new_transport, **options
            )
        except BaseException as exc:
            error = self._translate_connect_error(exc, client.get_transport())
            client.close()
            raise error from None
        transport = client.get_transport()
        assert transport is not None
        # Many small request/answer exchanges: Nagle's algorithm would hold each back
        # for a delayed ACK (about 40 ms every time).
        with contextlib.suppress(OSError, AttributeError):
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        if conf.KEEPALIVE_INTERVAL:
            transport.set_keepalive(conf.KEEPALIVE_INTERVAL)
        logger.info("Connected to %s", self.description)
        return client

    def _load_key(self) -> paramiko.PKey:
        assert self._key_filename is not None
        path = Path(self._key_filename).expanduser()
        if path.suffix == ".pub":
            # 2.x users pass public_key_filename: the private key sits beside it.
            private = path.with_suffix("")
            if not private.exists():
                raise AuthenticationFailed(
                    f"{path} is a public key and its private key {private} does not exist; "
                    "give the path of the private key."
                )
            path = private
        try:
            passphrase = self._passphrase.encode() if self._passphrase is not None else None
            return paramiko.PKey.from_path(str(path), password=passphrase)  # type: ignore[arg-type]
        except (paramiko.PasswordRequiredException, TypeError):
            # cryptography says TypeError for "password-protected, no password given".
            raise AuthenticationFailed(
                f"The private key {path} is encrypted: give its passphrase."
            ) from None
        except FileNotFoundError:
            raise AuthenticationFailed(f"The private key file {path} does not exist.") from None
        except (OSError, ValueError, paramiko.SSHException) as exc:
            if self._passphrase is not None and _is_encrypted_key(path):
                raise AuthenticationFailed(
                    f"The passphrase does not open the private key {path}."
                ) from None
            raise AuthenticationFailed(
                f"Cannot read the private key {path}: {type(exc).__name__}."
            ) from None

    def _translate_connect_error(
        self, exc: BaseException, transport: paramiko.Transport | None
    ) -> BaseException:
        """``transport`` is None unless the TCP connection was made."""
        where = f"{self.hostname}:{self.port}"
        if isinstance(exc, AuthenticationFailed | HostKeyRejected):
            return exc
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyRejected(
                f"The host key of {where} has CHANGED: the server offered "
                f"{_host_key_of(exc.key)}, but {_host_key_of(exc.expected_key)} was expected. "
                "Someone may be intercepting the connection, or the server was reinstalled: "
                "check with its administrator before pinning the new key."
            )
        if isinstance(exc, paramiko.AuthenticationException):
            if self._password is not None:
                what = "the password"
            elif self._key_filename is not None:
                what = f"the key {self._key_filename}"
            else:
                what = "every key offered (ssh-agent and ~/.ssh of the worker's user)"
            return AuthenticationFailed(
                f"{where} refused {what} for user {self.username!r}. Check the username "
                "and the credentials."
            )
        if transport is not None and isinstance(exc, Exception):
            handshake = _handshake_error(where, transport, exc, conf.CONNECT_TIMEOUT)
            if handshake is not None:
                return handshake
            if _gone(transport):
                return ConnectionFailed(
                    _lost(where, transport, f"while logging in as {self.username!r}", exc)
                )
        if isinstance(exc, socket.gaierror):
            return ConnectionFailed(f"Cannot resolve the host name {self.hostname!r}.")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            codes = {getattr(e, "errno", None) for e in exc.errors.values()}
            if codes <= {errno.ECONNREFUSED}:
                return ConnectionFailed(
                    f"Connection refused by {where}: no SSH server listens on that port."
                )
            return ConnectionFailed(f"Cannot reach {where}: {_oserror_text(exc)}.")
        if isinstance(exc, TimeoutError | socket.timeout):
            return ConnectionFailed(
                f"Timed out after {conf.CONNECT_TIMEOUT:g} s connecting to {where}."
            )
        if isinstance(exc, OSError):
            return ConnectionFailed(f"Cannot reach {where}: {_oserror_text(exc)}.")
        if isinstance(exc, paramiko.SSHException):
            return ConnectionFailed(f"The SSH handshake with {where} failed: {exc}.")
        if isinstance(exc, Exception):
            return ConnectionFailed(f"Connecting to {where} failed: {type(exc).__name__}: {exc}")
        return exc  # KeyboardInterrupt and the like go on as they are

    @property
    def client(self) -> paramiko.SSHClient:
        """The connection leased on opening (sessions may also go to others)."""
        self.open()
        return self._held[0].client

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            session = self._session()
            try:
                session.channel.invoke_subsystem("sftp")
                self._sftp = paramiko.SFTPClient(session.channel)
            except _FAILURES as exc:
                self._end_session(session)
                transport = session.channel.get_transport()
                if _gone_now(transport):
                    raise ConnectionFailed(
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
        for held in self._held:
            if not held.alive:
                # It took its sessions (a job's followers) with it: another connection
                # must not hide that.
                raise ConnectionFailed(
                    _lost(self.description, held.client.get_transport(), "while in use")
                )
        key = self._pool_key()
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
                    if _gone_now(transport):
                        raise ConnectionFailed(
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
            return ConnectionFailed(_lost(self.description, transport, doing, exc))
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
            raise ConnectionFailed(_lost(self.description, transport, f"while {doing}"))
        # A command killed by a signal has no exit status; report it like a shell does.
        return 255

    # Commands ------------------------------------------------------------------------

    def _run(self, command: str, *, input: bytes | None, timeout: float | None) -> CommandResult:
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._channel("running a command") as channel:
            if input:
                channel.exec_command(_draining_input(command))
                channel.sendall(input)
                channel.shutdown_write()
            else:
                channel.exec_command(_without_input(command))
            while True:
                while channel.recv_ready():
                    stdout.append(channel.recv(CHUNK))
                while channel.recv_stderr_ready():
                    stderr.append(channel.recv_stderr(CHUNK))
                drained = not channel.recv_ready() and not channel.recv_stderr_ready()
                ended = channel.eof_received or channel.closed
                if channel.exit_status_ready() and drained and ended:
                    break
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0:
                    raise CommandTimedOut(
                        f"A command on {self.description} took longer than {timeout:g} s."
                    )
                select.select([channel], [], [], wait)
            code = self._exit_code(channel, "running a command")
        return CommandResult(code, b"".join(stdout), b"".join(stderr))

    def _stream(self, command: str) -> ByteStream:
        session = self._session()
        try:
            session.channel.exec_command(_without_input(command))
        except _FAILURES as exc:
            self._end_session(session)
            raise self._failure(
                exc, session.channel.get_transport(), "while starting a command"
            ) from None
        return _ChannelStream(session.channel, lambda: self._end_session(session))

    # Files ---------------------------------------------------------------------------

    def _sftp_error(self, exc: BaseException, action: str, path: str) -> TransportError:
        """An SFTP failure as ours: the server's answer about the file, or the end of the
        session or the connection (both are OSErrors without an errno in paramiko)."""
        if isinstance(exc, OSError) and exc.errno is not None:
            return TransportError(
                f"Could not {action} {path!r} on {self.description}: {os.strerror(exc.errno)}."
            )
        session = self._sftp_session
        transport = session.channel.get_transport() if session is not None else None
        if session is None or session.channel.closed or not isinstance(exc, OSError):
            return self._failure(exc, transport, f"while trying to {action} {path!r}")
        return TransportError(
            f"Could not {action} {path!r} on {self.description}: the server said {_text(exc)!r}."
        )

    def put_fileobj(self, fileobj: IO[bytes], path: str, *, mode: int | None = None) -> int:
        sent = 0
        error: BaseException | None = None
        remote: paramiko.SFTPFile | None = None
        try:
            remote = self.sftp.open(path, "wb")
            remote.set_pipelined(True)
            while chunk := fileobj.read(CHUNK):
                sent += len(chunk)
                remote.write(chunk)
            remote.close()
        except _FAILURES as exc:
            error = exc
            if remote is not None:
                # Sends the close that an error in the last responses kept back.
                with contextlib.suppress(*_FAILURES):
                    remote.close()
        if error is not None:
            failure = self._sftp_error(error, "write", path)
            if remote is None or isinstance(failure, ConnectionFailed):
                raise failure from None
        # Pipelined writes report a failure late, if at all: paramiko keeps it for the
        # file's next request, and a close that finds the answers already read never
        # raises it. What reached the file is what counts.
        size = self.file_size(path)
        if error is None and size == sent:
            if mode is not None:
                try:
                    self.sftp.chmod(path, mode)
                except _FAILURES as exc:
                    raise self._sftp_error(exc, "change the mode of", path) from None
            return sent
        total = sent + sum(len(chunk) for chunk in iter(lambda: fileobj.read(CHUNK), b""))
        raise self._unwritten(path, size or 0, total, error)

    def _unwritten(
        self, path: str, size: int, total: int, error: BaseException | None
    ) -> TransportError:
        """Why only ``size`` of ``total`` bytes reached ``path``."""
        if error is not None:
            failure = self._sftp_error(error, "write", path)
            if isinstance(failure, ConnectionFailed) or getattr(error, "errno", None):
                return failure
        # OpenSSH's SFTP server answers "Failure" to a full disk, and nothing more.
        cause = self._full_disk(posixpath.dirname(path) or ".", total - size)
        if cause is None:
            cause = "the file came out short"
            if error is not None:
                cause = f"the server said {_text(error)!r}"
            if size < total:
                cause += " (a full disk, or an exceeded quota?)"
        return TransportError(
            f"Could not write {path!r} on {self.description}: {cause} "
            f"(wrote {size} of {total} bytes)."
        )

    def _full_disk(self, directory: str, missing: int) -> str | None:
        """Says "No space left on device" if the disk of ``directory`` is full, as df
        sees it (or its inodes are all taken)."""
        where = qpath(directory)
        try:
            result = self.run_shell(
                f"df -Pk -- {where} | awk 'NR == 2 {{ print $(NF-2) }}' && "
                f"df -Pi -- {where} | awk 'NR == 2 {{ print $(NF-4), $(NF-2) }}'"
            )
        except TransportError:
            return None
        numbers = result.stdout.split()
        if not result.ok or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
            return None
        free_kib, inodes, free_inodes = (int(n) for n in numbers)
        if free_kib * 1024 < missing:
            return os.strerror(errno.ENOSPC)
        if inodes and not free_inodes:
            return f"{os.strerror(errno.ENOSPC)} (no free inodes)"
        return None

    def get_fileobj(self, path: str, fileobj: IO[bytes]) -> int:
        # A plain `cat` on a session channel streams three to four times faster than
        # paramiko's SFTP reads, whose every 32 KiB request is a round of Python code.
        copied = 0
        with self._channel(f"reading {path!r}") as channel:
            channel.exec_command(_without_input(quote(["cat", "--", remote_path(path)])))
            while chunk := channel.recv(CHUNK):
                fileobj.write(chunk)
                copied += len(chunk)
            errors = b""
            while part := channel.recv_stderr(CHUNK):
                errors += part
            code = self._exit_code(channel, f"reading {path!r}")
        if code != 0:
            reason = CommandResult(code, b"", errors).reason()
            raise TransportError(f"Could not read {path!r} on {self.description}: {reason}")
        return copied

    def read_file(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with self.sftp.open(path, "rb") as remote:
                remote.seek(offset)
                if length is None:
                    return remote.read()
                return remote.read(length)
        except _FAILURES as exc:
            raise self._sftp_error(exc, "read", path) from None

    def mkdir_p(self, path: str) -> None:
        # One SFTP request when the directory is there already, as it usually is.
        try:
            if stat.S_ISDIR(self.sftp.stat(path).st_mode or 0):
                return
        except _FAILURES:
            pass
        super().mkdir_p(path)

    def exists(self, path: str) -> bool:
        return self.file_size(path) is not None or super().exists(path)

    def file_size(self, path: str) -> int | None:
        try:
            return self.sftp.stat(path).st_size or 0
        except FileNotFoundError:
            return None
        except _FAILURES as exc:
            raise self._sftp_error(exc, "stat", path) from None

    def list_tree(self, path: str) -> list[RemoteFile]:
        # GNU find answers in one round trip and with sub-second modification times,
        # which tell a file rewritten within the same second apart; SFTP has whole
        # seconds only, and a request per directory. It is the fallback.
        # Only the login's own files: a shared directory (/tmp) also holds other users'
        # files, changed while the job ran, that are none of this job's business.
        result = self.run_shell(f'find {qpath(path)} -type f -uid "$(id -u)" {_FIND_PRINTF}')
        fields = result.stdout.split(b"\0")
        if result.stdout and len(fields) % 3 == 1 and fields[-1] == b"":
            found = [
                RemoteFile(name.decode("utf-8", "replace"), int(size), float(mtime))
                for name, size, mtime in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
            ]
            if not result.ok:
                logger.warning("Listing %s on %s: %s", path, self.description, result.reason())
            return sorted(found, key=lambda f: f.path)
        if result.ok:
            return []
        return self._sftp_list_tree(path)

    def _sftp_list_tree(self, path: str) -> list[RemoteFile]:
        found: list[RemoteFile] = []
        pending = [""]
        try:
            owner = self.sftp.stat(".").st_uid  # the login's home directory is its own
            while pending:
                relative = pending.pop()
                directory = f"{path.rstrip('/')}/{relative}" if relative else path
                try:
                    entries = self.sftp.listdir_attr(directory)
                except FileNotFoundError:
                    if relative:
                        continue  # removed while we looked
                    return []
                for entry in entries:
                    name = f"{relative}/{entry.filename}" if relative else entry.filename
                    mode = entry.st_mode or 0
                    if stat.S_ISDIR(mode):
                        pending.append(name)
                    elif stat.S_ISREG(mode) and entry.st_uid == owner:
                        found.append(
                            RemoteFile(name, entry.st_size or 0, float(entry.st_mtime or 0))
                        )
        except _FAILURES as exc:
            raise self._sftp_error(exc, "list", path) from None
        return sorted(found, key=lambda f: f.path)


def fetch_host_key(hostname: str, port: int = 22, *, timeout: float | None = None) -> HostKey:
    """The host key a server presents, fetched without logging in."""
    wait = conf.CONNECT_TIMEOUT if timeout is None else timeout
    return _retrying_handshakes(lambda: _fetch_host_key(hostname, port, wait))


def _fetch_host_key(hostname: str, port: int, timeout: float) -> HostKey:
    where = f"{hostname}:{port}"
    try:
        sock = socket.create_connection((hostname, port), timeout=timeout)
    except socket.gaierror:
        raise ConnectionFailed(f"Cannot resolve the host name {hostname!r}.") from None
    except ConnectionRefusedError:
        raise ConnectionFailed(
            f"Connection refused by {where}: no SSH server listens on that port."
        ) from None
    except TimeoutError:
        raise ConnectionFailed(f"Timed out after {timeout:g} s connecting to {where}.") from None
    except OSError as exc:
        raise ConnectionFailed(f"Cannot reach {where}: {_oserror_text(exc)}.") from None
    transport = _Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        return _host_key_of(transport.get_remote_server_key())
    except _FAILURES as exc:
        error = _handshake_error(where, transport, exc, timeout) or ConnectionFailed(
            f"The SSH handshake with {where} failed: {_text(exc)}."
        )
        raise error from None
    finally:
        transport.close()


def _is_encrypted_key(path: Path) -> bool:
    try:
        paramiko.PKey.from_path(str(path))
    except (paramiko.PasswordRequiredException, TypeError):
        return True
    except (OSError, ValueError, paramiko.SSHException):
        return False
    return False


def _known_hosts_files() -> list[Path]:
    files = [Path("~/.ssh/known_hosts").expanduser(), Path("/etc/ssh/ssh_known_hosts")]
    if conf.KNOWN_HOSTS_FILE is not None:
        files.append(conf.KNOWN_HOSTS_FILE.expanduser())
    return [path for path in files if path.is_file()]


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        exc = next(iter(exc.errors.values()))
    code = getattr(exc, "errno", None)
    if code is not None:
        return os.strerror(code)
    return str(exc) or type(exc).__name__


def _b64(blob: str) -> bytes:
    import base64

    return base64.b64decode(blob)

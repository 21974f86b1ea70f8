"""Opening SSH connections: host keys, credentials, handshake retries, paramiko's errors as ours."""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import paramiko

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRejected,
)
from django_remote_submission.transport.hostkeys import HostKey, known_hosts_name

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

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


@dataclass(frozen=True)
class Login:
    """Where a connection logs in and with what: what an ``SSHTransport`` was given."""

    hostname: str
    port: int
    username: str
    password: str | None = field(repr=False)
    key_filename: str | None
    passphrase: str | None = field(repr=False)
    allow_agent: bool | None
    host_key: HostKey | None
    on_new_host_key: Callable[[str], None] | None

    @property
    def description(self) -> str:
        return f"{self.username}@{self.hostname}:{self.port}"


def connect(login: Login) -> paramiko.SSHClient:
    """A new connection, logged in; a handshake the server cuts short is tried again."""
    return _retrying_handshakes(lambda: _connect_once(login))


def _connect_once(login: Login) -> paramiko.SSHClient:
    if login.password is None and login.key_filename is None and conf.KEY_FILENAME is not None:
        # The worker's own key file, for submissions that bring no credentials.
        login = replace(login, key_filename=str(conf.KEY_FILENAME))
    client = paramiko.SSHClient()
    name = known_hosts_name(login.hostname, login.port)
    if login.host_key is not None:
        client.get_host_keys().add(
            name,
            login.host_key.key_type,
            paramiko.PKey.from_type_string(login.host_key.key_type, _b64(login.host_key.blob)),
        )
    else:
        for path in _known_hosts_files():
            try:
                client.load_system_host_keys(str(path))
            except _FAILURES as exc:
                logger.warning("Ignoring unreadable known_hosts file %s: %s", path, exc)
    client.set_missing_host_key_policy(
        _HostKeyPolicy(conf.HOST_KEY_POLICY, login.description, login.on_new_host_key)
    )
    options: dict[str, Any] = {
        "timeout": conf.CONNECT_TIMEOUT,
        "banner_timeout": conf.CONNECT_TIMEOUT,
        "auth_timeout": conf.CONNECT_TIMEOUT,
        "channel_timeout": conf.CONNECT_TIMEOUT,
    }
    if login.password is not None:
        options.update(password=login.password, allow_agent=False, look_for_keys=False)
    if login.key_filename is not None:
        options.update(pkey=_load_key(login), allow_agent=False, look_for_keys=False)
    if login.password is None and login.key_filename is None:
        allow = True if login.allow_agent is None else login.allow_agent
        options.update(allow_agent=allow, look_for_keys=True)
    try:
        client.connect(
            login.hostname, login.port, login.username, transport_factory=_new_transport, **options
        )
    except BaseException as exc:
        error = _connect_error(login, exc, client.get_transport())
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
    logger.info("Connected to %s", login.description)
    return client


#: What paramiko says when it has no password, no key file, no agent key and no default key.
NO_METHODS = "No authentication methods available"
#: The private keys paramiko looks for in ~/.ssh when it is given no key (look_for_keys).
DEFAULT_KEYS = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")


def _no_credentials(login: Login) -> str:
    """Why a login had nothing to offer, and the ways to give it something: paths, never
    the contents of a key."""
    home = Path("~").expanduser()
    looked = ", ".join(str(home / ".ssh" / name) for name in DEFAULT_KEYS)
    if login.allow_agent is False:
        agent = "the ssh-agent was not to be used"
    elif os.environ.get("SSH_AUTH_SOCK"):
        agent = f"the ssh-agent at SSH_AUTH_SOCK={os.environ['SSH_AUTH_SOCK']} offered no key"
    else:
        agent = "no ssh-agent runs for it (SSH_AUTH_SOCK is not set)"
    return (
        f"No way to log in as {login.username!r} on {login.hostname}:{login.port}: no password "
        f"was given, no key file either, and the worker (OS user {getpass.getuser()!r}) found "
        f"no private key of its own (it looked for {looked}) and {agent}. Give the login's "
        "password; or a key file (the task's public_key_filename, or the worker's own in the "
        "setting REMOTE_SUBMISSION_KEY_FILENAME); or put the worker's key on the server "
        "(copy_key_to_server), and check that the site's login policy lets this user use the "
        "worker's credentials."
    )


def _load_key(login: Login) -> paramiko.PKey:
    assert login.key_filename is not None
    path = Path(login.key_filename).expanduser()
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
        passphrase = login.passphrase.encode() if login.passphrase is not None else None
        return paramiko.PKey.from_path(str(path), password=passphrase)  # type: ignore[arg-type]
    except (paramiko.PasswordRequiredException, TypeError):
        # cryptography says TypeError for "password-protected, no password given".
        raise AuthenticationFailed(
            f"The private key {path} is encrypted: give its passphrase."
        ) from None
    except FileNotFoundError:
        raise AuthenticationFailed(f"The private key file {path} does not exist.") from None
    except (OSError, ValueError, paramiko.SSHException) as exc:
        if login.passphrase is not None and _is_encrypted_key(path):
            raise AuthenticationFailed(
                f"The passphrase does not open the private key {path}."
            ) from None
        raise AuthenticationFailed(
            f"Cannot read the private key {path}: {type(exc).__name__}."
        ) from None


def _connect_error(
    login: Login, exc: BaseException, transport: paramiko.Transport | None
) -> BaseException:
    """``transport`` is None unless the TCP connection was made."""
    where = f"{login.hostname}:{login.port}"
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
        if login.password is not None:
            what = "the password"
        elif login.key_filename is not None:
            what = f"the key {login.key_filename}"
        else:
            what = "every key offered (ssh-agent and ~/.ssh of the worker's user)"
        return AuthenticationFailed(
            f"{where} refused {what} for user {login.username!r}. Check the username "
            "and the credentials."
        )
    if isinstance(exc, paramiko.SSHException) and str(exc) == NO_METHODS:
        return AuthenticationFailed(_no_credentials(login))
    if transport is not None and isinstance(exc, Exception):
        handshake = _handshake_error(where, transport, exc, conf.CONNECT_TIMEOUT)
        if handshake is not None:
            return handshake
        if _gone(transport):
            return ConnectionFailed(
                _lost(where, transport, f"while logging in as {login.username!r}", exc)
            )
    if isinstance(exc, socket.gaierror):
        return ConnectionFailed(f"Cannot resolve the host name {login.hostname!r}.")
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

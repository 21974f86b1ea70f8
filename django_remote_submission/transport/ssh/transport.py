"""SSHTransport: commands, output streams and files over sessions of pooled SSH connections."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import select
import shlex
import stat
import time
from collections.abc import Callable
from typing import IO

import paramiko

from django_remote_submission.exceptions import (
    CommandTimedOut,
    ConnectionFailed,
    TransportError,
)
from django_remote_submission.transport.base import (
    CONTROL_GLOBS,
    CONTROL_NAME,
    ByteStream,
    CommandResult,
    RemoteFile,
)
from django_remote_submission.transport.shell import qpath, quote, remote_path
from django_remote_submission.transport.ssh.connect import _FAILURES, _text
from django_remote_submission.transport.ssh.sessions import _SSHSessions

#: find's output for list_tree: relative path, size, mtime, each ended by a NUL.
_FIND_PRINTF = "-printf " + shlex.quote("%P\\0%s\\0%T@\\0")
logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024


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


class SSHTransport(_SSHSessions):
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
        # One SFTP request when the directory is there already, as it usually is, or
        # when only its last part is missing (a job's control directory): no command,
        # which would cost the server a process for each job launched.
        try:
            if stat.S_ISDIR(self.sftp.stat(path).st_mode or 0):
                return
        except _FAILURES:
            pass
        try:
            self.sftp.mkdir(path)
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
        # From inside the directory, so that the pruned control directories are named
        # by a pattern free of the directory's own name (which may hold glob characters).
        names = " -o ".join(f"-name {shlex.quote(glob)}" for glob in CONTROL_GLOBS)
        result = self.run_shell(
            f"cd {qpath(path)} && find . -path './.drs-*' -type d \\( {names} \\) -prune "
            f'-o -type f -uid "$(id -u)" {_FIND_PRINTF}'
        )
        fields = result.stdout.split(b"\0")
        if result.stdout and len(fields) % 3 == 1 and fields[-1] == b"":
            found = [
                RemoteFile(name.decode("utf-8", "replace"), int(size), float(mtime))
                for name, size, mtime in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
            ]
            # A file or directory removed while find looked (another job's control
            # directory, cleaned up as it ended) is no trouble.
            trouble = [
                line
                for line in result.stderr.decode("utf-8", "replace").splitlines()
                if not line.endswith(": No such file or directory")
            ]
            if not result.ok and trouble:
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
                        if relative or not CONTROL_NAME.fullmatch(entry.filename):
                            pending.append(name)
                    elif stat.S_ISREG(mode) and entry.st_uid == owner:
                        found.append(
                            RemoteFile(name, entry.st_size or 0, float(entry.st_mtime or 0))
                        )
        except _FAILURES as exc:
            raise self._sftp_error(exc, "list", path) from None
        return sorted(found, key=lambda f: f.path)

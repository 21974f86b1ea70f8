"""The Transport contract: everything the runner needs from a server, over SSH or locally."""

from __future__ import annotations

import abc
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Self

from django_remote_submission.exceptions import TransportError
from django_remote_submission.transport import detached

# The protocol's constants, re-exported: they were defined here before detached.py.
from django_remote_submission.transport.detached import EXIT_CHECK_SECONDS as EXIT_CHECK_SECONDS
from django_remote_submission.transport.detached import FOLLOW_TICK as FOLLOW_TICK
from django_remote_submission.transport.detached import MAX_READER_RESTARTS as MAX_READER_RESTARTS
from django_remote_submission.transport.detached import REMAINDER_CHUNK as REMAINDER_CHUNK
from django_remote_submission.transport.detached import DetachedProcess
from django_remote_submission.transport.shell import qpath, quote, remote_path


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind."""

    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def reason(self) -> str:
        """The command's own words about why it failed, for error messages."""
        text = (self.stderr or self.stdout).decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else f"exit code {self.exit_code}"


@dataclass(frozen=True)
class RemoteFile:
    """A regular file found by ``list_tree``; ``path`` is relative, with ``/`` separators."""

    path: str
    size: int
    mtime: float


#: The name of a job's control directory (``.drs-<job uuid>``), of the followers'
#: (``.drs-follow``) or of the login's process tracker (``.drs-tracker``), as
#: ``list_tree`` leaves them out.
CONTROL_NAME = re.compile(r"\.drs-([0-9a-f]{8}-[0-9a-f-]{27}|follow|tracker)")
#: The same, as a pattern of ``find -name``.
CONTROL_GLOBS = (".drs-????????-????-????-????-????????????", ".drs-follow", ".drs-tracker")


class ByteStream(abc.ABC):
    """The output of a long-running command, read as it arrives."""

    @abc.abstractmethod
    def fileno(self) -> int: ...

    @abc.abstractmethod
    def read_available(self) -> bytes | None:
        """What has arrived: b"" once the command is done, None if nothing yet."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Transport(abc.ABC):
    """A way to reach one server. Opens lazily; nested ``with`` blocks open it once.

    Relative paths are relative to the transport's working directory: the login
    directory over SSH, the worker's current directory locally.

    What both transports share is written once here, in terms of a few primitives
    (``_run``, ``_stream``, file transfer, ``list_tree``), so both behave alike.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._is_open = False

    # Opening and closing ------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._depth == 0:
            self.open()
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.close()

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        if not self._is_open:
            self._open()
            self._is_open = True

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Where this transport goes, for messages: ``user@host:port`` or ``this host``."""

    # Primitives each transport implements --------------------------------------------

    @abc.abstractmethod
    def _run(self, command: str, *, input: bytes | None, timeout: float | None) -> CommandResult:
        """Run a shell command line and wait for it."""

    @abc.abstractmethod
    def _stream(self, command: str) -> ByteStream:
        """Start a shell command line whose standard output is read as it arrives."""

    @abc.abstractmethod
    def put_fileobj(self, fileobj: IO[bytes], path: str, *, mode: int | None = None) -> int:
        """Write a remote file from a local file object; returns the bytes written."""

    @abc.abstractmethod
    def get_fileobj(self, path: str, fileobj: IO[bytes]) -> int:
        """Stream a remote file into a local file object; returns the bytes read."""

    @abc.abstractmethod
    def read_file(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of a file from ``offset``: at most ``length``, or to its end."""

    @abc.abstractmethod
    def file_size(self, path: str) -> int | None:
        """The size of a file in bytes, or None if there is no such file."""

    @abc.abstractmethod
    def list_tree(self, path: str) -> list[RemoteFile]:
        """Every regular file under ``path`` that the login owns, in subdirectories too;
        [] if ``path`` is missing. Other users' files are left out: in a shared directory
        they are not the job's, even when they changed while it ran. So are the jobs'
        control directories right under ``path`` (``CONTROL_NAME``): never results, and
        a thousand jobs sharing a directory would make each listing a thousand times
        longer."""

    # Shared operations ---------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        timeout: float | None = None,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run a command (a list of arguments, each quoted) and wait for it."""
        command = quote(argv)
        if env:
            command = "env " + quote([f"{k}={v}" for k, v in env.items()]) + " " + command
        if cwd is not None:
            command = f"cd {qpath(cwd)} && {command}"
        return self.run_shell(command, timeout=timeout, input=input)

    def run_shell(
        self, command: str, *, timeout: float | None = None, input: bytes | None = None
    ) -> CommandResult:
        """Run a command line written for a POSIX shell. Quote what goes into it."""
        self.open()
        return self._run(command, input=input, timeout=timeout)

    def check(self, argv: Sequence[str], *, what: str, **kwargs: object) -> CommandResult:
        """``run``, raising TransportError("<what> failed: <its stderr>") unless it exits 0."""
        result = self.run(argv, **kwargs)  # type: ignore[arg-type]
        if not result.ok:
            raise TransportError(f"{what} failed on {self.description}: {result.reason()}")
        return result

    def mkdir_p(self, path: str) -> None:
        self.check(["mkdir", "-p", "--", remote_path(path)], what=f"Creating directory {path!r}")

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file (or a tree, if ``recursive``); a missing path is not an error."""
        flags = "-rf" if recursive else "-f"
        self.check(["rm", flags, "--", remote_path(path)], what=f"Removing {path!r}")

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", remote_path(path)]).ok

    def put_bytes(self, data: bytes, path: str, *, mode: int | None = None) -> int:
        return self.put_fileobj(io.BytesIO(data), path, mode=mode)

    def put_text(self, text: str, path: str, *, mode: int | None = None) -> int:
        return self.put_bytes(text.encode("utf-8"), path, mode=mode)

    def put_file(self, local_path: str, path: str, *, mode: int | None = None) -> int:
        with open(local_path, "rb") as stream:
            return self.put_fileobj(stream, path, mode=mode)

    def get_file(self, path: str, local_path: str) -> int:
        with open(local_path, "wb") as stream:
            return self.get_fileobj(path, stream)

    # Detached programs (the protocol is in detached.py) -------------------------------

    def start_detached(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        control_directory: str,
        time_limit: float | None = None,
        grace: float = 5.0,
    ) -> DetachedProcess:
        """Start ``argv`` in ``cwd`` so that it outlives this connection.

        The program leads its own session and process group. Its stdout and stderr are
        appended to files in ``control_directory``; when it ends, its exit code is written
        to ``exit_code`` there (128 + N when signal N ended it). With a ``time_limit`` the
        server itself writes ``timed_out`` when the limit passes and stops the program's
        whole tree as ``stop`` does (``tree.sh stop``: TERM, then KILL after ``grace``
        seconds). Needs ``setsid``, ``awk``, ``find`` and ``ps`` on the server.
        """
        return detached.start(
            self,
            argv,
            cwd=cwd,
            control_directory=control_directory,
            time_limit=time_limit,
            grace=grace,
        )

    def is_group_alive(self, pgid: int) -> bool:
        return detached.is_group_alive(self, pgid)

    def signal_group(self, pgid: int, signal: str = "TERM") -> bool:
        """Send a signal to a process group; False if the group no longer exists."""
        return detached.signal_group(self, pgid, signal)

    def terminate_group(self, pgid: int, *, grace: float = 5.0) -> None:
        """TERM the process group, then KILL whatever is left after ``grace`` seconds."""
        detached.terminate_group(self, pgid, grace=grace)

    def stop(self, process: DetachedProcess, *, grace: float = 5.0) -> list[str]:
        """Stop the program and every process of its tree, in whatever process group or
        session: TERM, then KILL after ``grace`` seconds (see ``tree.sh`` in the control
        directory). Returns the processes still alive after KILL, as ``pid command``
        lines, which are also left in ``survivors`` there."""
        return detached.stop(self, process, grace=grace)

    def survivors(self, process: DetachedProcess) -> list[str]:
        """What the last stop of the program's tree left alive (see ``stop``)."""
        return detached.survivors(self, process)

    def outcome(self, process: DetachedProcess) -> tuple[int | None, set[str]]:
        """The exit code (None while it runs) and the names of the markers found in the
        control directory: ``timed_out``, ``canceled``."""
        return detached.outcome(self, process)

    def read_exit_code(self, process: DetachedProcess) -> int | None:
        """The program's exit code, or None while it runs."""
        return detached.read_exit_code(self, process)

    def follow(
        self, files: Sequence[tuple[str, int]], *, process: DetachedProcess
    ) -> Iterator[tuple[int, bytes] | None]:
        """Follow files from byte offsets while a detached program runs, without polling.

        Yields ``(index, chunk)`` as bytes arrive (``index`` into ``files``), and ``None``
        after each ``FOLLOW_TICK`` of silence, so the caller can flush or give up. Ends
        once the program has ended and every file has been read to its final size, so that
        the offsets the caller adds up are exact: a reader that dies on the server (an OOM
        killer, an admin's ``pkill tail``) is started again from where it stopped, and what
        it did not deliver is read at the end. Raises ``TransportError`` saying what is
        missing when that cannot be done. Needs GNU ``tail`` on the server.
        """
        return detached.follow(self, files, process=process)

    def wait_for_exit_code(self, process: DetachedProcess, *, timeout: float = 30.0) -> int:
        """The exit code of a program whose monitor has ended (waits briefly for the file)."""
        return detached.wait_for_exit_code(self, process, timeout=timeout)

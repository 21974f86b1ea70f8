"""The Transport contract: everything the runner needs from a server, over SSH or locally."""

from __future__ import annotations

import abc
import io
import logging
import selectors
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Self

from django_remote_submission.exceptions import CommandTimedOut, TransportError
from django_remote_submission.transport.detached import (
    DetachedProcess,
    monitor_script,
    survivor_lines,
    tree_script_writer,
)
from django_remote_submission.transport.shell import qpath, quote, remote_path

logger = logging.getLogger(__name__)

#: The longest silence after which ``follow`` yields ``None``, so the caller can do its
#: own work (flush a batch, look for a cancel request).
FOLLOW_TICK = 0.1
#: Seconds between looks for the exit code while a followed program is silent.
EXIT_CHECK_SECONDS = 0.5
#: Times the readers of one followed program may die and be started again.
MAX_READER_RESTARTS = 20
#: Bytes read at a time of what the readers did not deliver.
REMAINDER_CHUNK = 4 * 1024 * 1024


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


#: One command starts a detached program (each round trip to a server costs): it prepares
#: the control directory, takes the monitor script from stdin, starts it and reports the
#: pids. Each step that fails stops it with what failed and why, its own first error (not a
#: later step's complaint about what the first one left missing); stdin is read to its
#: end first, so that the script never ends while its input is still on the way.
_LAUNCH = (
    r"""
die() {{ printf '%s\n' "$*" >&2; cat >/dev/null 2>&1; exit 1; }}
command -v setsid >/dev/null ||
  die "setsid is not installed on the server (it comes with util-linux)"
command -v awk >/dev/null || die "awk is not installed on the server"
err=$(mkdir -p -- {ctl} 2>&1) || die "Creating the control directory failed: $err"
# The control directory may be relative to where we are now, not to the job's directory.
ctl=$(cd -- {ctl} && pwd) || die "Entering the control directory failed"
# A control directory used before (a job run again) must not answer for this run.
err=$(rm -f -- "$ctl/pgid" "$ctl/monitor.pid" "$ctl/exit_code" "$ctl/timed_out" \
  "$ctl/canceled" "$ctl/tree" "$ctl/tree.stop" "$ctl/survivors" 2>&1) ||
  die "Clearing the control directory $ctl failed: $err"
err=$( {{ : > "$ctl/stdout" && : > "$ctl/stderr"; }} 2>&1) ||
  die "Creating the output files in $ctl failed: $err"
err=$(cat > "$ctl/monitor.sh" 2>&1) || die "Writing $ctl/monitor.sh failed: $err"
size=$(wc -c < "$ctl/monitor.sh")
[ "$size" -eq {size} ] ||
  die "Writing $ctl/monitor.sh failed: $size of {size} bytes were written (is the disk full?)"
"""
    # tree.sh: written here, not sent on stdin, which carries the monitor.
    + tree_script_writer().replace("{", "{{").replace("}", "}}")
    + r"""err=$(cd -- {cwd} 2>&1) || die "Entering the job's directory failed: $err"
cd -- {cwd} || die "Entering the job's directory failed"
setsid /bin/sh "$ctl/monitor.sh" "$ctl" </dev/null >/dev/null 2>&1 &
# Wait (at most 10 s) until the monitor has written both pids.
i=0
while [ ! -s "$ctl/pgid" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
if [ ! -s "$ctl/pgid" ] || [ ! -s "$ctl/monitor.pid" ]; then
  free=$(df -Pk -- "$ctl" 2>/dev/null | awk 'NR == 2 {{ print $4 }}')
  [ "$free" = 0 ] && die "The program was not started: no space left on the device of $ctl"
  die "The program was not started: its monitor wrote no process id to $ctl in 10 s"
fi
cat -- "$ctl/pgid" "$ctl/monitor.pid"
"""
)


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
        they are not the job's, even when they changed while it ran."""

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

    # Detached programs ---------------------------------------------------------------

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
        server itself sends TERM to the group when the limit passes, then KILL after
        ``grace`` seconds, and writes ``timed_out``. Needs ``setsid`` on the server.
        """
        ctl = remote_path(control_directory.rstrip("/") or "/")
        script = monitor_script(argv, time_limit, grace).encode()
        launch = _LAUNCH.format(ctl=qpath(ctl), cwd=qpath(cwd), size=len(script))
        result = self.run_shell(launch, timeout=30, input=script)
        numbers = result.stdout.split()
        if not result.ok or len(numbers) != 2:
            raise TransportError(
                f"Could not start the program in {cwd!r} on {self.description}: {result.reason()}"
            )
        return DetachedProcess(int(numbers[0]), int(numbers[1]), ctl)

    def is_group_alive(self, pgid: int) -> bool:
        return self.run_shell(f"kill -0 -{int(pgid)} 2>/dev/null").ok

    def signal_group(self, pgid: int, signal: str = "TERM") -> bool:
        """Send a signal to a process group; False if the group no longer exists."""
        if not signal.isalnum():
            raise ValueError(f"not a signal name: {signal!r}")
        return self.run_shell(f"kill -{signal} -{int(pgid)} 2>/dev/null").ok

    def terminate_group(self, pgid: int, *, grace: float = 5.0) -> None:
        """TERM the process group, then KILL whatever is left after ``grace`` seconds."""
        ticks = max(1, int(grace / 0.1))
        self.run_shell(
            f"kill -TERM -{int(pgid)} 2>/dev/null; i=0; "
            f"while kill -0 -{int(pgid)} 2>/dev/null && [ $i -lt {ticks} ]; do "
            f"sleep 0.1; i=$((i+1)); done; kill -KILL -{int(pgid)} 2>/dev/null; true",
            timeout=grace + 30,
        )

    def stop(self, process: DetachedProcess, *, grace: float = 5.0) -> list[str]:
        """Stop the program and every process of its tree, in whatever process group or
        session: TERM, then KILL after ``grace`` seconds (see ``tree.sh`` in the control
        directory). Returns the processes still alive after KILL, as ``pid command``
        lines, which are also left in ``survivors`` there."""
        script, ctl = qpath(process.tree_script_path), qpath(process.control_directory)
        # Without its tree.sh (its control directory is gone), a program is stopped by
        # its process group, as it always was.
        ticks = max(1, int(grace / 0.1))
        pgid = int(process.pgid)
        result = self.run_shell(
            f"[ -f {script} ] && /bin/sh {script} stop {ctl} {pgid} {float(grace):g} && exit; "
            f"kill -TERM -{pgid} 2>/dev/null; i=0; "
            f"while kill -0 -{pgid} 2>/dev/null && [ $i -lt {ticks} ]; do "
            f"sleep 0.1; i=$((i+1)); done; kill -KILL -{pgid} 2>/dev/null; true",
            # Ample: cut short, the stop would leave the processes it had stopped (STOP) so.
            timeout=grace + 120,
        )
        return survivor_lines(result.stdout)

    def survivors(self, process: DetachedProcess) -> list[str]:
        """What the last stop of the program's tree left alive (see ``stop``)."""
        try:
            return survivor_lines(self.read_file(process.survivors_path))
        except TransportError:
            return []  # never stopped, or its control directory is gone

    def outcome(self, process: DetachedProcess) -> tuple[int | None, set[str]]:
        """The exit code (None while it runs) and the names of the markers found in the
        control directory: ``timed_out``, ``canceled``."""
        names = {f.path for f in self.list_tree(process.control_directory)}
        code = self.read_exit_code(process) if "exit_code" in names else None
        return code, names & {"timed_out", "canceled"}

    def read_exit_code(self, process: DetachedProcess) -> int | None:
        """The program's exit code, or None while it runs."""
        try:
            text = self.read_file(process.exit_code_path).strip()
        except TransportError:
            return None
        return int(text) if text.lstrip(b"-").isdigit() else None

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
        consumed = [int(offset) for _, offset in files]
        final_sizes: list[int] | None = None
        restarts = 0
        # Look for the exit code soon after the start (short jobs end fast), then less often.
        exit_check_delay = 0.02
        next_exit_check = time.monotonic() + exit_check_delay
        streams: dict[int, ByteStream] = {}
        selector = selectors.DefaultSelector()

        def start(index: int) -> None:
            streams[index] = self._stream(_tail_command(files[index][0], consumed[index], process))
            selector.register(streams[index].fileno(), selectors.EVENT_READ, index)

        try:
            for index in range(len(files)):
                start(index)
            while streams:
                wait = FOLLOW_TICK
                if final_sizes is None:
                    wait = max(0.0, min(wait, next_exit_check - time.monotonic()))
                events = selector.select(timeout=wait)
                for key, _ in events:
                    index = key.data
                    chunk = streams[index].read_available()
                    if chunk:
                        consumed[index] += len(chunk)
                        yield index, chunk
                    elif chunk is not None:
                        self._drop_stream(selector, streams, index)
                        if final_sizes is None and not self._has_ended(process):
                            # The reader died, not the program: read on from here.
                            self._size(files[index][0])
                            restarts += 1
                            if restarts > MAX_READER_RESTARTS:
                                raise TransportError(
                                    f"The readers of {files[index][0]!r} on {self.description} "
                                    f"ended {restarts} times while the program ran."
                                )
                            logger.warning(
                                "The reader of %s on %s ended early; starting it again at byte %s",
                                files[index][0],
                                self.description,
                                consumed[index],
                            )
                            start(index)
                # The monitor may linger as a zombie where init reaps late, keeping tail
                # alive; once the exit code exists, the files' sizes say when to stop.
                if final_sizes is None and not events and time.monotonic() >= next_exit_check:
                    exit_check_delay = min(EXIT_CHECK_SECONDS, exit_check_delay * 2)
                    next_exit_check = time.monotonic() + exit_check_delay
                    if self.file_size(process.exit_code_path) is not None:
                        final_sizes = self._final_sizes(files)
                if final_sizes is not None:
                    for index in list(streams):
                        if consumed[index] >= final_sizes[index]:
                            self._drop_stream(selector, streams, index)
                if not events and streams:
                    yield None
        finally:
            selector.close()
            for stream in streams.values():
                stream.close()
        if final_sizes is None:
            self.wait_for_exit_code(process)
            final_sizes = self._final_sizes(files)
        for index, (path, _) in enumerate(files):
            # What the readers did not deliver (one died as the program ended, say).
            while consumed[index] < final_sizes[index]:
                wanted = min(REMAINDER_CHUNK, final_sizes[index] - consumed[index])
                try:
                    chunk = self.read_file(path, consumed[index], wanted)
                except TransportError as exc:
                    raise TransportError(
                        f"{final_sizes[index] - consumed[index]} bytes of {path!r} from byte "
                        f"{consumed[index]} on could not be read: {exc}"
                    ) from exc
                if not chunk:
                    raise TransportError(
                        f"{final_sizes[index] - consumed[index]} bytes of {path!r} from byte "
                        f"{consumed[index]} on could not be read: the file ends at "
                        f"{consumed[index]}, although it had {final_sizes[index]} bytes."
                    )
                consumed[index] += len(chunk)
                yield index, chunk

    def _has_ended(self, process: DetachedProcess) -> bool:
        """Whether the program has ended: its exit code is there, or its monitor, which
        would write it, is gone (then the exit code is looked for once more, at the end)."""
        if self.file_size(process.exit_code_path) is not None:
            return True
        return not self.run_shell(f"kill -0 {int(process.monitor_pid)} 2>/dev/null").ok

    def _final_sizes(self, files: Sequence[tuple[str, int]]) -> list[int]:
        return [self._size(path) for path, _ in files]

    def _size(self, path: str) -> int:
        """The size of a followed output file, which must not have gone."""
        size = self.file_size(path)
        if size is None:
            raise TransportError(
                f"The output file {path!r} on {self.description} is gone: what the "
                "program wrote to it and was not stored yet is lost."
            )
        return size

    @staticmethod
    def _drop_stream(
        selector: selectors.BaseSelector, streams: dict[int, ByteStream], index: int
    ) -> None:
        stream = streams.pop(index)
        selector.unregister(stream.fileno())
        stream.close()

    def wait_for_exit_code(self, process: DetachedProcess, *, timeout: float = 30.0) -> int:
        """The exit code of a program whose monitor has ended (waits briefly for the file)."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.read_exit_code(process)
            if code is not None:
                return code
            if time.monotonic() > deadline:
                raise CommandTimedOut(
                    f"No exit code in {process.exit_code_path} on {self.description} "
                    f"after {timeout:g} s"
                )
            time.sleep(0.05)


def _tail_command(path: str, offset: int, process: DetachedProcess) -> str:
    """Follows a file from a byte offset; ``--pid`` ends it once the monitor is gone,
    should this worker go first."""
    return quote(
        [
            "tail",
            "-c",
            f"+{int(offset) + 1}",
            "-f",
            f"--pid={int(process.monitor_pid)}",
            "-s",
            str(EXIT_CHECK_SECONDS),
            "--",
            remote_path(path),
        ]
    )

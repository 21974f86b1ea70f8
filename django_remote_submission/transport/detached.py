"""The detached-program protocol: start a program, follow it, read its outcome, stop its tree.

Each function takes the transport as its first argument and needs only its primitives
(``run_shell``, ``_stream``, ``read_file``, ``file_size``, ``list_tree``). ``Transport``
keeps the public methods, with their documentation, as one-line delegations to these
rather than inheriting them from a mixin: the contract and its reference documentation
stay on one class, and this module needs no abstract stand-ins for the primitives. The
shell scripts that run on the server are in ``scripts``.
"""

from __future__ import annotations

import logging
import selectors
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django_remote_submission.exceptions import CommandTimedOut, TransportError
from django_remote_submission.transport.scripts import LAUNCH, SUBMIT, monitor_script
from django_remote_submission.transport.shell import qpath, quote, remote_path

if TYPE_CHECKING:
    # base imports this module: these names are for the annotations only.
    from django_remote_submission.transport.base import ByteStream, Transport

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
#: The most survivors a job's reason names.
SURVIVORS_NAMED = 5


@dataclass(frozen=True)
class DetachedProcess:
    """A program started by ``start_detached``.

    ``pgid`` is the program's process group (its pid: it leads its own session);
    ``monitor_pid`` is the small shell that waits for it and writes its exit code.
    """

    pgid: int
    monitor_pid: int
    control_directory: str

    @property
    def stdout_path(self) -> str:
        return f"{self.control_directory}/stdout"

    @property
    def stderr_path(self) -> str:
        return f"{self.control_directory}/stderr"

    @property
    def exit_code_path(self) -> str:
        return f"{self.control_directory}/exit_code"

    @property
    def timed_out_path(self) -> str:
        return f"{self.control_directory}/timed_out"

    @property
    def tree_script_path(self) -> str:
        return f"{self.control_directory}/tree.sh"

    @property
    def tree_path(self) -> str:
        return f"{self.control_directory}/tree"

    @property
    def survivors_path(self) -> str:
        return f"{self.control_directory}/survivors"


def start(
    transport: Transport,
    argv: Sequence[str],
    *,
    cwd: str,
    control_directory: str,
    time_limit: float | None,
    grace: float,
) -> DetachedProcess:
    """See ``Transport.start_detached``."""
    ctl = remote_path(control_directory.rstrip("/") or "/")
    script = monitor_script(argv, time_limit, grace).encode()
    launch = LAUNCH.format(ctl=qpath(ctl), cwd=qpath(cwd), size=len(script))
    result = transport.run_shell(launch, timeout=30, input=script)
    numbers = result.stdout.split()
    if not result.ok or len(numbers) != 2:
        raise TransportError(
            f"Could not start the program in {cwd!r} on {transport.description}: {result.reason()}"
        )
    return DetachedProcess(int(numbers[0]), int(numbers[1]), ctl)


def submit(
    transport: Transport,
    argv: Sequence[str],
    *,
    cwd: str,
    control_directory: str,
    header: str,
    submit_command: str,
    time_limit: float | None,
    grace: float,
) -> str:
    """Prepare the control directory as ``start`` does, then hand the program to a batch
    scheduler instead of starting it: write ``batch.sh`` (``header``, the scheduler's
    directive lines, then the monitor of a direct job) and run ``submit_command`` (shell
    text that submits ``"$ctl/batch.sh"`` and passes it ``"$ctl"``) in ``cwd``. The
    scheduler's answer (its job id, for its parser) is returned. Once the scheduler runs
    the script, the program's output and exit code land in the control directory as a
    direct job's do. ``time_limit`` is the monitor's own; a scheduler that enforces the
    job's time limit needs none."""
    if header and not header.endswith("\n"):
        header += "\n"
    if "\nDRS_BATCH_SCRIPT_END\n" in f"\n{header}":
        raise ValueError("A batch script header line may not end the script's here-document")
    ctl = remote_path(control_directory.rstrip("/") or "/")
    script = monitor_script(argv, time_limit, grace).encode()
    launch = SUBMIT.format(
        ctl=qpath(ctl), cwd=qpath(cwd), size=len(script), batch=header, submit=submit_command
    )
    result = transport.run_shell(launch, timeout=60, input=script)
    answer = result.stdout.decode(errors="replace").strip()
    if not result.ok or not answer:
        raise TransportError(
            f"Could not submit the program in {cwd!r} on {transport.description}: {result.reason()}"
        )
    return answer


def is_group_alive(transport: Transport, pgid: int) -> bool:
    return transport.run_shell(f"kill -0 -{int(pgid)} 2>/dev/null").ok


def signal_group(transport: Transport, pgid: int, signal: str) -> bool:
    if not signal.isalnum():
        raise ValueError(f"not a signal name: {signal!r}")
    return transport.run_shell(f"kill -{signal} -{int(pgid)} 2>/dev/null").ok


def terminate_group(transport: Transport, pgid: int, *, grace: float) -> None:
    ticks = max(1, int(grace / 0.1))
    transport.run_shell(
        f"kill -TERM -{int(pgid)} 2>/dev/null; i=0; "
        f"while kill -0 -{int(pgid)} 2>/dev/null && [ $i -lt {ticks} ]; do "
        f"sleep 0.1; i=$((i+1)); done; kill -KILL -{int(pgid)} 2>/dev/null; true",
        timeout=grace + 30,
    )


def stop(transport: Transport, process: DetachedProcess, *, grace: float) -> list[str]:
    """See ``Transport.stop``."""
    script, ctl = qpath(process.tree_script_path), qpath(process.control_directory)
    # Without its tree.sh (its control directory is gone), a program is stopped by
    # its process group, as it always was.
    ticks = max(1, int(grace / 0.1))
    pgid = int(process.pgid)
    result = transport.run_shell(
        f"[ -f {script} ] && /bin/sh {script} stop {ctl} {pgid} {float(grace):g} && exit; "
        f"kill -TERM -{pgid} 2>/dev/null; i=0; "
        f"while kill -0 -{pgid} 2>/dev/null && [ $i -lt {ticks} ]; do "
        f"sleep 0.1; i=$((i+1)); done; kill -KILL -{pgid} 2>/dev/null; true",
        # Ample: cut short, the stop would leave the processes it had stopped (STOP) so.
        timeout=grace + 120,
    )
    return survivor_lines(result.stdout)


def survivors(transport: Transport, process: DetachedProcess) -> list[str]:
    try:
        return survivor_lines(transport.read_file(process.survivors_path))
    except TransportError:
        return []  # never stopped, or its control directory is gone


def outcome(transport: Transport, process: DetachedProcess) -> tuple[int | None, set[str]]:
    names = {f.path for f in transport.list_tree(process.control_directory)}
    code = read_exit_code(transport, process) if "exit_code" in names else None
    return code, names & {"timed_out", "canceled"}


def read_exit_code(transport: Transport, process: DetachedProcess) -> int | None:
    try:
        text = transport.read_file(process.exit_code_path).strip()
    except TransportError:
        return None
    return int(text) if text.lstrip(b"-").isdigit() else None


def wait_for_exit_code(transport: Transport, process: DetachedProcess, *, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        code = read_exit_code(transport, process)
        if code is not None:
            return code
        if time.monotonic() > deadline:
            raise CommandTimedOut(
                f"No exit code in {process.exit_code_path} on {transport.description} "
                f"after {timeout:g} s"
            )
        time.sleep(0.05)


def follow(
    transport: Transport, files: Sequence[tuple[str, int]], *, process: DetachedProcess
) -> Iterator[tuple[int, bytes] | None]:
    """See ``Transport.follow``."""
    consumed = [int(offset) for _, offset in files]
    final_sizes: list[int] | None = None
    restarts = 0
    # Look for the exit code soon after the start (short jobs end fast), then less often.
    exit_check_delay = 0.02
    next_exit_check = time.monotonic() + exit_check_delay
    streams: dict[int, ByteStream] = {}
    selector = selectors.DefaultSelector()

    def start_reader(index: int) -> None:
        command = _tail_command(files[index][0], consumed[index], process)
        streams[index] = transport._stream(command)
        selector.register(streams[index].fileno(), selectors.EVENT_READ, index)

    try:
        for index in range(len(files)):
            start_reader(index)
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
                    _drop_stream(selector, streams, index)
                    if final_sizes is None and not _has_ended(transport, process):
                        # The reader died, not the program: read on from here.
                        _size(transport, files[index][0])
                        restarts += 1
                        if restarts > MAX_READER_RESTARTS:
                            raise TransportError(
                                f"The readers of {files[index][0]!r} on "
                                f"{transport.description} ended {restarts} times while the "
                                "program ran."
                            )
                        logger.warning(
                            "The reader of %s on %s ended early; starting it again at byte %s",
                            files[index][0],
                            transport.description,
                            consumed[index],
                        )
                        start_reader(index)
            # The monitor may linger as a zombie where init reaps late, keeping tail
            # alive; once the exit code exists, the files' sizes say when to stop.
            if final_sizes is None and not events and time.monotonic() >= next_exit_check:
                exit_check_delay = min(EXIT_CHECK_SECONDS, exit_check_delay * 2)
                next_exit_check = time.monotonic() + exit_check_delay
                if transport.file_size(process.exit_code_path) is not None:
                    final_sizes = _final_sizes(transport, files)
            if final_sizes is not None:
                for index in list(streams):
                    if consumed[index] >= final_sizes[index]:
                        _drop_stream(selector, streams, index)
            if not events and streams:
                yield None
    finally:
        selector.close()
        for stream in streams.values():
            stream.close()
    if final_sizes is None:
        transport.wait_for_exit_code(process)
        final_sizes = _final_sizes(transport, files)
    for index, (path, _) in enumerate(files):
        # What the readers did not deliver (one died as the program ended, say).
        while consumed[index] < final_sizes[index]:
            wanted = min(REMAINDER_CHUNK, final_sizes[index] - consumed[index])
            try:
                chunk = transport.read_file(path, consumed[index], wanted)
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


def _has_ended(transport: Transport, process: DetachedProcess) -> bool:
    """Whether the program has ended: its exit code is there, or its monitor, which
    would write it, is gone (then the exit code is looked for once more, at the end)."""
    if transport.file_size(process.exit_code_path) is not None:
        return True
    return not transport.run_shell(f"kill -0 {int(process.monitor_pid)} 2>/dev/null").ok


def _final_sizes(transport: Transport, files: Sequence[tuple[str, int]]) -> list[int]:
    return [_size(transport, path) for path, _ in files]


def _size(transport: Transport, path: str) -> int:
    """The size of a followed output file, which must not have gone."""
    size = transport.file_size(path)
    if size is None:
        raise TransportError(
            f"The output file {path!r} on {transport.description} is gone: what the "
            "program wrote to it and was not stored yet is lost."
        )
    return size


def _drop_stream(
    selector: selectors.BaseSelector, streams: dict[int, ByteStream], index: int
) -> None:
    stream = streams.pop(index)
    selector.unregister(stream.fileno())
    stream.close()


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


def survivor_lines(output: bytes) -> list[str]:
    """The ``pid command`` lines of the processes a stop left alive."""
    lines = output.decode("utf-8", "replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def describe_survivors(survivors: Sequence[str]) -> str:
    """What a job's reason adds about the processes that survived KILL (none: nothing)."""
    if not survivors:
        return ""
    count = len(survivors)
    named = "; ".join(line[:200] for line in survivors[:SURVIVORS_NAMED])
    more = f"; and {count - SURVIVORS_NAMED} more" if count > SURVIVORS_NAMED else ""
    noun = "process" if count == 1 else "processes"
    return f" {count} {noun} survived KILL: {named}{more}."

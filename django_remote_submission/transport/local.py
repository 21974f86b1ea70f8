"""LocalTransport: the Transport contract on this host (the 2.x ``remote=False`` mode)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from django_remote_submission.exceptions import CommandTimedOut, TransportError
from django_remote_submission.transport.base import (
    CONTROL_NAME,
    ByteStream,
    CommandResult,
    RemoteFile,
    Transport,
)

CHUNK = 1024 * 1024


class _PipeStream(ByteStream):
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        assert process.stdout is not None
        self._stdout = process.stdout

    def fileno(self) -> int:
        return self._stdout.fileno()

    def read_available(self) -> bytes | None:
        return os.read(self._stdout.fileno(), CHUNK)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._stdout.close()


class LocalTransport(Transport):
    """Runs commands with ``/bin/sh`` on this host, as the worker's user.

    Anything a job runs this way runs with the worker's rights: use it for tests,
    demos and trusted single-user setups only. Relative paths start in ``workdir``,
    by default the worker user's home directory, as they start in the login directory
    over SSH.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.workdir = Path(workdir) if workdir is not None else None
        #: The commands' environment variables; None: this process's.
        self.environment = environment

    @property
    def description(self) -> str:
        return "this host"

    def _open(self) -> None:
        if self.workdir is None:
            # As over SSH, where relative paths start in the login directory.
            self.workdir = Path.home()

    def _close(self) -> None:
        pass

    def _path(self, path: str) -> Path:
        self.open()
        assert self.workdir is not None
        return self.workdir / os.path.expanduser(path)

    def _run(self, command: str, *, input: bytes | None, timeout: float | None) -> CommandResult:
        # A session of its own, so that a command that takes too long is stopped with all
        # it started: killing only the shell would leave its children running, orphaned.
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=self.workdir,
            env=self.environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(input if input is not None else b"", timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            _wait_until_gone(process.pid)
            # Not read to their end: a process that left the session may hold them open.
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            raise CommandTimedOut(f"A command on this host took longer than {timeout:g} s") from exc
        return CommandResult(process.returncode, stdout, stderr)

    def _stream(self, command: str) -> ByteStream:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=self.workdir,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        return _PipeStream(process)

    def put_fileobj(self, fileobj: IO[bytes], path: str, *, mode: int | None = None) -> int:
        target = self._path(path)
        try:
            with open(target, "wb") as stream:
                copied = _copy(fileobj, stream)
            if mode is not None:
                target.chmod(mode)
        except OSError as exc:
            raise TransportError(f"Could not write {path!r} on this host: {exc.strerror}") from exc
        return copied

    def get_fileobj(self, path: str, fileobj: IO[bytes]) -> int:
        try:
            with open(self._path(path), "rb") as stream:
                return _copy(stream, fileobj)
        except OSError as exc:
            raise TransportError(f"Could not read {path!r} on this host: {exc.strerror}") from exc

    def read_file(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(path), "rb") as stream:
                stream.seek(offset)
                return stream.read() if length is None else stream.read(length)
        except OSError as exc:
            raise TransportError(f"Could not read {path!r} on this host: {exc.strerror}") from exc

    def file_size(self, path: str) -> int | None:
        try:
            return self._path(path).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(f"Could not stat {path!r} on this host: {exc.strerror}") from exc

    def list_tree(self, path: str) -> list[RemoteFile]:
        root = self._path(path)
        owner = os.getuid()  # only this user's files, as over SSH
        found: list[RemoteFile] = []
        for directory, subdirectories, names in os.walk(root):
            if directory == str(root):
                subdirectories[:] = [d for d in subdirectories if not CONTROL_NAME.fullmatch(d)]
            for name in names:
                full = Path(directory) / name
                try:
                    info = full.lstat()
                except FileNotFoundError:
                    continue  # removed while we looked
                if full.is_file() and not full.is_symlink() and info.st_uid == owner:
                    relative = full.relative_to(root).as_posix()
                    found.append(RemoteFile(relative, info.st_size, info.st_mtime))
        return sorted(found, key=lambda f: f.path)


def _wait_until_gone(pgid: int, *, timeout: float = 10.0) -> None:
    """Waits until no process of the group ``pgid`` is left (at most ``timeout``): a
    process sent SIGKILL ends only once the kernel runs it again, which on a busy host
    may be after the call that sent it returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # a member of another user's: nothing more to wait for
            return
        time.sleep(0.01)


def _copy(source: IO[bytes], target: IO[bytes]) -> int:
    copied = 0
    while chunk := source.read(CHUNK):
        target.write(chunk)
        copied += len(chunk)
    return copied


__all__ = ["LocalTransport"]

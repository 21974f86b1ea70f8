"""Which remote files become Results, and bringing them into Django storage."""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import posixpath
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.files import File

from django_remote_submission.conf import conf
from django_remote_submission.models import Job, Result
from django_remote_submission.transport.base import CONTROL_NAME, RemoteFile, Transport

logger = logging.getLogger(__name__)

Snapshot = Mapping[str, tuple[int, float]]


def is_matching(filename: str, patterns: Sequence[str] | None = None) -> bool:
    """Whether ``filename`` passes the ``store_results`` patterns, as in 2.x.

    ``None`` matches everything; patterns are globs applied in order, a leading ``!``
    negates, and the last pattern that matches decides. A pattern matches the path
    relative to the job's directory or the bare file name.

    >>> is_matching("1.txt", ["[12].txt"])
    True
    >>> is_matching("1.txt", ["1.txt", "!*.txt"])
    False
    >>> is_matching("1.txt", ["!*.txt", "[12].txt"])
    True
    >>> is_matching("out/1.txt", ["out/*"])
    True
    >>> is_matching("out/1.txt", [])
    False
    """
    if patterns is None:
        return True
    matched = False
    name = posixpath.basename(filename)
    for pattern in patterns:
        negative = pattern.startswith("!")
        glob = pattern[1:] if negative else pattern
        if fnmatch.fnmatchcase(filename, glob) or fnmatch.fnmatchcase(name, glob):
            matched = not negative
    return matched


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[list[int | str], str]:
    """A sort key that orders names as people count: ``out_2`` before ``out_10``.
    Numbers compare as numbers, the rest without regard to case."""
    parts = _DIGITS.split(name)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)], name


def snapshot(files: Sequence[RemoteFile]) -> dict[str, tuple[int, float]]:
    return {f.path: (f.size, f.mtime) for f in files}


@dataclass(frozen=True)
class Selection:
    chosen: list[RemoteFile]
    skipped: list[tuple[RemoteFile, str]]


#: The control directories of jobs (each job's own, ``.drs-<uuid>``, the worker host's
#: followers', ``.drs-follow``, and the login's process tracker's, ``.drs-tracker``):
#: never results, whichever job shares the directory.
CONTROL_DIRECTORY = re.compile(rf"{CONTROL_NAME.pattern}/")


def select_results(
    before: Snapshot,
    after: Sequence[RemoteFile],
    *,
    patterns: Sequence[str] | None,
    exclude: Sequence[str] = (),
    max_file_size: int | None = None,
    max_total_size: int | None = None,
) -> Selection:
    """Files created or changed since ``before`` that pass the patterns and the limits.

    ``exclude`` holds relative paths left out whatever the patterns say: the program
    itself, and directories (ending in ``/``) such as the job's control directory.
    """
    chosen: list[RemoteFile] = []
    skipped: list[tuple[RemoteFile, str]] = []
    total = 0
    excluded_files = {item for item in exclude if not item.endswith("/")}
    excluded_directories = tuple(item for item in exclude if item.endswith("/"))
    for remote in after:
        if before.get(remote.path) == (remote.size, remote.mtime):
            continue
        if (
            remote.path in excluded_files
            or remote.path.startswith(excluded_directories)
            or CONTROL_DIRECTORY.match(remote.path)
        ):
            continue
        if not is_matching(remote.path, patterns):
            continue
        if max_file_size is not None and remote.size > max_file_size:
            skipped.append(
                (
                    remote,
                    f"{remote.size} bytes, over REMOTE_SUBMISSION_RESULT_MAX_FILE_SIZE "
                    f"({max_file_size})",
                )
            )
            continue
        if max_total_size is not None and total + remote.size > max_total_size:
            skipped.append(
                (
                    remote,
                    f"the job's results would pass REMOTE_SUBMISSION_RESULT_MAX_TOTAL_SIZE "
                    f"({max_total_size})",
                )
            )
            continue
        total += remote.size
        chosen.append(remote)
    return Selection(chosen, skipped)


class _DownloadedFile(File):  # type: ignore[type-arg]
    """A downloaded temporary file; FileSystemStorage moves it instead of copying."""

    def __init__(self, file: IO[bytes], path: str) -> None:
        super().__init__(file)
        self._path = path

    def temporary_file_path(self) -> str:
        return self._path


class _HashingWriter:
    """Hashes and writes downloaded chunks in a thread of its own, so that disk and
    digest work overlap with the network instead of adding to it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="drs-result-writer")
        self._thread.start()

    def _drain(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.digest.update(chunk)
                    self.target.write(chunk)
                except BaseException as exc:
                    self._error = exc

    def write(self, data: bytes) -> int:
        self._queue.put(bytes(data))
        return len(data)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def collect(
    job: Job,
    transport: Transport,
    directory: str,
    before: Snapshot,
    *,
    patterns: Sequence[str] | None,
    exclude: Sequence[str],
    report: Callable[[str], None],
) -> dict[str, int]:
    """Bring the job's new and changed files into storage; returns ``{path: result pk}``.

    A job run again updates its Result rows instead of adding new ones.
    """
    selection = select_results(
        before,
        transport.list_tree(directory),
        patterns=patterns,
        exclude=exclude,
        max_file_size=conf.RESULT_MAX_FILE_SIZE,
        max_total_size=conf.RESULT_MAX_TOTAL_SIZE,
    )
    for remote, reason in selection.skipped:
        report(f"Result {remote.path} was not collected: {reason}.")
    stored: dict[str, int] = {}
    for remote in selection.chosen:
        result = _store(job, transport, directory, remote)
        stored[remote.path] = result.pk
    return stored


def _store(job: Job, transport: Transport, directory: str, remote: RemoteFile) -> Result:
    temp_dir = getattr(settings, "FILE_UPLOAD_TEMP_DIR", None) or tempfile.gettempdir()
    handle, temp_path = tempfile.mkstemp(prefix="drs-result-", dir=temp_dir)
    try:
        with os.fdopen(handle, "wb") as temp:
            hashing = _HashingWriter(temp)
            try:
                size = transport.get_fileobj(posixpath.join(directory, remote.path), hashing)  # type: ignore[arg-type]
            finally:
                hashing.close()
        result = Result.objects.filter(job=job, remote_filename=remote.path).first()
        if result is None:
            result = Result(job=job, remote_filename=remote.path)
        elif result.local_file:
            result.local_file.delete(save=False)
        result.size = size
        result.checksum = hashing.digest.hexdigest()
        with open(temp_path, "rb") as downloaded:
            result.local_file.save(remote.path, _DownloadedFile(downloaded, temp_path), save=False)
        result.save()
        return result
    finally:
        if os.path.exists(temp_path):
            os.unlink(temp_path)


__all__: list[Any] = ["collect", "is_matching", "select_results", "snapshot"]

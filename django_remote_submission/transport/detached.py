"""The control-directory protocol of a detached program: the scripts that start it, watch
it and stop it on the server, and where they leave what they know."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from django_remote_submission.transport.shell import quote


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


def monitor_script(argv: Sequence[str], time_limit: float | None, grace: float) -> str:
    q = shlex.quote
    lines = [
        "# Written by django-remote-submission: runs one job, detached from any connection.",
        "# $1 is the absolute path of the job's control directory.",
        'ctl="$1"',
        'echo $$ > "$ctl/monitor.pid"',
        f'setsid {quote(argv)} >>"$ctl/stdout" 2>>"$ctl/stderr" </dev/null &',
        "pgid=$!",
        'echo "$pgid" > "$ctl/pgid.tmp" && mv -f "$ctl/pgid.tmp" "$ctl/pgid"',
        "watchdog=",
    ]
    if time_limit:
        ticks = max(1, int(grace / 0.1))
        watchdog = (
            'sleep "$1"; echo "$1" > "$2/timed_out"; kill -TERM -"$3" 2>/dev/null; i=0; '
            f'while kill -0 -"$3" 2>/dev/null && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); '
            'done; kill -KILL -"$3" 2>/dev/null'
        )
        lines += [
            f"setsid /bin/sh -c {q(watchdog)} watchdog {float(time_limit):g} "
            '"$ctl" "$pgid" </dev/null >/dev/null 2>&1 &',
            "watchdog=$!",
        ]
    lines += [
        'wait "$pgid"; code=$?',
        'if [ -n "$watchdog" ]; then',
        '  if [ -e "$ctl/timed_out" ]; then wait "$watchdog"; '
        'else kill -KILL -"$watchdog" 2>/dev/null; fi',
        "fi",
        'echo "$code" > "$ctl/exit_code.tmp" && mv -f "$ctl/exit_code.tmp" "$ctl/exit_code"',
    ]
    return "\n".join(lines) + "\n"

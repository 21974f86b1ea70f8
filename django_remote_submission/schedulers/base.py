"""What every scheduler shares: resources and limits, admin defaults, queue entries, endings."""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

# Errors: what can't be written safely or isn't allowed, and scheduler output that can't
# be read, raise ValueError with a message saying what to do. A parser's ValueError means
# the jobs' states are unknown (ask again), never that they finished.

#: How a job ended, whatever the scheduler.
EndingKind = Literal[
    "completed",
    "failed",
    "timeout",
    "out_of_memory",
    "node_fail",
    "canceled",
    "preempted",
    "unknown",
]

#: Where a job stands in the scheduler's queue, whatever the scheduler's own word for it.
#: ``ending`` is the scheduler cleaning up after the program: the outcome is not final yet.
QueueState = Literal["queued", "held", "running", "suspended", "ending", "ended", "unknown"]

# Names that go into a script line or a command line: partitions, queues, accounts, QOS.
# Slurm and PBS both name them with letters, digits and a few punctuation marks; anything
# else (spaces, quotes, ``$(...)``, newlines) is refused rather than escaped, because a
# refused name is an admin's typo to fix, while an escaped one is a job that never runs.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+@-]*")
# A login name as POSIX and useradd allow it.
_LOGIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# A directive's option: ``--constraint`` in ``--constraint=haswell``, ``-C`` in ``-C x``.
_LONG_OPTION = re.compile(r"--[A-Za-z][A-Za-z0-9-]*")
_SHORT_OPTION = re.compile(r"-[A-Za-z]")


@dataclass(frozen=True)
class Limits:
    """The most a job may ask for on one server; ``None`` is no limit."""

    cpus: int | None = None
    memory_mb: int | None = None
    time_limit_s: int | None = None
    gpus: int | None = None
    nodes: int | None = None


# How each resource is named in a problem: (singular, plural or unit).
_RESOURCE_WORDS = {
    "cpus": ("CPU", "CPUs"),
    "memory_mb": ("MB of memory", "MB of memory"),
    "time_limit_s": ("second of time", "seconds of time"),
    "gpus": ("GPU", "GPUs"),
    "nodes": ("node", "nodes"),
}


def _amount(name: str, value: object) -> str:
    singular, plural = _RESOURCE_WORDS[name]
    return f"{value} {singular if value == 1 else plural}"


@dataclass(frozen=True)
class Resources:
    """What one job asks for; ``None`` leaves it to the server's defaults.

    Memory and GPUs are per node, CPUs per task (one task per job), as Slurm's ``--mem``,
    ``--gres`` and ``-c`` count them.
    """

    cpus: int | None = None
    memory_mb: int | None = None
    time_limit_s: int | None = None
    gpus: int | None = None
    nodes: int | None = None

    def validate(self, limits: Limits | None = None) -> list[str]:
        """Every problem with this request, in words; an empty list when it may go."""
        limits = limits or Limits()
        problems = []
        for spec in fields(self):
            problem = _resource_problem(
                spec.name, getattr(self, spec.name), getattr(limits, spec.name)
            )
            if problem:
                problems.append(problem)
        return problems


def _resource_problem(name: str, value: object, maximum: int | None) -> str | None:
    if value is None:
        return None
    # bool is an int to Python, never to a person filling in "CPUs".
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{_RESOURCE_WORDS[name][1]} must be a whole number, not {value!r}"
    if value < 1:
        return f"{_amount(name, value)} asked: ask for at least 1, or leave it empty"
    if maximum is not None and value > maximum:
        return f"{_amount(name, value)} asked, this server allows at most {maximum}"
    return None


@dataclass(frozen=True)
class SchedulerDefaults:
    """What a server's admins set for every job sent through its scheduler.

    ``directives`` are the admins' own extra lines (``--constraint=haswell``), always
    written; ``allowed_options`` are the options a job may add directives for.
    """

    partition: str = ""
    account: str = ""
    qos: str = ""
    time_limit_s: int | None = None
    directives: tuple[str, ...] = ()
    allowed_options: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Submission:
    """One job to submit: its uuid, where its control files and batch script are, what it
    asks for, and the server's defaults. ``directives`` are the job's own extra lines."""

    job_uuid: uuid.UUID | str
    control_directory: str
    script_path: str
    resources: Resources = field(default_factory=Resources)
    defaults: SchedulerDefaults = field(default_factory=SchedulerDefaults)
    directives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ending:
    """How a job ended, as the scheduler saw it, with a message for the job's error."""

    kind: EndingKind
    message: str


@dataclass(frozen=True)
class QueueEntry:
    """One job as the scheduler's status command showed it.

    ``reason`` is why it waits, in words ("" when it doesn't); ``raw_reason`` and
    ``raw_state`` are the scheduler's own words. ``ending`` is set once the scheduler has
    ended the job and says how.
    """

    job_id: str
    name: str
    state: QueueState
    reason: str
    raw_state: str
    raw_reason: str
    ending: Ending | None = None


def job_name(job_uuid: uuid.UUID | str) -> str:
    """The scheduler's name for a job: ``drs-<uuid>``, how a retry finds a job it may
    already have submitted."""
    try:
        canonical = job_uuid if isinstance(job_uuid, uuid.UUID) else uuid.UUID(str(job_uuid))
    except ValueError:
        raise ValueError(f"a job's uuid is needed for its name, not {job_uuid!r}") from None
    return f"drs-{canonical}"


def checked_name(what: str, value: str) -> str:
    """``value`` if it is a plain scheduler name (partition, account ...); refuses it
    otherwise, saying what is wrong."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"the {what} {value!r} can't be used: use letters, digits and . _ + @ - only"
        )
    return value


def checked_login(value: str) -> str:
    """``value`` if it is a login name a scheduler could be asked about."""
    if not _LOGIN.fullmatch(value):
        raise ValueError(f"{value!r} is not a login name")
    return value


def _has_control_character(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def directive_option(directive: str) -> str:
    """The option a directive sets: ``--constraint`` for ``--constraint=haswell`` or
    ``--constraint haswell``, ``-C`` for ``-C haswell`` or ``-Chaswell``."""
    if _has_control_character(directive):
        # A newline would end the directive's script line and start a line of shell.
        raise ValueError(
            f"the directive {directive!r} holds a newline or another control character"
        )
    text = directive.strip()
    long_option = _LONG_OPTION.match(text)
    if long_option and (len(text) == long_option.end() or text[long_option.end()] in "= "):
        return long_option.group()
    short_option = _SHORT_OPTION.match(text)
    if short_option and not text.startswith("--"):
        return short_option.group()
    raise ValueError(
        f"the directive {directive!r} doesn't start with an option (--name=value or -x value)"
    )


def _is_reserved(option: str, reserved: frozenset[str]) -> bool:
    if option in reserved:
        return True
    # getopt_long takes any unambiguous prefix of a long option: --out is --output.
    return option.startswith("--") and any(
        name.startswith(option) for name in reserved if name.startswith("--")
    )


def checked_directives(
    directives: Iterable[str],
    *,
    allowed: frozenset[str] | None,
    reserved: frozenset[str],
    reserved_words: str,
) -> list[str]:
    """The directives, stripped, if each may be written; refuses the first that may not.

    ``allowed`` is the admins' allowlist of options (``None``: any option, for the
    admins' own directives); ``reserved`` are the options this app writes itself, which
    nobody may change (the job's name, output files, time, requeue ...).
    """
    checked = []
    for directive in directives:
        option = directive_option(directive)
        if _is_reserved(option, reserved):
            raise ValueError(
                f"the directive {directive!r} sets {option}, which this app sets itself "
                f"({reserved_words})"
            )
        if allowed is not None and option not in allowed:
            permitted = ", ".join(sorted(allowed)) or "none"
            raise ValueError(
                f"the directive {directive!r} sets {option}, which this server does not "
                f"allow (allowed: {permitted})"
            )
        checked.append(directive.strip())
    return checked


def checked_resources(resources: Resources) -> Resources:
    """``resources`` if each value is a positive whole number; the server's maxima are
    checked before, by ``Resources.validate``."""
    problems = resources.validate()
    if problems:
        raise ValueError("; ".join(problems))
    return resources


def time_limit(submission: Submission) -> int | None:
    """The job's time limit in seconds: its own, else the server's default."""
    if submission.resources.time_limit_s is not None:
        return submission.resources.time_limit_s
    default = submission.defaults.time_limit_s
    problem = _resource_problem("time_limit_s", default, None)
    if problem:
        raise ValueError(f"the server's default time limit is wrong: {problem}")
    return default


def signal_words(number: int) -> str:
    """``"signal 15 (SIGTERM)"``: a signal as a person reads it (Linux numbering)."""
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def non_empty_lines(output: str) -> Sequence[str]:
    """The lines of a command's output that hold something."""
    return [line for line in output.splitlines() if line.strip()]

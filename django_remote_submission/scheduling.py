"""Jobs of servers that launch through a batch scheduler: the server's settings and a job's
resources as the pure ``schedulers`` package takes them, the submission itself, and one
status queue per (server, login) in each process."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_remote_submission.exceptions import TransportError
from django_remote_submission.schedulers import pbs, slurm
from django_remote_submission.schedulers.base import (
    Ending,
    Limits,
    Resources,
    SchedulerDefaults,
    Submission,
)
from django_remote_submission.schedulers.poll import PbsQueue, SchedulerQueue, SlurmQueue

if TYPE_CHECKING:
    from django_remote_submission.models import Job, Server
    from django_remote_submission.transport import Transport

#: The keys of ``Job.resources``, and the type of each value.
RESOURCE_KEYS = ("cpus", "memory_mb", "time_limit_s", "gpus", "nodes")
DIRECTIVES_KEY = "directives"


@dataclass(frozen=True)
class Kind:
    """What differs between schedulers, for the engine."""

    name: str
    batch_header: Any
    submit_shell: str
    parse_submit: Any
    cancel_command: Any
    queue_class: type[SchedulerQueue]


KINDS: dict[str, Kind] = {
    "slurm": Kind(
        "Slurm",
        slurm.batch_header,
        slurm.SUBMIT_SHELL,
        slurm.parse_sbatch,
        slurm.scancel_command,
        SlurmQueue,
    ),
    "pbs": Kind(
        "PBS",
        pbs.batch_header,
        pbs.SUBMIT_SHELL,
        pbs.parse_qsub,
        pbs.qdel_command,
        PbsQueue,
    ),
}


def kind_of(server: Server) -> Kind | None:
    """The server's scheduler; None for a server that launches directly."""
    return KINDS.get(server.scheduler)


def is_scheduled(job: Job) -> bool:
    return job.server.scheduler in KINDS


def defaults_of(server: Server) -> SchedulerDefaults:
    minutes = server.scheduler_time_limit
    return SchedulerDefaults(
        partition=server.scheduler_partition.strip(),
        account=server.scheduler_account.strip(),
        qos=server.scheduler_qos.strip(),
        time_limit_s=minutes * 60 if minutes else None,
        directives=tuple(
            line.strip() for line in server.scheduler_directives.splitlines() if line.strip()
        ),
        allowed_options=frozenset(
            word for word in re.split(r"[\s,]+", server.scheduler_allowed_options) if word
        ),
    )


def limits_of(server: Server) -> Limits:
    most_minutes = server.max_time_limit
    return Limits(
        cpus=server.max_cpus,
        memory_mb=server.max_memory_mb,
        time_limit_s=most_minutes * 60 if most_minutes else None,
        gpus=server.max_gpus,
        nodes=server.max_nodes,
    )


def resources_of(
    requested: Mapping[str, Any] | None, timeout: float | None = None
) -> tuple[Resources, tuple[str, ...]]:
    """A job's ``resources`` as the scheduler package takes them, and its own directives.
    A timeout (2.x's run option) is the time limit, unless the job asks for a shorter one.
    Raises ValueError for what can't be read; ``resource_problems`` says it in full."""
    requested = dict(requested or {})
    values = {key: requested.get(key) for key in RESOURCE_KEYS}
    if timeout is not None:
        seconds = int(-(-float(timeout) // 1))  # rounded up
        current = values["time_limit_s"]
        if not isinstance(current, int) or isinstance(current, bool) or current > seconds:
            values["time_limit_s"] = seconds
    directives = requested.get(DIRECTIVES_KEY) or []
    if not isinstance(directives, list) or not all(isinstance(d, str) for d in directives):
        raise ValueError('directives must be a list of strings, e.g. ["--constraint=haswell"]')
    return Resources(**values), tuple(directives)


def resource_problems(server: Server, requested: Any, timeout: float | None = None) -> list[str]:
    """Every problem with what a job asks of ``server``, in words; empty when it may go.
    Checked before submission (API, admin, task): never a scheduler's refusal later."""
    if requested in (None, {}) and timeout is None:
        return []
    if not isinstance(requested, dict):
        return ['Resources must be an object, e.g. {"cpus": 4, "memory_mb": 2000}.']
    unknown = sorted(set(requested) - {*RESOURCE_KEYS, DIRECTIVES_KEY})
    problems = []
    if unknown:
        known = ", ".join([*RESOURCE_KEYS, DIRECTIVES_KEY])
        problems.append(f"Unknown resources: {', '.join(unknown)} (known: {known}).")
    kind = kind_of(server)
    if kind is None:
        if requested:
            problems.append(
                "This server runs jobs directly, not through a batch scheduler: it takes "
                "no resources."
            )
        return problems
    try:
        resources, directives = resources_of(requested, timeout)
    except ValueError as exc:
        return [*problems, _sentence(str(exc))]
    problems += [_sentence(p) for p in resources.validate(limits_of(server))]
    if problems:
        return problems
    try:
        _trial_header(kind, defaults_of(server), resources, directives)
    except ValueError as exc:
        problems.append(_sentence(str(exc)))
    return problems


#: The uuid of the header written only to see whether it can be.
_TRIAL_UUID = "00000000-0000-0000-0000-000000000000"


def _trial_header(
    kind: Kind,
    defaults: SchedulerDefaults,
    resources: Resources | None = None,
    directives: tuple[str, ...] = (),
) -> None:
    """Writes a batch header of these settings, for its ValueError if it can't be."""
    kind.batch_header(
        Submission(
            job_uuid=_TRIAL_UUID,
            control_directory="/",
            script_path="/batch.sh",
            resources=resources or Resources(),
            defaults=defaults,
            directives=directives,
        )
    )


def _sentence(problem: str) -> str:
    """A problem of the scheduler package's ("the partition ... can't be used") as a
    sentence of a form's error list."""
    return f"{problem[:1].upper()}{problem[1:]}."


def server_problems(server: Server) -> dict[str, list[str]]:
    """What is wrong with a server's scheduler settings, by field (its admin form)."""
    kind = kind_of(server)
    if kind is None:
        return {}
    try:
        _trial_header(kind, defaults_of(server))
    except ValueError as exc:
        text = _sentence(str(exc))
        field = "scheduler_directives"
        for name, word in (
            ("scheduler_partition", "partition"),
            ("scheduler_partition", "queue"),
            ("scheduler_account", "account"),
            ("scheduler_qos", "QOS"),
        ):
            if f"the {word} " in str(exc) or f"no {word}" in str(exc):
                field = name
                break
        return {field: [text]}
    return {}


def header_for(job: Job, control: str, script: str, timeout: float | None) -> str:
    """The ``#SBATCH``/``#PBS`` lines of the job's batch script."""
    kind = kind_of(job.server)
    assert kind is not None
    resources, directives = resources_of(job.resources, timeout)
    return str(
        kind.batch_header(
            Submission(
                job_uuid=job.uuid,
                control_directory=control,
                script_path=script,
                resources=resources,
                defaults=defaults_of(job.server),
                directives=directives,
            )
        )
    )


# One queue per (server, login) in a process -------------------------------------------

_queues: dict[tuple[int, str], SchedulerQueue] = {}
_queues_lock = threading.Lock()


def queue_for(server: Server, login: str) -> SchedulerQueue:
    """This process's status queue of the login on the server: every job of the login
    followed here shares its status calls."""
    kind = kind_of(server)
    assert kind is not None
    key = (server.pk, login)
    with _queues_lock:
        queue = _queues.get(key)
        interval = max(1.0, float(server.scheduler_poll_interval or 10.0))
        if queue is None or not isinstance(queue, kind.queue_class):
            queue = _queues[key] = kind.queue_class(min_interval=interval)
        queue.min_interval = interval
        return queue


def cancel(job: Job, transport: Transport) -> str:
    """Ask the scheduler to end the job's whole allocation, pending or running; what it
    said when it refused ("" when it took the request)."""
    kind = kind_of(job.server)
    assert kind is not None
    assert job.scheduler_job_id
    result = transport.run(kind.cancel_command(job.scheduler_job_id), timeout=60)
    return "" if result.ok else result.reason()


#: Bytes read from the end of Slurm's messages about a job.
MESSAGES_TAIL = 4096


def with_messages(job: Job, transport: Transport, control: str, ending: Ending) -> Ending:
    """``ending`` made plain by what the scheduler wrote about the job into its control
    directory (Slurm's ``slurm.err``): a job killed for its memory, say."""
    if job.server.scheduler != "slurm":
        return ending
    path = f"{control}/{slurm.MESSAGES_FILE}"
    try:
        size = transport.file_size(path)
        if not size:
            return ending
        text = transport.read_file(path, max(0, size - MESSAGES_TAIL)).decode("utf-8", "replace")
    except TransportError:
        return ending
    memory = (job.resources or {}).get("memory_mb")
    shown = f"{memory} MB" if isinstance(memory, int) and not isinstance(memory, bool) else ""
    return slurm.ending_from_messages(ending, text, shown)


def ending_words(ending: Ending, canceled: bool) -> str:
    if canceled:
        return "Canceled at the request of a user."
    if ending.kind == "completed":
        return (
            "The job's batch script ended without recording the program's exit code "
            "(was the job's directory on a file system the node shares?)."
        )
    return ending.message or (
        "The job left the scheduler's queue without an exit code, and the scheduler "
        "could not say how it ended."
    )

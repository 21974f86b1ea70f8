"""PBS Professional / OpenPBS: qsub, qstat, qselect, qdel command lines, ``#PBS`` headers, output.

Sources (OpenPBS, github.com/openpbs/openpbs): ``doc/man1/qstat.1B`` for ``qstat -f -F
json`` (a ``timestamp``, ``pbs_version`` and ``pbs_server``, then ``Jobs`` keyed by job
id; ``job_state`` letters; ``-x`` for finished jobs); ``src/include/job.h`` for the
negative ``Exit_status`` values (``JOB_EXEC_KILL_WALLTIME`` -29, ``JOB_EXEC_KILL_MEM``
-27 ...). An exit status of 0-255 is the batch script's own, and 256 + N says signal N
ended the script (the MoM stores ``WTERMSIG(status) + 0x100``; PBS Professional Reference
Guide, "Job Exit Status").
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence

from django_remote_submission.schedulers.base import (
    Ending,
    EndingKind,
    QueueEntry,
    QueueState,
    Submission,
    checked_directives,
    checked_login,
    checked_name,
    checked_resources,
    job_name,
    non_empty_lines,
    signal_words,
    time_limit,
)
from django_remote_submission.transport.shell import remote_path

__all__ = [
    "SUBMIT_SHELL",
    "batch_header",
    "ending_of",
    "job_name",
    "parse_qselect",
    "parse_qstat_json",
    "parse_qsub",
    "qdel_command",
    "qselect_command",
    "qstat_command",
    "qsub_command",
    "reason_in_words",
]

# The options this app writes itself (see slurm.RESERVED_OPTIONS for why), and -J (an
# array would run the script many times) and -j (joins the two outputs it keeps apart).
RESERVED_OPTIONS = frozenset({"-N", "-q", "-A", "-o", "-e", "-j", "-r", "-J"})
# The resources of ``-l`` this app writes itself.
RESERVED_RESOURCES = frozenset({"walltime", "select", "ncpus", "mem", "ngpus", "nodes", "nodect"})
_RESERVED_WORDS = "name, queue, account, output, rerun"

# A job id as qsub prints it and qstat keys it: 123.server, 123[].server (array).
_JOB_ID = re.compile(r"\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.-]+)?")

# Special negative Exit_status values, OpenPBS src/include/job.h (JOB_EXEC_*).
_EXEC_FAILURES: dict[int, tuple[EndingKind, str]] = {
    -1: ("failed", "PBS could not start it (JOB_EXEC_FAIL1)"),
    -2: ("failed", "PBS could not start it (JOB_EXEC_FAIL2)"),
    -3: ("failed", "PBS could not start it and would retry it (JOB_EXEC_RETRY)"),
    -4: ("node_fail", "its node's MoM restarted (JOB_EXEC_INITABT)"),
    -5: ("node_fail", "its node's MoM restarted (JOB_EXEC_INITRST)"),
    -6: ("node_fail", "its node's MoM restarted (JOB_EXEC_INITRMG)"),
    -7: ("failed", "it could not be restarted (JOB_EXEC_BADRESRT)"),
    -10: ("failed", "its user or group is not valid on the node (JOB_EXEC_FAILUID)"),
    -11: ("failed", "it was rerun (JOB_EXEC_RERUN)"),
    -12: ("preempted", "it was checkpointed and stopped (JOB_EXEC_CHKP)"),
    -13: ("failed", "its password was refused (JOB_EXEC_FAIL_PASSWORD)"),
    -14: ("node_fail", "a node it ran on stopped answering (JOB_EXEC_RERUN_SIS_FAIL)"),
    -15: ("failed", "it was requeued to restart from a checkpoint (JOB_EXEC_QUERST)"),
    -16: ("failed", "a hook refused to run it (JOB_EXEC_FAILHOOK_RERUN)"),
    -17: ("failed", "a hook refused to run it (JOB_EXEC_FAILHOOK_DELETE)"),
    -18: ("failed", "a hook requeued it (JOB_EXEC_HOOK_RERUN)"),
    -19: ("failed", "a hook deleted it (JOB_EXEC_HOOK_DELETE)"),
    -20: ("node_fail", "its first node stopped answering (JOB_EXEC_RERUN_MS_FAIL)"),
    -21: ("failed", "PBS found its directory insecure (JOB_EXEC_FAIL_SECURITY)"),
    -22: ("failed", "a hook failed or timed out (JOB_EXEC_HOOKERROR)"),
    -23: ("failed", "no Kerberos credentials were given (JOB_EXEC_FAIL_KRB5)"),
    -24: ("failed", "it used more CPUs than it asked for (JOB_EXEC_KILL_NCPUS_BURST)"),
    -25: ("failed", "it used more CPUs than it asked for (JOB_EXEC_KILL_NCPUS_SUM)"),
    -26: ("out_of_memory", "it used more virtual memory than it asked for (JOB_EXEC_KILL_VMEM)"),
    -27: ("out_of_memory", "it used more memory than it asked for (JOB_EXEC_KILL_MEM)"),
    -28: ("timeout", "its CPU time limit was reached (JOB_EXEC_KILL_CPUT)"),
    -29: ("timeout", "its time limit was reached (JOB_EXEC_KILL_WALLTIME)"),
    -30: ("node_fail", "its nodes could not be joined (JOB_EXEC_JOINJOB)"),
}
# The MoM reports a job whose top process a signal ended as 256 + the signal.
_SIGNAL_BASE = 256

_STATES: dict[str, QueueState] = {
    "Q": "queued",
    "W": "queued",
    "T": "queued",
    "H": "held",
    "R": "running",
    "B": "running",
    "S": "suspended",
    "U": "suspended",
    "E": "ending",
    "F": "ended",
    "X": "ended",
}

# Hold_Types letters (pbs_job_attributes(7B)).
_HOLDS = {
    "u": "held by its owner (qrls releases it)",
    "o": "held by an operator",
    "s": "held by PBS",
    "p": "held: its password is missing or wrong",
}


def batch_header(submission: Submission) -> str:
    """The ``#PBS`` lines of the job's batch script, each ending with a newline.

    Resources are per node, as with Slurm: one chunk a node (``select=N:ncpus=C:mem=Mmb
    :ngpus=G``), each on its own host (``place=scatter``) when more than one. PBS has no
    QOS: a server with one is refused rather than quietly ignored.
    """
    resources = checked_resources(submission.resources)
    defaults = submission.defaults
    if defaults.qos:
        raise ValueError(f"PBS has no QOS: leave the server's QOS ({defaults.qos!r}) empty")
    lines = [f"-N {job_name(submission.job_uuid)}"]
    if defaults.partition:
        lines.append(f"-q {checked_name('queue', defaults.partition)}")
    if defaults.account:
        lines.append(f"-A {checked_name('account', defaults.account)}")
    seconds = time_limit(submission)
    if seconds is not None:
        lines.append(f"-l walltime={pbs_time(seconds)}")
    chunk = [
        f"{name}={value}{unit}"
        for name, value, unit in (
            ("ncpus", resources.cpus, ""),
            ("mem", resources.memory_mb, "mb"),
            ("ngpus", resources.gpus, ""),
        )
        if value is not None
    ]
    if chunk or resources.nodes is not None:
        lines.append(f"-l select={':'.join([str(resources.nodes or 1), *chunk])}")
    extra = _checked_directives(defaults.directives, allowed=None)
    extra += _checked_directives(submission.directives, allowed=defaults.allowed_options)
    # A placement the admins or the job chose (place=excl ...) replaces the app's.
    if resources.nodes is not None and resources.nodes > 1 and not _sets_placement(extra):
        lines.append("-l place=scatter")
    lines += ["-o /dev/null", "-e /dev/null", "-r n", *extra]
    return "".join(f"#PBS {line}\n" for line in lines)


def _sets_placement(directives: Sequence[str]) -> bool:
    return any("place" in _resource_names(directive) for directive in directives)


def _resource_names(directive: str) -> list[str]:
    if not directive.startswith("-l"):
        return []
    return [part.partition("=")[0].strip() for part in directive[2:].strip().split(",")]


def _checked_directives(directives: Sequence[str], allowed: frozenset[str] | None) -> list[str]:
    checked = checked_directives(
        directives, allowed=allowed, reserved=RESERVED_OPTIONS, reserved_words=_RESERVED_WORDS
    )
    for directive in checked:
        for name in _resource_names(directive):
            if name in RESERVED_RESOURCES:
                raise ValueError(
                    f"the directive {directive!r} sets the resource {name}, which this "
                    "app sets itself (time, CPUs, memory, GPUs, nodes)"
                )
    return checked


def pbs_time(seconds: int) -> str:
    """``seconds`` as PBS's ``HH:MM:SS`` (hours may pass 24)."""
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _seconds(text: object) -> int | None:
    parts = str(text).split(":")
    if not all(part.isdigit() for part in parts) or not 1 <= len(parts) <= 3:
        return None
    total = 0
    for part in parts:
        total = total * 60 + int(part)
    return total


#: The shell text that submits a job's batch script from its launch (see
#: ``transport.detached.submit``): qsub passes a script no arguments, so it is submitted
#: from the control directory, which the script finds as ``$PBS_O_WORKDIR``.
SUBMIT_SHELL = '(cd "$ctl" && qsub batch.sh)'


def qsub_command(script_path: str) -> list[str]:
    """``qsub <script>``: submits the script, prints the job id."""
    return ["qsub", remote_path(script_path)]


def parse_qsub(output: str) -> str:
    """The job id qsub printed (``1234.server``)."""
    lines = non_empty_lines(output)
    job_id = lines[0].strip() if len(lines) == 1 else ""
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(
            f"qsub did not print a job id (expected '1234.server'): {output!r}; the job "
            "may or may not be queued: look it up by name before submitting again"
        )
    return job_id


def qstat_command(job_ids: Sequence[str]) -> list[str]:
    """One ``qstat -f -F json -x`` for the given jobs, finished ones included.

    PBS's ``-u`` can't be combined with ``-f``, and ``qstat -f`` without ids lists every
    user's jobs; the engine knows its jobs' ids, so it names them. qstat exits non-zero if
    one of them is unknown (its history expired) and still prints the others.
    """
    if not job_ids:
        raise ValueError("qstat needs at least one job id")
    return ["qstat", "-f", "-F", "json", "-x", *(_checked_job_id(job_id) for job_id in job_ids)]


def qselect_command(job_uuid: uuid.UUID | str, user: str | None = None) -> list[str]:
    """``qselect -x -N drs-<uuid>``: the ids of the job's submissions, finished ones
    included, for a retry after a qsub that timed out."""
    who = [] if user is None else ["-u", checked_login(user)]
    return ["qselect", "-x", *who, "-N", job_name(job_uuid)]


def parse_qselect(output: str) -> list[str]:
    """The job ids qselect printed, one a line."""
    ids = [line.strip() for line in non_empty_lines(output)]
    for job_id in ids:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"qselect printed something that is not a job id: {job_id!r}")
    return ids


def parse_qstat_json(output: str) -> dict[str, QueueEntry]:
    """The jobs of ``qstat -f -F json``, by job id.

    Anything that isn't that JSON document is unreadable: the jobs' states are unknown,
    never finished. A job missing from it is not finished either.
    """
    document = _json_document(output)
    jobs = document.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise ValueError("qstat's JSON has a 'Jobs' that is not an object")
    entries = {}
    for job_id, job in jobs.items():
        if not isinstance(job, dict) or not isinstance(job.get("job_state"), str):
            raise ValueError(f"qstat's JSON has no job_state for job {job_id!r}")
        entries[job_id] = _entry(job_id, job)
    return entries


def _json_document(output: str) -> dict[str, object]:
    try:
        # strict=False: some PBS versions leave control characters unescaped in values
        # (a job's environment, its submit arguments).
        document = json.loads(output, strict=False)
    except ValueError:
        raise ValueError(f"qstat did not print JSON: {output[:200]!r}") from None
    if not isinstance(document, dict) or "pbs_version" not in document:
        raise ValueError(f"qstat printed JSON that is not a job listing: {output[:200]!r}")
    return document


def _entry(job_id: str, job: Mapping[str, object]) -> QueueEntry:
    raw_state = str(job["job_state"])
    state = _STATES.get(raw_state, "unknown")
    comment = str(job.get("comment", ""))
    return QueueEntry(
        job_id=job_id,
        name=str(job.get("Job_Name", "")),
        state=state,
        reason=_waiting_reason(state, job) if state in ("queued", "held") else "",
        raw_state=raw_state,
        raw_reason=comment,
        ending=ending_of(job) if state == "ended" else None,
    )


def _waiting_reason(state: QueueState, job: Mapping[str, object]) -> str:
    comment = str(job.get("comment", ""))
    if state == "held":
        holds = [_HOLDS[letter] for letter in str(job.get("Hold_Types", "")) if letter in _HOLDS]
        if holds and not comment:
            return "; ".join(holds)
    if job.get("job_state") == "W" and not comment:
        return "waiting for its start time"
    return reason_in_words(comment)


def reason_in_words(comment: str) -> str:
    """Why PBS keeps a job waiting, from the scheduler's ``comment``; shown as PBS wrote
    it when this doesn't know its shape."""
    text = comment.strip()
    lowered = text.lower()
    if not text:
        return "waiting for the scheduler to look at it"
    if lowered.startswith("can never run"):
        return "can never start: " + text.partition(":")[2].strip()
    detail = text.partition(":")[2].strip() if lowered.startswith("not running") else text
    lowered_detail = detail.lower()
    if "insufficient amount of" in lowered_detail:
        return f"waiting for free resources ({detail})"
    if "limit" in lowered_detail:
        return f"waiting: a limit is reached ({detail})"
    if "held" in lowered_detail:
        return f"held ({detail})"
    return detail


def ending_of(job: Mapping[str, object]) -> Ending:
    """How PBS ended the job, from its ``job_state`` and ``Exit_status`` (a job of
    ``parse_qstat_json``'s document)."""
    raw_state = str(job.get("job_state", ""))
    ended = "PBS ended the job: "
    if _STATES.get(raw_state) != "ended":
        shown = raw_state or "nothing"
        return Ending("unknown", f"PBS shows the job's state as {shown}: it has not ended yet.")
    status = _integer(job.get("Exit_status"))
    if status is None:
        if "stime" not in job:
            return Ending("canceled", f"{ended}it was deleted (qdel) before it started.")
        return Ending("unknown", "PBS gave the job no exit status: ask again.")
    if status == 0:
        return Ending("completed", "PBS reports the job completed.")
    if status < 0:
        kind, words = _EXEC_FAILURES.get(status, ("failed", f"exit status {status}"))
        return Ending(kind, f"{ended}{words}.")
    if status < _SIGNAL_BASE:
        return Ending("failed", f"{ended}its batch script exited with code {status}.")
    return _signaled(job, status - _SIGNAL_BASE)


def _signaled(job: Mapping[str, object], number: int) -> Ending:
    killed = f"PBS ended the job: it was killed by {signal_words(number)}"
    # Older PBS versions kill a job over its walltime with a signal (271) rather than
    # JOB_EXEC_KILL_WALLTIME: the time it used tells.
    used = _resource(job, "resources_used", "walltime")
    limit = _resource(job, "Resource_List", "walltime")
    if used is not None and limit is not None and used >= limit:
        return Ending("timeout", f"{killed}: its time limit ({pbs_time(limit)}) was reached.")
    # qdel sends SIGTERM, then SIGKILL after the kill delay; the system's out-of-memory
    # killer sends SIGKILL too, so only SIGTERM is taken as a deletion.
    if number == 15:
        return Ending("canceled", f"{killed}, as qdel does: it was deleted.")
    if number == 9:
        return Ending(
            "failed", f"{killed}: deleted (qdel), or killed by the system (out of memory?)."
        )
    return Ending("failed", f"{killed}.")


def _resource(job: Mapping[str, object], group: str, name: str) -> int | None:
    resources = job.get(group)
    if not isinstance(resources, dict):
        return None
    return _seconds(resources.get(name, ""))


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip() if value is not None else ""
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def qdel_command(job_id: str) -> list[str]:
    """``qdel <id>``: deletes the job, queued or running."""
    return ["qdel", _checked_job_id(job_id)]


def _checked_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"{job_id!r} is not a PBS job id")
    return job_id

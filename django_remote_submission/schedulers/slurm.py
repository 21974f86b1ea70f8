"""Slurm: sbatch, squeue, scontrol and scancel command lines, ``#SBATCH`` headers, their output.

The formats are those of the Slurm man pages (sbatch, squeue, scontrol; Slurm 22.05,
Debian 12). ``--me`` needs Slurm 20.11 or later; give ``squeue_command`` a login for older
ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from django_remote_submission.schedulers.base import (
    Ending,
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
    "batch_header",
    "ending_of",
    "job_name",
    "parse_sbatch",
    "parse_scontrol_job",
    "parse_squeue",
    "reason_in_words",
    "sbatch_command",
    "scancel_command",
    "scontrol_show_job_command",
    "squeue_command",
]

# The options this app writes itself: the job's name finds it again after a retry, its
# output goes to the control directory, its time limit is the job's timeout, and a
# requeued job would repeat lines the log has already stored.
RESERVED_OPTIONS = frozenset(
    {
        "--job-name",
        "-J",
        "--partition",
        "-p",
        "--account",
        "-A",
        "--qos",
        "-q",
        "--time",
        "-t",
        "--cpus-per-task",
        "-c",
        "--mem",
        "--mem-per-cpu",
        "--mem-per-gpu",
        "--gres",
        "--gpus",
        "-G",
        "--nodes",
        "-N",
        "--output",
        "-o",
        "--error",
        "-e",
        "--input",
        "-i",
        "--requeue",
        "--no-requeue",
        "--array",
        "-a",
        "--wrap",
        "--parsable",
    }
)
_RESERVED_WORDS = "name, partition, account, QOS, time, CPUs, memory, GPUs, nodes, output, requeue"

# squeue's fields, in order: job id, name, state, reason. The name is the user's and may
# hold the separator; the other three never do.
SQUEUE_FORMAT = "%i|%j|%T|%r"

# A job id as squeue and scontrol print it: 123, 123_4 or 123_[1-3] (array), 123+0 (het).
_JOB_ID = re.compile(r"\d+(?:_\d+|_\[[\d,%\-]+\]|\+\d+)?")
# sbatch --parsable prints "id" or "id;cluster".
_SBATCH_OUTPUT = re.compile(r"(\d+)(?:;[A-Za-z0-9_.-]+)?")
# A "Key=" of scontrol's one-line output: at the start, or after whitespace, a capital
# letter then letters, digits, _ / : (``Socks/Node=``, ``NtasksPerN:B:S:C=``).
_SCONTROL_KEY = re.compile(r"(?:^|(?<=\s))([A-Z][A-Za-z0-9_/:]*)=")
_EXIT_CODE = re.compile(r"(\d+):(\d+)")

_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_FED", "CONFIGURING", "POWER_UP_NODE"}
_HELD = {"REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
_RUNNING = {"RUNNING", "RESIZING", "SIGNALING"}
_SUSPENDED = {"SUSPENDED", "STOPPED"}
_ENDING = {"COMPLETING", "STAGE_OUT"}
_ENDED = {
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "PREEMPTED",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "REVOKED",
}
_STATES: tuple[tuple[QueueState, set[str]], ...] = (
    ("queued", _QUEUED),
    ("held", _HELD),
    ("running", _RUNNING),
    ("suspended", _SUSPENDED),
    ("ending", _ENDING),
    ("ended", _ENDED),
)

# Why a job waits, in words; squeue(1) "JOB REASON CODES". The ones not here are shown
# as Slurm writes them.
REASONS = {
    "None": "waiting for the scheduler to look at it",
    "Priority": "waiting for a higher-priority job",
    "Resources": "waiting for free CPUs or memory",
    "Dependency": "waiting for the jobs it depends on",
    "DependencyNeverSatisfied": "can never start: a job it depends on did not end as required",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by its owner (scontrol release lets it go)",
    "JobHeldAdmin": "held by an administrator",
    "launch failed requeued held": "held after its launch failed: an administrator must release it",
    "PartitionTimeLimit": "can't start: its time limit is longer than the partition allows",
    "PartitionNodeLimit": "can't start: it asks for more nodes than the partition allows",
    "PartitionDown": "waiting: the partition is down",
    "PartitionInactive": "waiting: the partition is inactive",
    "PartitionConfig": "can't start: the partition can't give what it asks for",
    "QOSMaxWallDurationPerJobLimit": "can't start: its time limit is longer than its QOS allows",
    "QOSMaxJobsPerUserLimit": "waiting: you already run as many jobs as your QOS allows",
    "QOSMaxSubmitJobPerUserLimit": "waiting: you already have as many jobs as your QOS allows",
    "AssocGrpCPULimit": "waiting: your account's group already uses all the CPUs it may",
    "AssocGrpMemLimit": "waiting: your account's group already uses all the memory it may",
    "AssocGrpJobsLimit": "waiting: your account's group already runs all the jobs it may",
    "AssocMaxJobsLimit": "waiting: you already run as many jobs as your account allows",
    "ReqNodeNotAvail": "waiting: a node it needs is down, drained or reserved",
    "NodeDown": "waiting: a node it needs is down",
    "Reservation": "waiting for its reservation to start",
    "Licenses": "waiting for a license",
    "InvalidAccount": "can never start: its account is not valid",
    "InvalidQOS": "can never start: its QOS is not valid",
    "AccountNotAllowed": "can never start: its account may not use this partition",
    "QOSNotAllowed": "can never start: its QOS may not use this partition",
    "BadConstraints": "can never start: no node meets its constraints",
    "Cleaning": "waiting: its previous run is still being cleaned up",
    "Prolog": "starting: the prolog is running",
    "JobArrayTaskLimit": "waiting: its array already runs as many tasks as it may",
    "FrontEndDown": "waiting: no front end node is up",
}


def batch_header(submission: Submission) -> str:
    """The ``#SBATCH`` lines of the job's batch script, each ending with a newline.

    They go right after the script's ``#!`` line: sbatch stops reading directives at the
    first line of shell. Every value is checked: names allow no spaces or quotes, and no
    directive may hold a newline, which would end its comment line and start one of shell.
    The script writes the program's output into the control directory itself, so the
    script's own output goes to ``/dev/null``.
    """
    resources = checked_resources(submission.resources)
    defaults = submission.defaults
    lines = [f"--job-name={job_name(submission.job_uuid)}"]
    if defaults.partition:
        lines.append(f"--partition={checked_name('partition', defaults.partition)}")
    if defaults.account:
        lines.append(f"--account={checked_name('account', defaults.account)}")
    if defaults.qos:
        lines.append(f"--qos={checked_name('QOS', defaults.qos)}")
    seconds = time_limit(submission)
    if seconds is not None:
        lines.append(f"--time={slurm_time(seconds)}")
    if resources.cpus is not None:
        lines.append(f"--cpus-per-task={resources.cpus}")
    if resources.memory_mb is not None:
        lines.append(f"--mem={resources.memory_mb}M")
    if resources.gpus is not None:
        lines.append(f"--gres=gpu:{resources.gpus}")
    if resources.nodes is not None:
        lines.append(f"--nodes={resources.nodes}")
    # The program's output goes to the control directory by the script itself; what
    # Slurm itself says of the job (its memory limit exceeded, its time limit reached)
    # goes there too, to MESSAGES_FILE: sbatch runs in the control directory (see
    # SUBMIT_SHELL), the job's working directory for Slurm, so a relative name is enough.
    lines += [
        "--output=/dev/null",
        f"--error={MESSAGES_FILE}",
        "--no-requeue",
    ]
    lines += checked_directives(
        defaults.directives, allowed=None, reserved=RESERVED_OPTIONS, reserved_words=_RESERVED_WORDS
    )
    lines += checked_directives(
        submission.directives,
        allowed=defaults.allowed_options,
        reserved=RESERVED_OPTIONS,
        reserved_words=_RESERVED_WORDS,
    )
    return "".join(f"#SBATCH {line}\n" for line in lines)


def slurm_time(seconds: int) -> str:
    """``seconds`` as Slurm's ``D-HH:MM:SS``, rounded up to whole minutes: Slurm keeps
    time limits in minutes, so the limit written is the limit applied, never less than
    the job's timeout."""
    minutes = math.ceil(seconds / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:00"


#: The shell text that submits a job's batch script from its launch (see
#: ``transport.detached.submit``): from the control directory, Slurm's working directory
#: for the job (its ``--error`` file is there; the script enters the job's own directory
#: itself), and the script gets the control directory as ``$1``.
SUBMIT_SHELL = '(cd "$ctl" && sbatch --parsable batch.sh "$ctl")'


def sbatch_command(script_path: str) -> list[str]:
    """``sbatch --parsable <script>``: submits the script, prints the job id."""
    return ["sbatch", "--parsable", remote_path(script_path)]


def parse_sbatch(output: str) -> str:
    """The job id ``sbatch --parsable`` printed (``123`` or ``123;cluster``)."""
    lines = non_empty_lines(output)
    match = _SBATCH_OUTPUT.fullmatch(lines[-1].strip()) if len(lines) == 1 else None
    if not match:
        raise ValueError(
            f"sbatch did not print a job id (expected '123' or '123;cluster'): {output!r}; "
            "the job may or may not be queued: look it up by name before submitting again"
        )
    return match.group(1)


def squeue_command(user: str | None = None) -> list[str]:
    """One ``squeue`` for every job of the login (``--me``) or of ``user``, in every state
    (ended ones too, while Slurm remembers them), one ``id|name|state|reason`` a line."""
    who = ["--me"] if user is None else [f"--user={checked_login(user)}"]
    return ["squeue", *who, "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}"]


def parse_squeue(output: str) -> dict[str, QueueEntry]:
    """The jobs ``squeue_command`` listed, by job id.

    Read only the output of a squeue that succeeded: an empty list is "no jobs", and a
    job missing from it is not finished (Slurm forgets ended jobs after MinJobAge): ask
    ``scontrol`` or read its control directory. A line this can't read makes the whole
    listing unreadable, so that no job is taken as gone because of it.
    """
    entries = {}
    for line in non_empty_lines(output):
        entry = _squeue_entry(line)
        entries[entry.job_id] = entry
    return entries


def _squeue_entry(line: str) -> QueueEntry:
    job_id, _, rest = line.partition("|")
    fields = rest.rsplit("|", 2)
    job_id = job_id.strip()
    if len(fields) != 3 or not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"squeue printed a line that is not 'id|name|state|reason': {line!r}")
    name, raw_state, raw_reason = (part.strip() for part in fields)
    state = queue_state(raw_state)
    ending = ending_of({"JobState": raw_state, "Reason": raw_reason}) if state == "ended" else None
    return QueueEntry(
        job_id=job_id,
        name=name,
        state=state,
        reason=reason_in_words(raw_reason) if state in ("queued", "held") else "",
        raw_state=raw_state,
        raw_reason=raw_reason,
        ending=ending,
    )


def queue_state(raw_state: str) -> QueueState:
    """Slurm's job state (``PENDING``, ``RUNNING`` ...) as one of the app's queue states."""
    word = raw_state.split()[0] if raw_state.split() else ""
    # scontrol and sacct may add flags after a "+" or a reason ("CANCELLED by 0").
    word = word.split("+")[0]
    for state, words in _STATES:
        if word in words:
            return state
    return "unknown"


def reason_in_words(raw_reason: str) -> str:
    """Why Slurm keeps a job waiting, as a short sentence; a reason this doesn't know is
    shown as Slurm wrote it."""
    reason = raw_reason.strip()
    # "ReqNodeNotAvail, UnavailableNodes:node[1-2]" names the nodes after a comma.
    head, _, detail = reason.partition(",")
    if reason in REASONS:
        return REASONS[reason]
    if head in REASONS:
        return f"{REASONS[head]} ({detail.strip()})" if detail.strip() else REASONS[head]
    for prefix, words in (
        ("AssocGrp", "your account's group has reached a limit"),
        ("AssocMax", "your account has reached a limit"),
        ("QOSGrp", "your QOS's group has reached a limit"),
        ("QOSMax", "your QOS has reached a limit"),
    ):
        if reason.startswith(prefix):
            return f"waiting: {words} ({reason})"
    return reason


def scontrol_show_job_command(job_id: str) -> list[str]:
    """``scontrol --oneliner show job <id>``: every field of one job on one line."""
    return ["scontrol", "--oneliner", "show", "job", _checked_job_id(job_id)]


def parse_scontrol_job(output: str) -> dict[str, str]:
    """The ``Key=value`` fields of one job from ``scontrol_show_job_command``.

    Values may hold spaces (``Command=``, ``WorkDir=``, ``JobName=``), so a field ends
    where the next `` Key=`` starts. When a key comes twice (a path holding
    `` JobState=COMPLETED``), the first wins: Slurm writes its own fields before the
    user's paths, so a path can't change a job's state.
    """
    lines = non_empty_lines(output)
    if len(lines) != 1 or not lines[0].startswith("JobId="):
        raise ValueError(
            f"scontrol did not print one job as 'JobId=... JobState=...': {output[:200]!r}"
        )
    line = lines[0]
    keys = list(_SCONTROL_KEY.finditer(line))
    fields: dict[str, str] = {}
    for index, key in enumerate(keys):
        end = keys[index + 1].start() if index + 1 < len(keys) else len(line)
        fields.setdefault(key.group(1), line[key.end() : end].strip())
    if "JobState" not in fields:
        raise ValueError(f"scontrol printed no JobState: {line[:200]!r}")
    return fields


#: The file of the job's control directory where Slurm writes its own messages about the
#: job (the batch script's own stderr, which the program's output never reaches).
MESSAGES_FILE = "slurm.err"

#: What slurmstepd writes to the batch script's stderr when it kills a job for memory:
#: by its accounting ("Exceeded job memory limit", OverMemoryKill) or its cgroup ("...
#: oom-kill event(s) ...", "Detected ... oom_kill event").
_MEMORY_MESSAGES = re.compile(r"exceeded (?:job |step )?memory limit|oom[-_]kill", re.IGNORECASE)


def ending_from_messages(ending: Ending, messages: str, memory: str = "") -> Ending:
    """The ending ``scontrol`` gave, made plain by what Slurm wrote to the batch script's
    stderr (``MESSAGES_FILE``): a job killed for its memory shows only as FAILED (signal
    9) where the memory limit is enforced by accounting, not as OUT_OF_MEMORY."""
    if ending.kind in ("out_of_memory", "timeout", "canceled", "node_fail", "preempted"):
        return ending
    if _MEMORY_MESSAGES.search(messages):
        shown = f" ({memory})" if memory else ""
        return Ending(
            "out_of_memory",
            f"Slurm ended the job: it used more memory than it asked for{shown}.",
        )
    return ending


def ending_of(fields: Mapping[str, str]) -> Ending:
    """How Slurm ended the job, from its ``JobState``, ``Reason`` and ``ExitCode``
    (``parse_scontrol_job``'s fields, or squeue's state and reason)."""
    raw_state = fields.get("JobState", "").strip()
    word = raw_state.split()[0].split("+")[0] if raw_state else ""
    reason = fields.get("Reason", "").strip()
    exit_code, signal_number = _exit_code(fields.get("ExitCode", ""))
    ended = "Slurm ended the job: "
    if word == "COMPLETED":
        return Ending("completed", "Slurm reports the job completed.")
    if word == "TIMEOUT":
        limit = fields.get("TimeLimit", "")
        shown = f" ({limit})" if limit else ""
        return Ending("timeout", f"{ended}its time limit{shown} was reached.")
    if word == "DEADLINE":
        return Ending("timeout", f"{ended}it could not finish before its deadline.")
    if word == "OUT_OF_MEMORY":
        memory = fields.get("MinMemoryNode") or fields.get("MinMemoryCPU", "")
        shown = f" ({memory})" if memory else ""
        return Ending("out_of_memory", f"{ended}it used more memory than it asked for{shown}.")
    if word in ("NODE_FAIL", "BOOT_FAIL"):
        nodes = fields.get("NodeList", "")
        shown = f" ({nodes})" if nodes and nodes != "(null)" else ""
        what = "failed" if word == "NODE_FAIL" else "failed to boot"
        return Ending("node_fail", f"{ended}a node it ran on {what}{shown}.")
    if word == "PREEMPTED":
        return Ending("preempted", f"{ended}it was preempted by a higher-priority job.")
    if word in ("CANCELLED", "REVOKED"):
        return Ending("canceled", f"{ended}it was canceled (scancel){_canceler(raw_state)}.")
    if word == "FAILED":
        return Ending("failed", ended + _failure(reason, exit_code, signal_number))
    if word:
        return Ending("unknown", f"Slurm shows the job as {raw_state}: it has not ended yet.")
    return Ending("unknown", "Slurm gave no state for the job: ask again.")


def _exit_code(text: str) -> tuple[int | None, int | None]:
    match = _EXIT_CODE.fullmatch(text.strip())
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def _canceler(raw_state: str) -> str:
    # sacct and some scontrol versions write "CANCELLED by <uid>".
    match = re.search(r"\bby (\d+)", raw_state)
    if not match:
        return ""
    uid = match.group(1)
    return " by an administrator (root)" if uid == "0" else f" by the user with uid {uid}"


def _failure(reason: str, exit_code: int | None, signal_number: int | None) -> str:
    if signal_number:
        return f"it was killed by {signal_words(signal_number)}."
    if reason.startswith("RaisedSignal:"):
        number = reason.partition(":")[2].partition("(")[0]
        if number.isdigit():
            return f"it was killed by {signal_words(int(number))}."
    if exit_code:
        return f"its batch script exited with code {exit_code}."
    if reason == "JobLaunchFailure":
        return "Slurm could not launch it."
    if reason == "SystemFailure":
        return "a failure of Slurm or its node."
    return f"it failed ({reason or 'no reason given'})."


def scancel_command(job_id: str) -> list[str]:
    """``scancel <id>``: ends the job's whole allocation, queued or running."""
    return ["scancel", _checked_job_id(job_id)]


def _checked_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"{job_id!r} is not a Slurm job id")
    return job_id

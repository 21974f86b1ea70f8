"""A one-node Slurm cluster on this machine (munged, slurmctld, slurmd), for tests.

It runs the Debian packages (``slurmctld slurmd slurm-client munge``) as root, with the
configuration of ``/work/shared/slurm-on-one-box.md``: node ``localhost`` with 2 CPUs,
partition ``debug``, no cgroups, no accounting database; with three changes, so that a
job's memory limit is enforced as on a real cluster: processes are tracked by their
parent (``proctrack/linuxproc``: the program leads a session of its own, which
``proctrack/pgid`` missed), memory is a consumable (``CR_CPU_Memory``, 50 MB a CPU
unless a job asks), and a job over its memory is killed by Slurm's accounting
(``jobacct_gather/linux`` each second, ``OverMemoryKill``).

Slurm's daemons are machine-wide (``/etc/slurm/slurm.conf``, ports 6817 and 6818), and CI
runs three pytest processes at once, so the cluster is shared between every process
that uses it. Two lock files under ``/run/lock`` decide who starts and who stops it:

* ``drs-slurm.control``: held exclusively (``flock``) while a process joins or leaves,
  so those steps never interleave.
* ``drs-slurm.users``: each process using the cluster holds a *shared* lock on it for as
  long as it does. A process that joins and can take it *exclusively* is alone: it
  (re)starts the cluster from scratch (daemons left by an earlier run are stopped, the
  configuration written, slurmctld started with its saved state cleared). A process
  that leaves and can turn its shared lock into an exclusive one is the last: it cancels
  the jobs left, stops the daemons and checks that none is left running.

The kernel releases a process's locks when it dies, so a killed test run never holds the
cluster up: the next run finds the daemons it left and restarts them. The configuration
is written only when ``/etc/slurm/slurm.conf`` is absent or was written here (its first
line is :data:`CONFIG_MARK`); a foreign one makes :meth:`SlurmCluster.available` say why
the cluster can't run. The configuration is left in place when the cluster stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CONFIG_MARK = "# written by django-remote-submission tests"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
LOCK_DIR = Path("/run/lock")
CONTROL_LOCK = LOCK_DIR / "drs-slurm.control"
USERS_LOCK = LOCK_DIR / "drs-slurm.users"
#: Present while munged runs because this module started it (else it is someone else's).
MUNGED_MARK = LOCK_DIR / "drs-slurm.munged"

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
MUNGED = "/usr/sbin/munged"
CLIENTS = ("/usr/bin/sbatch", "/usr/bin/squeue", "/usr/bin/sinfo", "/usr/bin/scontrol")
PACKAGES = "slurmctld slurmd slurm-client munge"

CTLD_PID = Path("/run/slurmctld.pid")
SLURMD_PID = Path("/run/slurmd.pid")
MUNGED_PID = Path("/run/munge/munged.pid")
CTLD_LOG = Path("/var/log/slurm/slurmctld.log")
SLURMD_LOG = Path("/var/log/slurm/slurmd.log")

CLUSTER = "drs-test"
NODE = "localhost"
PARTITION = "debug"
CPUS = 2
#: How many jobs each CPU takes at once (OverSubscribe=FORCE:<n>): the test passes that
#: run at once share two CPUs without waiting on each other's jobs.
JOBS_PER_CPU = 4
SHARING = f"OverSubscribe=FORCE:{JOBS_PER_CPU}"
#: A node in one of these states (sinfo's compact %t) takes jobs.
READY_STATES = frozenset({"idle", "mix", "alloc", "comp"})

CONFIG = f"""\
{CONFIG_MARK}
# A one-node cluster for the test suite (tests/slurm.py); it stops when the last test
# process using it ends. Delete this file to use this machine's Slurm for anything else.
ClusterName={CLUSTER}
SlurmctldHost=localhost
AuthType=auth/munge
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile={CTLD_PID}
SlurmdPidFile={SLURMD_PID}
SlurmctldLogFile={CTLD_LOG}
SlurmdLogFile={SLURMD_LOG}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=50
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
KillWait=5
NodeName={NODE} CPUs={CPUS} RealMemory=1000 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP {SHARING}
"""


class SlurmError(RuntimeError):
    """The cluster did not start or stop as it should; the message says what was seen."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _daemon_pid(pid_file: Path, name: str) -> int | None:
    """The pid in the file, if that process runs and is the program ``name``."""
    try:
        pid = int(pid_file.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == name and _alive(pid) else None


def _slurm_processes() -> dict[str, list[int]]:
    found = {name: _pgrep(name) for name in ("slurmctld", "slurmd", "slurmstepd")}
    return {name: pids for name, pids in found.items() if pids}


def _pgrep(name: str) -> list[int]:
    result = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)
    return [pid for pid in map(int, result.stdout.split()) if _alive(pid)]


def _wait(predicate: Callable[[], object], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class SlurmCluster:
    """Join with :meth:`join` (or ``with``); :meth:`leave` stops it if this was the last user."""

    cluster: str = CLUSTER
    partition: str = PARTITION
    node: str = NODE
    cpus: int = CPUS
    jobs_per_cpu: int = JOBS_PER_CPU
    config_path: Path = SLURM_CONF
    #: Whether this process (re)started the daemons when it joined.
    started: bool = field(default=False, init=False)
    _users: IO[bytes] | None = field(default=None, init=False, repr=False)

    @staticmethod
    def available() -> str | None:
        """Why the cluster can't run here, or None when it can."""
        missing = [p for p in (SLURMCTLD, SLURMD, MUNGED, *CLIENTS) if not os.path.exists(p)]
        if missing:
            return (
                f"Slurm not installed ({', '.join(missing)} missing; "
                f"apt-get install --no-install-recommends {PACKAGES})"
            )
        if os.geteuid() != 0:
            return "the Slurm test cluster starts munged, slurmctld and slurmd: it needs root"
        if SLURM_CONF.exists() and not _ours(SLURM_CONF):
            return (
                f"{SLURM_CONF} exists and was not written by the test suite (its first line "
                f"is not {CONFIG_MARK!r}): not touching this machine's Slurm"
            )
        return None

    # Joining and leaving -------------------------------------------------------------

    def join(self) -> SlurmCluster:
        reason = self.available()
        if reason:
            raise SlurmError(reason)
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        with _locked(CONTROL_LOCK):
            users = USERS_LOCK.open("ab")
            try:
                alone = _try_lock(users, fcntl.LOCK_EX)
                if alone:
                    self._restart()
                    self.started = True
                # Downgrading keeps the lock: no instant where a leaver could think it is last.
                fcntl.flock(users, fcntl.LOCK_SH)
                if not alone:
                    self._ensure_running()
                self._users = users
                self.wait_ready(idle=alone)
            except BaseException:
                if self._users is None:
                    _release(users)
                else:
                    self._leave_locked()
                raise
        return self

    def leave(self) -> None:
        if self._users is None:
            return
        with _locked(CONTROL_LOCK):
            self._leave_locked()

    def _leave_locked(self) -> None:
        users, self._users = self._users, None
        assert users is not None
        try:
            if _try_lock(users, fcntl.LOCK_EX):
                self._shutdown()
        finally:
            _release(users)

    def __enter__(self) -> SlurmCluster:
        return self.join()

    def __exit__(self, *exc_info: object) -> None:
        self.leave()

    # Commands ------------------------------------------------------------------------

    def command(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm client command run here, as root (``cluster.command("squeue", "-h")``)."""
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise SlurmError(
                f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def node_state(self) -> str:
        """The node's state as sinfo's compact ``%t`` shows it (``idle``, ``mix``, ``down*``)."""
        result = self.command("sinfo", "-h", "-o", "%t", "-n", self.node, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def wait_ready(self, *, idle: bool = True, timeout: float = 60.0) -> None:
        """Until the node takes jobs (``idle`` when ``idle``, as a fresh cluster is)."""
        wanted = {"idle"} if idle else READY_STATES
        resumed = False
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for pid_file, name in ((CTLD_PID, "slurmctld"), (SLURMD_PID, "slurmd")):
                if _daemon_pid(pid_file, name) is None:
                    raise SlurmError(f"{name} is not running\n{self.logs()}")
            state = self.node_state()
            if state in wanted:
                return
            if state.rstrip("*") in ("down", "drain", "drng") and not resumed:
                # A node that slurmctld remembered as down (a killed run) comes back on
                # its own with ReturnToService=2 once slurmd registers; this nudges it.
                self.command("scontrol", "update", f"NodeName={self.node}", "State=RESUME",
                             check=False)  # fmt: skip
                resumed = True
            time.sleep(0.2)
        raise SlurmError(
            f"node {self.node} not ready after {timeout:.0f} s (sinfo says {state!r})\n"
            f"{self.logs()}"
        )

    def daemon_pids(self) -> tuple[int | None, int | None]:
        """The pids of slurmctld and slurmd (None for one that is not running)."""
        return _daemon_pid(CTLD_PID, "slurmctld"), _daemon_pid(SLURMD_PID, "slurmd")

    def logs(self) -> str:
        """The end of the daemons' logs, for error messages."""
        return "\n".join(f"--- {path} ---\n{_tail(path)}" for path in (CTLD_LOG, SLURMD_LOG))

    # Daemons -------------------------------------------------------------------------

    def _restart(self) -> None:
        """Start from scratch: no daemon or job of an earlier run is kept (munged is)."""
        self._stop_slurm()
        self._prepare()
        self._start_munged()
        self._start(SLURMCTLD, "-c")
        self._start(SLURMD, "-N", self.node)

    def _ensure_running(self) -> None:
        """Another process runs the cluster; start what died under it, keeping its jobs."""
        if not _munge_works():
            self._start_munged()
        if _daemon_pid(CTLD_PID, "slurmctld") is None:
            self._start(SLURMCTLD)
        if _daemon_pid(SLURMD_PID, "slurmd") is None:
            self._start(SLURMD, "-N", self.node)

    def _prepare(self) -> None:
        for path in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd",
                     "/var/log/slurm", "/run/munge"):  # fmt: skip
            Path(path).mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists() or self.config_path.read_text() != CONFIG:
            if self.config_path.exists() and not _ours(self.config_path):
                raise SlurmError(f"{self.config_path} is not ours; not overwriting it")
            temporary = self.config_path.with_suffix(".conf.drs-tmp")
            temporary.write_text(CONFIG)
            temporary.chmod(0o644)
            temporary.replace(self.config_path)

    def _start_munged(self) -> None:
        if _munge_works():
            return
        for path in ("/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge"):
            Path(path).mkdir(parents=True, exist_ok=True)
            shutil.chown(path, "munge", "munge")
        stale = _daemon_pid(MUNGED_PID, "munged")
        if stale is not None:
            _terminate(stale, "munged")
        # --force: a socket left by a munged that was killed would stop it otherwise.
        self._run_daemon(["runuser", "-u", "munge", "--", MUNGED, "--force"])
        MUNGED_MARK.write_text(f"{_daemon_pid(MUNGED_PID, 'munged')}\n")
        if not _wait(_munge_works, timeout=15):
            raise SlurmError(f"munged does not answer\n{_tail(Path('/var/log/munge/munged.log'))}")

    def _start(self, program: str, *arguments: str) -> None:
        name = os.path.basename(program)
        self._run_daemon([program, *arguments])
        pid_file = CTLD_PID if name == "slurmctld" else SLURMD_PID
        if not _wait(lambda: _daemon_pid(pid_file, name) is not None, timeout=30):
            raise SlurmError(f"{name} did not write {pid_file}\n{self.logs()}")

    def _run_daemon(self, argv: list[str]) -> None:
        """Run a program that puts itself in the background, and check that it did."""
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if result.returncode != 0:
            raise SlurmError(
                f"{' '.join(argv)} exited {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}\n{self.logs()}"
            )

    def _shutdown(self) -> None:
        """The last user leaves: cancel what is left, stop every daemon, check none stays."""
        if _daemon_pid(CTLD_PID, "slurmctld") is not None:
            self.command("scancel", "--full", f"--partition={self.partition}", check=False)
            _wait(
                lambda: not self.command("squeue", "-h", "-o", "%i", check=False).stdout.strip(),
                timeout=30,
                interval=0.2,
            )
        self._stop_slurm()
        if MUNGED_MARK.exists():
            pid = _daemon_pid(MUNGED_PID, "munged")
            if pid is not None:
                _terminate(pid, "munged")
            MUNGED_MARK.unlink(missing_ok=True)
        # The daemons' helpers (slurmctld's slurmscriptd, job steps) end after them.
        if _wait(lambda: not _slurm_processes(), timeout=30):
            return
        for pids in _slurm_processes().values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if not _wait(lambda: not _slurm_processes(), timeout=10):
            raise SlurmError(
                f"Slurm processes still running after the cluster stopped: {_slurm_processes()}"
            )

    def _stop_slurm(self) -> None:
        for pid_file, name in ((SLURMD_PID, "slurmd"), (CTLD_PID, "slurmctld")):
            pid = _daemon_pid(pid_file, name)
            if pid is not None:
                _terminate(pid, name)
        # Job steps of a slurmd that was killed outlive it; they are this cluster's.
        for pid in _pgrep("slurmstepd"):
            _terminate(pid, "slurmstepd")


def _ours(path: Path) -> bool:
    try:
        with path.open() as file:
            return file.readline().rstrip("\n") == CONFIG_MARK
    except OSError:
        return False


def _munge_works() -> bool:
    if _daemon_pid(MUNGED_PID, "munged") is None:
        return False
    credential = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=False)
    if credential.returncode != 0:
        return False
    decoded = subprocess.run(
        ["unmunge"], input=credential.stdout, capture_output=True, timeout=10, check=False
    )
    return decoded.returncode == 0


def _terminate(pid: int, name: str, *, grace: float = 30.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait(lambda: not _alive(pid), timeout=grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait(lambda: not _alive(pid), timeout=10):
        raise SlurmError(f"{name} (pid {pid}) survived SIGKILL")


def _try_lock(file: IO[bytes], operation: int) -> bool:
    try:
        fcntl.flock(file, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release(file: IO[bytes]) -> None:
    # Unlocking explicitly releases the lock even if a forked child still holds the file.
    with contextlib.suppress(OSError):
        fcntl.flock(file, fcntl.LOCK_UN)
    file.close()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    file = path.open("ab")
    try:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield
    finally:
        _release(file)


def job_fields(line: str) -> dict[str, str]:
    """``scontrol show job -o`` output as a dict (values may hold spaces: ``Command=a b``)."""
    keys = list(re.finditer(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=", line))
    fields = {}
    for match, following in zip(keys, [*keys[1:], None], strict=True):
        end = following.start() if following is not None else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()
    return fields

"""A private PostgreSQL cluster on a loopback port, for tests that stop and start it.

The machine's shared PostgreSQL is never touched. As root the cluster runs as the
``postgres`` account (PostgreSQL refuses to run as root), in a directory of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from django_remote_submission.testing import free_port

#: Where Debian and Ubuntu install the server binaries (initdb, pg_ctl), newest first.
BIN_PATTERN = "/usr/lib/postgresql/*/bin"
ACCOUNT = "postgres"


def _bin_directory() -> Path | None:
    found = sorted(glob.glob(BIN_PATTERN), key=lambda p: int(Path(p).parent.name), reverse=True)
    return next((Path(p) for p in found if (Path(p) / "pg_ctl").exists()), None)


class PostgresCluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _bin_directory()
        self.as_root = os.geteuid() == 0
        self.directory: Path | None = None

    @staticmethod
    def available() -> str | None:
        """Why this can't run here, or None when it can."""
        if _bin_directory() is None:
            return f"PostgreSQL server not installed (no {BIN_PATTERN}/pg_ctl)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(ACCOUNT)
            except KeyError:
                return f"running as root, and there is no {ACCOUNT!r} account to run PostgreSQL"
        return None

    @property
    def data(self) -> Path:
        assert self.directory is not None
        return self.directory / "data"

    def url(self, name: str = "postgres") -> str:
        return f"postgres://{ACCOUNT}@127.0.0.1:{self.port}/{name}"

    def start(self) -> PostgresCluster:
        if self.directory is None:
            # Not under pytest's tmp_path: the postgres account can't enter root's 0700 dirs.
            self.directory = Path(tempfile.mkdtemp(prefix="drs-pg-"))
            if self.as_root:
                entry = pwd.getpwnam(ACCOUNT)
                os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb", "-D", str(self.data), "-U", ACCOUNT, "-A", "trust", "--no-sync",
                "-E", "UTF8",
            )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session, as a restart by an admin or a failover does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        if self.directory is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def log(self) -> str:
        path = self.directory / "server.log" if self.directory else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        assert self.bin is not None
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", ACCOUNT, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            output = result.stderr[-2000:] + self.log()[-2000:]
            raise RuntimeError(f"{program} failed ({result.returncode}): {output}")

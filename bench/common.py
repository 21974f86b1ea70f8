"""What every benchmark does first: a database of its own, Django set up and migrated."""

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def prepare(name: str) -> Path:
    """Set Django up on a fresh SQLite file; returns the benchmark's scratch directory."""
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix=f"drs-bench-{name}-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return work


def start_server(work: Path) -> tuple[Any, Any, Any, Any, Any]:
    """The private sshd and what a job needs to reach it: (sshd, account, owner, server,
    interpreter). Exits when not root, as only root's sshd can log in its own account."""
    from tests.factories import make_interpreter, make_server, make_user
    from tests.sshd import OpenSSHServer

    sshd = OpenSSHServer(work / "sshd")
    account = sshd.start()
    if not account.password:
        sshd.stop()
        sys.exit("make bench needs root: the private sshd logs in its own test account")
    owner = make_user("bench")
    interpreter = make_interpreter(name="python3", path="/usr/bin/python3 -u")
    server = make_server(
        interpreters=[interpreter],
        hostname="127.0.0.1",
        port=account.port,
        host_key=account.host_key,
    )
    return sshd, account, owner, server, interpreter

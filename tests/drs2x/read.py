"""Print the app's rows, read through the 3.0 models, and its tables' schema, as JSON.

Run by tests/test_upgrade_2x.py in a process of its own, as a site would run its code
after ``migrate``: ``python -m tests.drs2x.read`` with ``DJANGO_SETTINGS_MODULE`` set.
"""

from __future__ import annotations

import json
from typing import Any

import django

django.setup()

from django.db import connection  # noqa: E402

from django_remote_submission.models import Interpreter, Job, Log, Result, Server  # noqa: E402

APP = "django_remote_submission"


def when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def rows() -> dict[str, Any]:
    return {
        "interpreters": [
            {
                "id": i.pk,
                "created": when(i.created),
                "modified": when(i.modified),
                "name": i.name,
                "path": i.path,
                "arguments": i.arguments,
                "str": str(i),
            }
            for i in Interpreter.objects.order_by("pk")
        ],
        "servers": [
            {
                "id": s.pk,
                "created": when(s.created),
                "modified": when(s.modified),
                "title": s.title,
                "hostname": s.hostname,
                "port": s.port,
                "interpreters": sorted(i.pk for i in s.interpreters.all()),
                "username": s.username,
                "host_key": s.host_key,
            }
            for s in Server.objects.order_by("pk")
        ],
        "jobs": [
            {
                "id": j.pk,
                "created": when(j.created),
                "modified": when(j.modified),
                "title": j.title,
                "uuid": str(j.uuid),
                "program": j.program,
                "status": j.status,
                "remote_directory": j.remote_directory,
                "remote_filename": j.remote_filename,
                "owner": j.owner_id,
                "server": j.server_id,
                "interpreter": j.interpreter_id,
                "state": j.state,
                "error": j.error,
                "exit_code": j.exit_code,
                "started_at": when(j.started_at),
                "finished_at": when(j.finished_at),
                "queued_at": when(j.queued_at),
                "stdout_offset": j.stdout_offset,
                "stderr_offset": j.stderr_offset,
                "lease_owner": j.lease_owner,
                "run_options": j.run_options,
            }
            for j in Job.objects.order_by("pk")
        ],
        "logs": [
            {
                "id": log.pk,
                "time": when(log.time),
                "content": log.content,
                "stream": log.stream,
                "job": log.job_id,
            }
            for log in Log.objects.order_by("pk")
        ],
        "results": [
            {
                "id": r.pk,
                "created": when(r.created),
                "modified": when(r.modified),
                "remote_filename": r.remote_filename,
                "local_file": r.local_file.name,
                "job": r.job_id,
                "size": r.size,
                "checksum": r.checksum,
                "content": read(r),
            }
            for r in Result.objects.order_by("pk")
        ],
    }


def read(result: Result) -> str:
    with result.local_file.open("rb") as f:
        return f.read().decode("utf-8")


def auto_or_default(column: Any) -> Any:
    """2.x's ids on PostgreSQL are serial columns (a nextval() default), those Django
    makes today identity columns: both number rows alike, and Django leaves the serial
    ones of upgraded databases as they are, its own tables' included."""
    serial = str(column.default or "").startswith("nextval(")
    return "auto-increment" if serial or getattr(column, "is_autofield", False) else column.default


def schema() -> dict[str, Any]:
    """The app's tables as the database describes them, without the names the database
    chose itself (those of unnamed constraints and indexes differ between two histories)."""
    tables: dict[str, Any] = {}
    with connection.cursor() as cursor:
        names = sorted(
            t.name
            for t in connection.introspection.get_table_list(cursor)
            if t.name.startswith(APP)
        )
        for table in names:
            columns = {
                c.name: [
                    str(c.type_code),
                    c.null_ok,
                    c.display_size,
                    c.internal_size,
                    c.precision,
                    c.scale,
                    auto_or_default(c),
                ]
                for c in connection.introspection.get_table_description(cursor, table)
            }
            constraints = []
            for name, c in connection.introspection.get_constraints(cursor, table).items():
                described = {
                    "columns": c["columns"],
                    "unique": c["unique"],
                    "index": c["index"],
                    "primary_key": c["primary_key"],
                    "foreign_key": c["foreign_key"],
                    "check": c["check"],
                    "orders": c.get("orders"),
                }
                if name.startswith("drs_"):
                    described["name"] = name
                constraints.append(json.dumps(described, sort_keys=True))
            tables[table] = {"columns": columns, "constraints": sorted(constraints)}
    return tables


if __name__ == "__main__":
    print(json.dumps({"rows": rows(), "schema": schema()}, sort_keys=True, default=str))

"""Small factories for test data; every field can be overridden by keyword."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from django_remote_submission.models import Interpreter, Job, Log, Result, Server

_counter = itertools.count(1)


def make_user(username: str | None = None, **kwargs: Any) -> Any:
    username = username or f"user{next(_counter)}"
    return get_user_model().objects.create_user(username=username, password="pw", **kwargs)


def make_interpreter(**kwargs: Any) -> Interpreter:
    values = {"name": "Python 3", "path": "/usr/bin/python3", "arguments": ["-u"]}
    values.update(kwargs)
    return Interpreter.objects.create(**values)


def make_server(interpreters: list[Interpreter] | None = None, **kwargs: Any) -> Server:
    values: dict[str, Any] = {"title": "Remote", "hostname": "foo.invalid", "port": 22}
    values.update(kwargs)
    server = Server.objects.create(**values)
    server.interpreters.set(interpreters if interpreters is not None else [make_interpreter()])
    return server


def make_job(**kwargs: Any) -> Job:
    values: dict[str, Any] = {
        "title": "My Job",
        "program": 'print("hello world")',
        "remote_directory": "/tmp/drs",
        "remote_filename": "test.py",
    }
    values.update(kwargs)
    if "server" not in values:
        values["server"] = make_server()
    if "interpreter" not in values:
        values["interpreter"] = values["server"].interpreters.first()
    if "owner" not in values:
        values["owner"] = make_user()
    return Job.objects.create(**values)


def make_log(**kwargs: Any) -> Log:
    values: dict[str, Any] = {"content": "line\n", "stream": "stdout"}
    values.update(kwargs)
    if "job" not in values:
        values["job"] = make_job()
    return Log.objects.create(**values)


def make_result(**kwargs: Any) -> Result:
    values: dict[str, Any] = {"remote_filename": "1.txt"}
    values.update(kwargs)
    if "job" not in values:
        values["job"] = make_job()
    return Result.objects.create(**values)

"""Write a 2.x site's database, made by django-remote-submission 2.1.0 itself.

This script does not run in the test suite: it runs under the real 2.1.0 release, on
Python 3.6 with Django 2.0, and writes the files the upgrade tests load
(``tests/test_upgrade_2x.py``):

* ``sqlite.sql``: the whole SQLite database, as ``sqlite3``'s ``.dump`` writes it;
* ``postgresql.sql``: the whole PostgreSQL database, as ``pg_dump --inserts`` writes it;
* ``media/``: the result files 2.x stored under ``MEDIA_ROOT``;
* ``expected.json``: every row of the app's tables, as 2.x's models read them back.

The rows are written the way a 2.x site wrote them: the jobs run through 2.x's own
``submit_job_to_server`` (with ``remote=False``, so no SSH server is needed), which stores
their log chunks and result files; one job is left ``submitted``, as a worker that died
mid-job left it, and one ``initial``.

To write them again (this replaces the files above)::

    pyenv's python3.6 -m venv /tmp/v2
    /tmp/v2/bin/pip install "pip==21.3.1"
    /tmp/v2/bin/pip install "Django==2.0.13" "django-remote-submission==2.1.0" \\
        "psycopg2-binary<2.9" "celery<5" "channels<2.2" "channels-redis<2.5"
    /tmp/v2/bin/python tests/drs2x/generate.py sqlite
    /tmp/v2/bin/python tests/drs2x/generate.py postgresql   # needs PostgreSQL on 127.0.0.1

Both runs write the same rows; each run replaces ``media/`` and ``expected.json`` only
for its own database (``expected-<database>.json``), since uuids and times differ.
"""

import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# Where 2.x's LocalWrapper ran the jobs: stored in Job.remote_directory.
WORK = "/tmp/drs2x-jobs"
PG_NAME = "drs2x_generate"


def configure(database):
    from django.conf import settings

    media = os.path.join(HERE, "media-" + database)
    shutil.rmtree(media, ignore_errors=True)
    os.makedirs(media)
    if database == "sqlite":
        path = os.path.join(tempfile.mkdtemp(), "drs2x.sqlite3")
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    else:
        subprocess.check_call(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
             "DROP DATABASE IF EXISTS {0}".format(PG_NAME), "-c",
             "CREATE DATABASE {0}".format(PG_NAME)]
        )
        db = {"ENGINE": "django.db.backends.postgresql", "NAME": PG_NAME,
              "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="drs2x-fixture",
        USE_TZ=True,
        TIME_ZONE="UTC",
        DATABASES={"default": db},
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_remote_submission",
        ],
        MEDIA_ROOT=media,
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    )
    import django

    django.setup()
    return db, media


def make_rows():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from django_remote_submission.models import Interpreter, Job, Log, Server
    from django_remote_submission.tasks import LogPolicy, submit_job_to_server

    call_command("migrate", verbosity=0)
    User = get_user_model()
    alice = User.objects.create_superuser("alice", "alice@example.org", "alice-2x-password")
    bob = User.objects.create_user("bob", "bob@example.org", "bob-2x-password")

    python3 = Interpreter.objects.create(name="Python 3", path=sys.executable, arguments=["-u"])
    bash = Interpreter.objects.create(name="Bash", path="/bin/bash", arguments=[])
    quoted = Interpreter.objects.create(
        name="Python, quoted arguments", path=sys.executable,
        arguments=["-W", "ignore::DeprecationWarning", "-c",
                   "import sys; print(\"it's\", 'a \\'quote\\'', sys.argv[1:])"],
    )
    local = Server.objects.create(title="Local", hostname="localhost", port=22)
    local.interpreters.add(python3, bash, quoted)
    cluster = Server.objects.create(title="Cluster", hostname="login.cluster.example.org", port=2222)
    cluster.interpreters.add(python3)

    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)

    def job(title, program, interpreter, owner, server=local, filename="run.py", directory=None):
        return Job.objects.create(
            title=title, program=program, remote_directory=directory or WORK,
            remote_filename=filename, owner=owner, server=server, interpreter=interpreter,
        )

    # Success, with both streams, a non-ASCII line and two result files.
    ok = job(
        "Reduce run 1 \u2013 caf\u00e9",
        "import sys\n"
        "for i in range(1, 6):\n"
        "    print('line', i, '\u00e9\u00e8')\n"
        "print('warning 1', file=sys.stderr)\n"
        "open('out_1.txt', 'w').write('first result\\n')\n"
        "open('table.csv', 'w').write('a,b\\n1,2\\n')\n",
        python3, alice, directory=os.path.join(WORK, "ok"),
    )
    ok_results = submit_job_to_server(ok.pk, log_policy=LogPolicy.LOG_LIVE, remote=False)
    # Failure: the program exits 3.
    bad = job("Fails", "echo before\necho oops >&2\nexit 3\n", bash, bob, filename="run.sh",
              directory=os.path.join(WORK, "bad"))
    submit_job_to_server(bad.pk, log_policy=LogPolicy.LOG_TOTAL, store_results=["!*"],
                         remote=False)
    # The quoted interpreter runs too: its arguments reach the program unchanged.
    args = job("Arguments", "import sys\nprint(sys.argv)\n", quoted, alice,
               directory=os.path.join(WORK, "args"))
    submit_job_to_server(args.pk, store_results=["!*"], remote=False)
    # Left 'submitted' by a worker that died while the program ran, with a first chunk.
    stuck = job("Stuck", "import time\ntime.sleep(1000)\n", python3, bob, server=cluster)
    stuck.status = Job.STATUS.submitted
    stuck.save()
    Log.objects.create(time=timezone.now(), content="started\n", stream="stdout", job=stuck)
    # Never submitted.
    job("Not yet", "print('later')\n", python3, alice, server=cluster)
    return ok_results


def expected_rows():
    from django.contrib.auth import get_user_model

    from django_remote_submission.models import Interpreter, Job, Log, Result, Server

    def when(value):
        return value.isoformat()

    return {
        "users": {u.username: u.pk for u in get_user_model().objects.all()},
        "interpreters": [
            {"id": i.pk, "created": when(i.created), "modified": when(i.modified),
             "name": i.name, "path": i.path, "arguments": i.arguments}
            for i in Interpreter.objects.order_by("pk")
        ],
        "servers": [
            {"id": s.pk, "created": when(s.created), "modified": when(s.modified),
             "title": s.title, "hostname": s.hostname, "port": s.port,
             "interpreters": sorted(i.pk for i in s.interpreters.all())}
            for s in Server.objects.order_by("pk")
        ],
        "jobs": [
            {"id": j.pk, "created": when(j.created), "modified": when(j.modified),
             "title": j.title, "uuid": str(j.uuid), "program": j.program, "status": j.status,
             "remote_directory": j.remote_directory, "remote_filename": j.remote_filename,
             "owner": j.owner_id, "server": j.server_id, "interpreter": j.interpreter_id}
            for j in Job.objects.order_by("pk")
        ],
        "logs": [
            {"id": l.pk, "time": when(l.time), "content": l.content, "stream": l.stream,
             "job": l.job_id}
            for l in Log.objects.order_by("pk")
        ],
        "results": [
            {"id": r.pk, "created": when(r.created), "modified": when(r.modified),
             "remote_filename": r.remote_filename, "local_file": r.local_file.name,
             "job": r.job_id, "content": r.local_file.read().decode("utf-8")}
            for r in Result.objects.order_by("pk")
        ],
    }


def dump(database, db):
    target = os.path.join(HERE, database + ".sql")
    if database == "sqlite":
        from django.db import connections

        connections.close_all()
        source = sqlite3.connect(db["NAME"])
        with open(target, "w", encoding="utf-8") as out:
            for statement in source.iterdump():
                out.write(statement + "\n")
        source.close()
    else:
        from django.db import connections

        connections.close_all()
        text = subprocess.check_output(
            ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--inserts", "--no-owner",
             "--no-privileges", "--no-comments", PG_NAME]
        ).decode("utf-8")
        # Recent pg_dump writes psql meta-commands (\\restrict): plain SQL without them.
        text = "".join(l for l in text.splitlines(True) if not l.startswith("\\"))
        with open(target, "w", encoding="utf-8") as out:
            out.write(text)
        subprocess.check_call(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
                               "DROP DATABASE {0}".format(PG_NAME)])


def main():
    database = sys.argv[1]
    assert database in ("sqlite", "postgresql"), "say sqlite or postgresql"
    db, media = configure(database)
    results = make_rows()
    expected = expected_rows()
    expected["generated"] = {
        "django": __import__("django").get_version(),
        "django_remote_submission": __import__("django_remote_submission").__version__,
        "python": sys.version.split()[0],
        "at": datetime.datetime.utcnow().isoformat() + "Z",
        "results_returned": results,
    }
    with open(os.path.join(HERE, "expected-{0}.json".format(database)), "w") as out:
        json.dump(expected, out, indent=1, sort_keys=True, ensure_ascii=False)
        out.write("\n")
    dump(database, db)
    print("wrote", database, len(expected["jobs"]), "jobs", len(expected["logs"]), "logs",
          len(expected["results"]), "results")


if __name__ == "__main__":
    main()

"""A 2.x site upgrades with ``migrate`` alone, as a user would run it.

The databases under ``tests/drs2x`` were written by django-remote-submission 2.1.0 itself,
on Django 2.0 (``tests/drs2x/generate.py`` says how): its migration, its models and its
task storing the jobs' logs and results. Each test loads one into a database of its own,
runs ``manage.py migrate`` in another process with the 3.0 code, and reads every row back
through the 3.0 models in a third, as the site's own code would after the upgrade.

A database made by a development version of 3.0 (whose first migration created 3.0's
tables) goes through the same ``migrate``, and every history ends with the same schema as
a fresh install.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
import pytest

HERE = Path(__file__).parent
FIXTURES = HERE / "drs2x"
ROOT = HERE.parent
SUBMITTED_REASON = "still 'submitted' when the site was upgraded from django-remote-submission"


class Site:
    """A database and a media directory, and the commands a site runs against them."""

    def __init__(self, url: str, media: Path) -> None:
        self.url = url
        self.media = media

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRS_")}
        env.update(
            DATABASE_URL=self.url,
            DRS_MEDIA_ROOT=str(self.media),
            DJANGO_SETTINGS_MODULE="tests.settings",
            **extra,
        )
        return env

    def run(self, *args: str, **extra: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def execute(self, *statements: str) -> None:
        """Plain SQL on the site's database, as a hand-made change to it would be."""
        if self.url.startswith("sqlite:///"):
            database = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            with database:
                for statement in statements:
                    database.execute(statement)
            database.close()
            return
        with psycopg.connect(self.url.replace("postgres://", "postgresql://", 1)) as database:
            for statement in statements:
                database.execute(statement)

    def manage(self, *args: str, **extra: str) -> str:
        return self.run("-m", "django", *args, **extra)

    def read(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.run("-m", "tests.drs2x.read"))
        return result


def sqlite_site(tmp_path: Path, dump: str | None) -> Site:
    path = tmp_path / "site.sqlite3"
    if dump is not None:
        database = sqlite3.connect(path)
        database.executescript((FIXTURES / dump).read_text(encoding="utf-8"))
        database.close()
    return Site(f"sqlite:///{path}", tmp_path / "media")


@pytest.fixture
def postgres_sites() -> Iterator[Any]:
    """Makes empty PostgreSQL databases on the server of the PostgreSQL pass, and drops
    them at the end."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("runs in the PostgreSQL pass (DATABASE_URL=postgres://...)")
    config = dj_database_url.parse(url)
    admin = psycopg.connect(
        host=config["HOST"] or "127.0.0.1",
        port=int(config["PORT"] or 5432),
        user=config["USER"] or "postgres",
        password=config["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    made: list[str] = []

    def make(tmp_path: Path, dump: str | None) -> Site:
        name = f"drs_upgrade_{uuid.uuid4().hex[:12]}"
        admin.execute(f"CREATE DATABASE {name}")
        made.append(name)
        site_url = url.rsplit("/", 1)[0] + "/" + name
        if dump is not None:
            with psycopg.connect(site_url.replace("postgres://", "postgresql://", 1)) as load:
                load.execute((FIXTURES / dump).read_text(encoding="utf-8"))
        return Site(site_url, tmp_path / "media")

    yield make
    for name in made:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_site(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    def make(dump: str | None, name: str = "site") -> Site:
        directory = tmp_path / name
        directory.mkdir()
        if backend == "sqlite":
            return sqlite_site(directory, dump)
        make_postgres = request.getfixturevalue("postgres_sites")
        return make_postgres(directory, dump)  # type: ignore[no-any-return]

    return make


def site_2x(make_site: Any, backend: str) -> tuple[Site, dict[str, Any]]:
    site: Site = make_site(f"{backend}.sql")
    shutil.copytree(FIXTURES / f"media-{backend}", site.media)
    expected = json.loads((FIXTURES / f"expected-{backend}.json").read_text(encoding="utf-8"))
    return site, expected


def schema_differences(got: dict[str, Any], want: dict[str, Any]) -> list[Any]:
    """What differs between two schemas, column by column and constraint by constraint."""
    differences: list[Any] = []
    for table in sorted(set(got) | set(want)):
        mine, theirs = got.get(table, {}), want.get(table, {})
        for column in sorted(set(mine.get("columns", {})) | set(theirs.get("columns", {}))):
            a = mine.get("columns", {}).get(column)
            b = theirs.get("columns", {}).get(column)
            if a != b:
                differences.append((table, column, a, b))
        a_constraints = set(mine.get("constraints", []))
        b_constraints = set(theirs.get("constraints", []))
        differences += [(table, "only upgraded", c) for c in sorted(a_constraints - b_constraints)]
        differences += [(table, "only fresh", c) for c in sorted(b_constraints - a_constraints)]
    return differences


def by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def test_the_fixtures_are_2x_databases() -> None:
    """What the tests below start from: 2.x's tables and migration record, 2.x's values."""
    dump = (FIXTURES / "sqlite.sql").read_text(encoding="utf-8")
    assert "'django_remote_submission','0001_initial'" in dump
    assert "'django_remote_submission','0002" not in dump
    assert '"arguments" text NOT NULL' in dump
    assert "'[''-u'']'" in dump  # str(['-u']), as 2.x's ListField stored it
    for backend in ("sqlite", "postgresql"):
        generated = json.loads((FIXTURES / f"expected-{backend}.json").read_text())["generated"]
        assert generated["django_remote_submission"] == "2.1.0"
        assert generated["django"].startswith("2.0.")


def test_migrate_upgrades_a_2x_database_in_place(make_site: Any, backend: str) -> None:
    site, expected = site_2x(make_site, backend)

    out = site.manage("migrate", "--no-input")
    assert "Applying django_remote_submission.0007_upgrade_from_2x... OK" in out
    assert "django_remote_submission.0001_initial" not in out  # 2.x applied it already
    site.manage("check", "--fail-level", "ERROR")
    checked = site.manage(
        "makemigrations", "django_remote_submission", "--check", "--dry-run", "--no-input"
    )
    assert "No changes detected" in checked
    upgraded = site.read()
    rows = upgraded["rows"]

    # Every row is kept, with every value 2.x wrote.
    for table in ("interpreters", "servers", "jobs", "logs", "results"):
        assert len(rows[table]) == len(expected[table]), table
        got = by_id(rows[table])
        for old in expected[table]:
            new = got[old["id"]]
            for field, value in old.items():
                if (table, old["status"] if table == "jobs" else "", field) == (
                    "jobs",
                    "submitted",
                    "status",
                ):
                    continue  # checked below: it can't be followed, it ends in failure
                assert new[field] == value, (table, old["id"], field)

    # The interpreters' arguments were Python list literals; they are the same lists.
    arguments = {i["name"]: i["arguments"] for i in rows["interpreters"]}
    assert arguments["Python 3"] == ["-u"]
    assert arguments["Bash"] == []
    assert arguments["Python, quoted arguments"][-1] == (
        "import sys; print(\"it's\", 'a \\'quote\\'', sys.argv[1:])"
    )

    # The new fields have the values a 3.0 job in the same situation would have.
    jobs = {j["title"]: j for j in rows["jobs"]}
    modified = {j["title"]: j["modified"] for j in expected["jobs"]}
    for title, state in (("Reduce run 1 \u2013 caf\u00e9", "success"), ("Fails", "failure")):
        job = jobs[title]
        assert (job["status"], job["state"], job["error"]) == (state, state, "")
        assert job["finished_at"] == modified[title]
        assert job["exit_code"] is None
        assert job["started_at"] is None
    stuck = jobs["Stuck"]
    assert (stuck["status"], stuck["state"]) == ("failure", "failure")
    assert SUBMITTED_REASON in stuck["error"]
    assert stuck["finished_at"] == modified["Stuck"]
    waiting = jobs["Not yet"]
    assert (waiting["status"], waiting["state"], waiting["queued_at"]) == (
        "initial",
        "queued",
        None,
    )
    for job in rows["jobs"]:
        assert (job["stdout_offset"], job["stderr_offset"], job["lease_owner"]) == (0, 0, "")
        assert job["run_options"] == {}
    for server in rows["servers"]:
        assert (server["username"], server["host_key"]) == ("", "")

    # The result files stay readable, and get their size.
    for result in rows["results"]:
        assert result["size"] == len(result["content"].encode("utf-8"))
        assert result["checksum"] == ""

    # The same schema as a fresh install.
    fresh: Site = make_site(None, "fresh")
    fresh.manage("migrate", "--no-input")
    differences = schema_differences(upgraded["schema"], fresh.read()["schema"])
    assert not differences, "\n".join(map(repr, differences))


DEV_ROWS = """
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.loader import MigrationLoader

# The models as the development version's migrations left them: today's have more fields.
apps = MigrationLoader(connection).project_state().apps
Interpreter, Job, Log, Server = (
    apps.get_model("django_remote_submission", name)
    for name in ("Interpreter", "Job", "Log", "Server")
)
owner = User.objects.create_user("carol")
python = Interpreter.objects.create(name="Python", path="/usr/bin/python3", arguments=["-u"])
server = Server.objects.create(title="Dev", hostname="dev.example.org", username="carol")
server.interpreters.add(python)
job = Job.objects.create(title="Dev job", program="print(1)", remote_directory="/tmp/x",
    remote_filename="x.py", owner_id=owner.pk, server=server, interpreter=python,
    status="success", state="success", exit_code=0)
Log.objects.create(job=job, content="1\\n")
"""


def test_migrate_upgrades_a_database_of_a_development_version(make_site: Any) -> None:
    """The demo's database, made by 3.0's earlier first migration, reaches the same schema
    with the same ``migrate``, and keeps its rows."""
    site: Site = make_site(None)
    site.manage("migrate", "--no-input", DRS_MIGRATIONS="tests.drs2x.migrations_30dev")
    site.manage("shell", "-c", DEV_ROWS, DRS_MIGRATIONS="tests.drs2x.migrations_30dev")

    out = site.manage("migrate", "--no-input")
    assert "Applying django_remote_submission.0007_upgrade_from_2x... OK" in out
    upgraded = site.read()
    [job] = upgraded["rows"]["jobs"]
    assert (job["title"], job["status"], job["state"], job["exit_code"]) == (
        "Dev job",
        "success",
        "success",
        0,
    )
    assert job["error"] == ""  # the 2.x steps did not touch it
    [interpreter] = upgraded["rows"]["interpreters"]
    assert interpreter["arguments"] == ["-u"]
    assert [log["content"] for log in upgraded["rows"]["logs"]] == ["1\n"]

    fresh: Site = make_site(None, "fresh")
    fresh.manage("migrate", "--no-input")
    differences = schema_differences(upgraded["schema"], fresh.read()["schema"])
    assert not differences, "\n".join(map(repr, differences))


def test_arguments_that_are_no_list_literal_are_split_as_shell_words() -> None:
    """2.x refused anything but a list literal, but a row written by hand may hold other
    text: it is kept, as the shell words the 3.0 admin edits."""
    from importlib import import_module

    upgrade = import_module("django_remote_submission.migrations.0007_upgrade_from_2x")
    assert upgrade.parse_arguments("['-u']") == ["-u"]
    assert upgrade.parse_arguments("[]") == []
    assert upgrade.parse_arguments("") == []
    assert upgrade.parse_arguments("['-O', 2]") == ["-O", "2"]
    assert upgrade.parse_arguments("('-u',)") == ["-u"]
    assert upgrade.parse_arguments("-u -W 'ignore x'") == ["-u", "-W", "ignore x"]
    assert upgrade.parse_arguments("'-u'") == ["-u"]


def test_hand_made_2x_rows_are_kept_too(make_site: Any, backend: str) -> None:
    """Rows 2.x itself would not have written, but a database may hold: arguments that
    are no list literal, and two jobs sharing a uuid (2.x did not make it unique)."""
    site, expected = site_2x(make_site, backend)
    first, second = expected["jobs"][0], expected["jobs"][1]
    assert (first["id"], second["id"]) == (1, 2)
    site.execute(
        "UPDATE django_remote_submission_interpreter SET arguments = '-u -W \"ignore x\"' "
        "WHERE name = 'Bash'",
        "UPDATE django_remote_submission_interpreter SET arguments = '' WHERE name = 'Python 3'",
        "UPDATE django_remote_submission_job SET uuid = "
        "(SELECT uuid FROM django_remote_submission_job WHERE id = 1) WHERE id = 2",
    )

    site.manage("migrate", "--no-input")
    rows = site.read()["rows"]
    arguments = {i["name"]: i["arguments"] for i in rows["interpreters"]}
    assert arguments["Bash"] == ["-u", "-W", "ignore x"]
    assert arguments["Python 3"] == []
    jobs = by_id(rows["jobs"])
    assert len(jobs) == len(expected["jobs"])
    assert jobs[first["id"]]["uuid"] == first["uuid"]  # the first keeps its uuid
    assert jobs[second["id"]]["uuid"] not in (first["uuid"], second["uuid"])
    assert len({job["uuid"] for job in jobs.values()}) == len(jobs)
    # The first job's result files are where they were, readable.
    for result in rows["results"]:
        assert result["size"] == len(result["content"].encode("utf-8"))

"""The REST API of batch-scheduled servers: a job's resources are checked against its
server's limits when it is created or changed (400, in words), the scheduler's fields are
read-only, and jobs filter by their state, pending too."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from django_remote_submission.models import Job, Server
from tests.factories import make_job, make_server, make_user

pytestmark = pytest.mark.django_db

DIRECT = "This server runs jobs directly, not through a batch scheduler: it takes no resources."


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def slurm_server(**kwargs):
    values = {
        "title": "cluster",
        "scheduler": "slurm",
        "max_cpus": 4,
        "max_memory_mb": 8000,
        "max_time_limit": 60,
        "scheduler_allowed_options": "--constraint",
    }
    values.update(kwargs)
    return make_server(**values)


def new_job(server, **fields):
    """A job's body for POST /api/jobs/ on ``server``."""
    return {
        "title": "new",
        "program": "print(1)",
        "remote_directory": "/tmp/x",
        "remote_filename": "p.py",
        "server": server.pk,
        "interpreter": server.interpreters.get().pk,
        **fields,
    }


@pytest.fixture
def owner():
    return make_user("owner")


def test_resources_within_the_limits_are_stored_and_shown(owner):
    server = slurm_server()
    asked = {
        "cpus": 4,
        "memory_mb": 2000,
        "time_limit_s": 3600,
        "directives": ["--constraint=haswell"],
    }
    response = client_for(owner).post("/api/jobs/", new_job(server, resources=asked), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["resources"] == asked
    assert Job.objects.get(pk=response.json()["id"]).resources == asked


def test_a_job_that_asks_nothing_gets_empty_resources_on_any_server(owner):
    client = client_for(owner)
    for server in (slurm_server(), make_server(title="direct")):
        response = client.post("/api/jobs/", new_job(server), format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["resources"] == {}


@pytest.mark.parametrize(
    ("asked", "messages"),
    [
        (
            {"cpus": 8, "memory_mb": 9000},
            [
                "8 CPUs asked, this server allows at most 4.",
                "9000 MB of memory asked, this server allows at most 8000.",
            ],
        ),
        ({"time_limit_s": 3601}, ["3601 seconds of time asked, this server allows at most 3600."]),
        ({"cpus": 0}, ["0 CPUs asked: ask for at least 1, or leave it empty."]),
        ({"cpus": "4"}, ["CPUs must be a whole number, not '4'."]),
        (
            {"cores": 2},
            [
                "Unknown resources: cores (known: cpus, memory_mb, time_limit_s, gpus, nodes, "
                "directives)."
            ],
        ),
        (
            {"directives": ["--mail-user=me@example.com"]},
            [
                "The directive '--mail-user=me@example.com' sets --mail-user, which this "
                "server does not allow (allowed: --constraint)."
            ],
        ),
        (
            {"directives": ["--constraint=a\n#SBATCH --uid=0"]},
            [
                "The directive '--constraint=a\\n#SBATCH --uid=0' holds a newline or another "
                "control character."
            ],
        ),
        ("4 cpus", ['Resources must be an object, e.g. {"cpus": 4, "memory_mb": 2000}.']),
    ],
)
def test_resources_the_server_would_refuse_are_a_400_in_words(owner, asked, messages):
    server = slurm_server()
    response = client_for(owner).post("/api/jobs/", new_job(server, resources=asked), format="json")
    assert response.status_code == 400
    assert response.json() == {"resources": messages}
    assert not Job.objects.exists()


def test_a_direct_server_takes_no_resources(owner):
    server = make_server(title="direct")
    response = client_for(owner).post(
        "/api/jobs/", new_job(server, resources={"cpus": 2}), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"resources": [DIRECT]}


def test_changing_a_jobs_resources_or_server_is_checked_again(owner):
    server = slurm_server()
    job = make_job(owner=owner, server=server, resources={"cpus": 2})
    client = client_for(owner)
    url = f"/api/jobs/{job.pk}/"
    refused = client.patch(url, {"resources": {"cpus": 5}}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"resources": ["5 CPUs asked, this server allows at most 4."]}
    assert client.patch(url, {"resources": {"cpus": 3}}, format="json").status_code == 200
    # The resources it has are what a direct server can't give.
    direct = make_server(title="direct", interpreters=[job.interpreter])
    moved = client.patch(url, {"server": direct.pk}, format="json")
    assert moved.status_code == 400
    assert moved.json() == {"resources": [DIRECT]}
    job.refresh_from_db()
    assert (job.server, job.resources) == (server, {"cpus": 3})


def test_the_scheduler_fields_of_a_job_are_read_only(owner):
    server = slurm_server()
    since = timezone.now()
    job = make_job(
        owner=owner,
        server=server,
        state="pending",
        status="submitted",
        scheduler_job_id="1234",
        scheduler_reason="waiting for free CPUs or memory",
        pending_since=since,
    )
    client = client_for(owner)
    row = client.get(f"/api/jobs/{job.pk}/").json()
    assert row["state"] == "pending"
    assert row["status"] == "submitted"
    assert row["scheduler_job_id"] == "1234"
    assert row["scheduler_reason"] == "waiting for free CPUs or memory"
    assert row["pending_since"] == since.isoformat().replace("+00:00", "Z")
    created = client.post(
        "/api/jobs/",
        new_job(
            server,
            scheduler_job_id="99",
            scheduler_reason="forged",
            pending_since=since.isoformat(),
            state="pending",
        ),
        format="json",
    )
    assert created.status_code == 201
    stored = Job.objects.get(pk=created.json()["id"])
    assert (stored.scheduler_job_id, stored.scheduler_reason, stored.pending_since) == (
        "",
        "",
        None,
    )
    assert stored.state == "queued"


def test_jobs_filter_by_state_pending_included(owner):
    server = slurm_server()
    pending = make_job(owner=owner, server=server, state="pending", status="submitted")
    make_job(owner=owner, server=server, state="running", status="submitted")
    make_job(owner=owner, server=server)
    client = client_for(owner)
    listing = client.get("/api/jobs/", {"state": "pending"}).json()
    assert [row["id"] for row in listing["results"]] == [pending.pk]
    assert client.get("/api/jobs/", {"state": "queued"}).json()["count"] == 1
    refused = client.get("/api/jobs/", {"state": "waiting"})
    assert refused.status_code == 400
    assert list(refused.json()) == ["state"]


def test_a_server_shows_its_scheduler_and_limits_read_only(owner):
    server = slurm_server(max_gpus=2, scheduler_allowed_options="--mail-type, --constraint")
    row = client_for(owner).get(f"/api/servers/{server.pk}/").json()
    assert row["scheduler"] == "slurm"
    assert (row["max_cpus"], row["max_memory_mb"], row["max_time_limit"]) == (4, 8000, 60)
    assert (row["max_gpus"], row["max_nodes"]) == (2, None)
    assert row["scheduler_allowed_options"] == ["--constraint", "--mail-type"]
    admin = make_user("admin", is_staff=True, is_superuser=True)
    changed = client_for(admin).patch(
        f"/api/servers/{server.pk}/", {"scheduler": "direct", "max_cpus": 64}, format="json"
    )
    assert changed.status_code == 200
    server.refresh_from_db()
    assert (server.scheduler, server.max_cpus) == ("slurm", 4)
    direct = client_for(owner).get(f"/api/servers/{make_server(title='d').pk}/").json()
    assert (direct["scheduler"], direct["scheduler_allowed_options"]) == ("direct", [])


def test_a_run_its_server_would_refuse_is_a_400_before_anything_is_queued(owner):
    server = slurm_server(max_time_limit=10)
    job = make_job(owner=owner, server=server, resources={"cpus": 2})
    client = client_for(owner)
    for action in ("submit", "resubmit"):
        refused = client.post(f"/api/jobs/{job.pk}/{action}/", {"timeout": 601}, format="json")
        assert refused.status_code == 400
        assert refused.json() == {
            "timeout": ["601 seconds of time asked, this server allows at most 600."]
        }
    # A limit lowered since the job was written.
    Server.objects.filter(pk=server.pk).update(max_cpus=1)
    refused = client.post(f"/api/jobs/{job.pk}/submit/", {"timeout": 60}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"resources": ["2 CPUs asked, this server allows at most 1."]}
    job.refresh_from_db()
    assert (job.task_id, job.state) == ("", "queued")
    assert Job.objects.count() == 1

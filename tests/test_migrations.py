from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings


def run_makemigrations_check():
    out = StringIO()
    call_command("makemigrations", "django_remote_submission", "--check", "--dry-run", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_migrations_match_the_models():
    assert "No changes detected" in run_makemigrations_check()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "auto_field", ["django.db.models.BigAutoField", "django.db.models.SmallAutoField"]
)
def test_migrations_do_not_depend_on_the_projects_default_auto_field(auto_field):
    with override_settings(DEFAULT_AUTO_FIELD=auto_field):
        assert "No changes detected" in run_makemigrations_check()

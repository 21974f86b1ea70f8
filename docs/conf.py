"""Sphinx configuration for the django-remote-submission documentation."""

import os
import sys
from pathlib import Path

import django

# autodoc imports the package, and the package's models need a configured Django.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()

import django_remote_submission  # noqa: E402

project = "django-remote-submission"
author = "django-remote-submission developers"
copyright = "django-remote-submission developers"
release = django_remote_submission.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

# The docs are built without network access, so nothing is fetched.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

root_doc = "index"
exclude_patterns = ["_build"]
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = f"{project} {release}"

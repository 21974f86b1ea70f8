"""The app's routes under their namespace, for tests/test_public_surface.py."""

from django.urls import include, path

from django_remote_submission.urls import namespaced

urlpatterns = [path("api/", include(namespaced))]

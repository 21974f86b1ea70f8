"""The API's routes (2.x's servers/, jobs/, logs/, results/, plus interpreters/) and schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from django_remote_submission.api import views

# No namespace: the 2.x route names (job-list, job-detail, ...) keep working.
router = DefaultRouter()
router.register("servers", views.ServerViewSet, basename="server")
router.register("interpreters", views.InterpreterViewSet, basename="interpreter")
router.register("jobs", views.JobViewSet, basename="job")
router.register("logs", views.LogViewSet, basename="log")
router.register("results", views.ResultViewSet, basename="result")

urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(
            urlconf=router.urls,
            # Request bodies get components of their own (JobRequest ...): without the
            # read-only fields, and with the rules only writes have (no blank title).
            custom_settings={"COMPONENT_SPLIT_REQUEST": True},
        ),
        name="remote-submission-schema",
    ),
    path("", include(router.urls)),
]

"""The example's addresses: those of 2.x (/admin/, /example/, /logs/<pk>/, the REST API)
plus login, logout and a new-job form."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from server import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="example"), name="index"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("example/", views.ExampleJobStatusView.as_view(), name="example"),
    path("jobs/new/", views.NewJobView.as_view(), name="new-job"),
    path("logs/<int:job_pk>/", views.ExampleJobLogView.as_view(), name="logs"),
    path("logs/<int:job_pk>/cancel/", views.CancelJobView.as_view(), name="cancel-job"),
    # The app's REST API (servers/, jobs/, logs/, results/, ...) and job-user-status/.
    path("api/", include("django_remote_submission.urls")),
    path("api-auth/", include("rest_framework.urls")),
]

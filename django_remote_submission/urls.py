"""The app's HTTP routes: the REST API of 2.x (servers/, jobs/, logs/, results/ ...).

urlpatterns = [path("", include("django_remote_submission.urls"))]
"""

from django.urls import path

from django_remote_submission.api.urls import urlpatterns as api_urlpatterns
from django_remote_submission.views import JobUserStatusView

urlpatterns = [
    *api_urlpatterns,
    path("job-user-status/", JobUserStatusView.as_view(), name="job-user-status"),
]

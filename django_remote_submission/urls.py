"""The app's HTTP routes: the REST API of 2.x (servers/, jobs/, logs/, results/ ...).

With the 2.x route names, global (``job-list``, ``job-detail``...)::

    urlpatterns = [path("api/", include("django_remote_submission.urls"))]

or under the namespace ``remote_submission`` (``remote_submission:job-list``...)::

    from django_remote_submission.urls import namespaced

    urlpatterns = [path("api/", include(namespaced))]
"""

from django.urls import path

from django_remote_submission.api.urls import urlpatterns as api_urlpatterns
from django_remote_submission.views import JobLogDownloadView, JobUserStatusView

urlpatterns = [
    *api_urlpatterns,
    path("job-user-status/", JobUserStatusView.as_view(), name="job-user-status"),
    path("jobs/<int:job_pk>/log.txt", JobLogDownloadView.as_view(), name="job-log-download"),
]

#: The same routes, for ``include()``, under the application and instance namespace
#: ``remote_submission``.
namespaced = (urlpatterns, "remote_submission")

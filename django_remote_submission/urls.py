"""The app's HTTP routes: the REST API of 2.x (servers/, jobs/, logs/, results/ ...).

urlpatterns = [path("", include("django_remote_submission.urls"))]
"""

from django_remote_submission.api.urls import urlpatterns

__all__ = ["urlpatterns"]

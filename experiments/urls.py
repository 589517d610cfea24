from django.urls import include, path

from experiments.api.views import HealthView

urlpatterns = [
    path("api/", include("experiments.api.urls")),
    path("health", HealthView.as_view(), name="health"),
]

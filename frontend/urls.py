from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.tuner, name="tuner"),
    path("history/", views.history, name="history"),
    path("runs/<int:experiment_id>/", views.run_detail, name="run-detail"),
    path("sweeps/", views.sweeps, name="sweeps"),
    path("sweeps/<int:sweep_id>/", views.sweep_detail, name="sweep-detail"),
    path("tokens/", views.tokens, name="tokens"),
    path("lab/", views.lab, name="lab"),
]

"""Websocket routes (mounted under AuthMiddlewareStack in tuner_site/asgi.py)."""

from django.urls import path

from experiments import consumers, lab_consumers

websocket_urlpatterns = [
    path("ws/experiments/<int:experiment_id>/", consumers.ExperimentConsumer.as_asgi()),
    path("ws/experiments/", consumers.UserExperimentsConsumer.as_asgi()),
    path("ws/lab/", lab_consumers.LabStatusConsumer.as_asgi()),
    path("ws/sweeps/<int:sweep_id>/", consumers.SweepConsumer.as_asgi()),
]

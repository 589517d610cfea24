"""GET /api/lab/status/: the lab as a whole, for staff (experiments/selectors_lab.py).

Same conventions as views.py: the query is validated (unknown or malformed parameters are a 400),
one selector reads, the output serializer documents the shape for OpenAPI and passes the
selector's document through unchanged. Anonymous: 401; logged in but not staff: 403.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from experiments import selectors_lab
from experiments.api import serializers as s
from experiments.api.views import UNAUTHENTICATED, ApiView
from experiments.models import Experiment


class LabStatusQuerySerializer(s.StrictInputSerializer):
    failures = serializers.IntegerField(
        required=False, min_value=1, max_value=selectors_lab.MAX_FAILURES, default=selectors_lab.DEFAULT_FAILURES,
        help_text="How many recent failures to list (newest first).")
    hours = serializers.IntegerField(
        required=False, min_value=1, max_value=selectors_lab.MAX_FAILURE_HOURS,
        default=selectors_lab.DEFAULT_FAILURE_HOURS, help_text="How far back failures are listed, in hours.")


class LabRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(help_text="The owner's username.")
    status = serializers.CharField()
    epochs_done = serializers.IntegerField()
    epochs = serializers.IntegerField(allow_null=True, help_text="Epochs of the run's config.")
    progress = serializers.FloatField(allow_null=True, help_text="epochs_done / epochs, 0-1.")
    best_val_accuracy = serializers.FloatField(allow_null=True)
    sweep = serializers.IntegerField(allow_null=True)
    worker_host = serializers.CharField(allow_blank=True, help_text="host:pid of the process training it.")
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True, help_text="The run's last sign of life.")
    attempts = serializers.IntegerField()


class LabWorkerSerializer(serializers.Serializer):
    nodename = serializers.CharField(help_text="Celery's node name.")
    hostname = serializers.CharField()
    pid = serializers.IntegerField(help_text="The worker's main process.")
    pids = serializers.ListField(child=serializers.IntegerField(), help_text="Its training processes.")
    concurrency = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    last_seen = serializers.DateTimeField(help_text="Its last heartbeat.")
    seconds_since_seen = serializers.FloatField()
    online = serializers.BooleanField(help_text="Seen within offline_after_seconds.")
    current_runs = LabRunSerializer(many=True)


class LabFailureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    owner = serializers.CharField()
    status = serializers.CharField(help_text="failed or diverged.")
    reason = serializers.CharField(help_text="The run's error message, else its message.")
    finished_at = serializers.DateTimeField(allow_null=True)
    worker_host = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    epochs_done = serializers.IntegerField()
    sweep = serializers.IntegerField(allow_null=True)


class LabStorageUserSerializer(serializers.Serializer):
    user = serializers.CharField()
    storage_bytes = serializers.IntegerField()
    run_count = serializers.IntegerField()
    fraction_of_limit = serializers.FloatField(allow_null=True)


class LabStorageSerializer(serializers.Serializer):
    limit_bytes = serializers.IntegerField(allow_null=True, help_text="Per user; null = unlimited.")
    total_bytes = serializers.IntegerField()
    users = LabStorageUserSerializer(many=True, help_text=f"The {selectors_lab.STORAGE_USERS} users storing most.")


class LabHealthSerializer(serializers.Serializer):
    database = serializers.BooleanField()
    redis = serializers.BooleanField()
    workers_responding = serializers.IntegerField(
        allow_null=True, help_text="Workers answering a broadcast ping (as /health; null if it failed).")


class LabQueueSerializer(serializers.Serializer):
    broker_length = serializers.IntegerField(allow_null=True, help_text="Messages waiting in the broker queue.")
    queued_runs = serializers.IntegerField(help_text="Runs in status queued.")


class LabStatusOutputSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    heartbeat_seconds = serializers.FloatField(help_text="TUNER_WORKER_HEARTBEAT_SECONDS.")
    offline_after_seconds = serializers.FloatField()
    health = LabHealthSerializer()
    queue = LabQueueSerializer()
    workers_online = serializers.IntegerField()
    workers = LabWorkerSerializer(many=True, help_text="Online first.")
    unattributed_runs = LabRunSerializer(many=True, help_text="Running runs whose process matches no heartbeat.")
    runs_by_state = serializers.DictField(child=serializers.IntegerField(),
                                          help_text="Runs per status: " + ", ".join(Experiment.Status.values) + ".")
    recent_failures = LabFailureSerializer(many=True)
    failure_hours = serializers.IntegerField()
    storage = LabStorageSerializer()

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        return instance  # the selector's document, already JSON-ready


class LabStatusView(ApiView):
    permission_classes = [IsAdminUser]

    @extend_schema(tags=["lab"], parameters=[LabStatusQuerySerializer],
                   responses={200: LabStatusOutputSerializer,
                              400: OpenApiResponse(description="A malformed or unknown query parameter."),
                              401: UNAUTHENTICATED,
                              403: OpenApiResponse(s.ErrorDetailSerializer, description="Not staff.")},
                   summary="Lab status (staff): workers, queue, runs per state, recent failures, storage per user")
    def get(self, request):
        query = LabStatusQuerySerializer(data={name: value for name, value in request.query_params.items()
                                               if name != "format"})  # ?format= is DRF's own
        query.is_valid(raise_exception=True)
        document = selectors_lab.lab_status(failures=query.validated_data["failures"],
                                            failure_hours=query.validated_data["hours"])
        return Response(LabStatusOutputSerializer(document).data)

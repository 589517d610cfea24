"""REST API of sweeps: create, list, inspect, cancel, extend, retry a trial, download the trials.

Same conventions as views.py: input serializers check shapes, one service or selector call
does the work, services.ServiceError becomes its HTTP answer, and other users' sweeps are 404.
A sweep's semantic checks (the space against training.config, budget, parallelism, ...)
happen all at once in the service, so a 400 lists every problem:
{"space": {"learning_rate": ["..."]}, "budget": ["..."]}.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, renderers, serializers, status
from rest_framework.response import Response

from experiments import live_sweeps, selectors, services
from experiments.api import serializers as s
from experiments.api.parsers import LimitedJSONParser
from experiments.api.views import (
    NOT_FOUND,
    QUOTA,
    STORAGE_FULL,
    UNAUTHENTICATED,
    ApiView,
    ExperimentPagination,
)
from experiments.errors import SweepInvalid
from experiments.models import Experiment, Sweep
from experiments.search.space import DEFAULT_PARALLELISM
from tuner_site.throttling import WriteScopedRateThrottle

SWEEP_NOT_FOUND = OpenApiResponse(s.ErrorDetailSerializer, description="No such sweep (or trial) among yours.")
SWEEP_CONFLICT = OpenApiResponse(s.ErrorDetailSerializer, description="The sweep's state does not allow this.")

# --------------------------------------------------------------------------- serializers


@extend_schema_field({"type": "object", "additionalProperties": {"type": "object"},
                      "example": {"learning_rate": {"low": 0.0001, "high": 0.1, "scale": "log"},
                                  "hidden_layers": {"values": [[64], [128], [256, 128]]},
                                  "optimizer": {"values": ["adam", "sgd"]}}})
class SpaceField(serializers.JSONField):
    """{field: {"values": [...]}} or {field: {"low": x, "high": y, "scale": "linear"|"log", "type": "int"|"float"}}."""


class SweepCreateInputSerializer(s.StrictInputSerializer):
    """Shapes only; the service validates the values (and reports every problem at once)."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    base_config = s.ConfigField(required=False, default=None,
                                help_text="The config every trial starts from; missing fields take defaults.")
    space = SpaceField(help_text="The fields to vary: a list of values, or a low/high range.")
    strategy = serializers.CharField(required=False, default="tpe",
                                     help_text="grid, random, tpe or qmc.")
    budget = serializers.IntegerField(required=False, allow_null=True, default=None,
                                      help_text="Most trials (1-200); a grid defaults to its size, others to 20.")
    parallelism = serializers.IntegerField(required=False, default=DEFAULT_PARALLELISM,
                                           help_text="Most trials queued or running at once (1-8).")
    pruner = serializers.CharField(required=False, default="none", help_text="none, median or asha.")
    second_objective = serializers.CharField(required=False, default="none",
                                             help_text="none, seconds or parameters (minimised; gives a Pareto "
                                                       "front).")
    seed = serializers.IntegerField(required=False, allow_null=True, default=None,
                                    help_text="Seeds the sampler; random (and stored) when omitted.")
    warm_start = serializers.BooleanField(required=False, default=False,
                                          help_text="Import your earlier matching runs as completed trials.")
    diagnostic_pruning = s.StrictBooleanField(
        required=False, default=False,
        help_text="Also prune trials at a critical live diagnosis (divergence, not learning), with the reason.")


class SweepExtendInputSerializer(s.StrictInputSerializer):
    budget = serializers.IntegerField(help_text="The new budget, above the current one.")


SWEEP_STATUS_HELP = "One of " + ", ".join(Sweep.Status.values) + "."


class SweepListFilterSerializer(serializers.Serializer):
    # Plain strings (not an enum): "status" already names the runs' status enum in the schema.
    status = serializers.CharField(required=False, help_text="Only sweeps in this status: " + SWEEP_STATUS_HELP)

    def validate_status(self, value: str) -> str:
        if value not in Sweep.Status.values:
            raise serializers.ValidationError(f"Unknown status {value!r}; {SWEEP_STATUS_HELP}")
        return value


class SweepListOutputSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text=SWEEP_STATUS_HELP)
    trial_count = serializers.IntegerField(read_only=True)
    best_trial = serializers.IntegerField(source="best_trial_id", read_only=True, allow_null=True)
    best_value = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = ("id", "name", "status", "strategy", "pruner", "second_objective", "budget", "parallelism",
                  "trial_count", "best_trial", "best_value", "created_at", "finished_at")
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_best_value(self, sweep: Sweep) -> float | None:
        return sweep.best_trial.best_val_accuracy if sweep.best_trial_id and sweep.best_trial else None


class SweepTrialOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The trial's run (GET /api/experiments/<id>/).")
    trial_number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Experiment.Status.choices)
    params = serializers.DictField(help_text="The trial's values of the varied fields.")
    best_val_accuracy = serializers.FloatField(allow_null=True)
    test_accuracy = serializers.FloatField(allow_null=True)
    epochs_done = serializers.IntegerField()
    seconds = serializers.FloatField(help_text="Training time (sum of its epochs).")
    parameters = serializers.IntegerField(allow_null=True, help_text="Trainable parameters of its network.")
    pruned = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)


class BestSoFarSerializer(serializers.Serializer):
    trial_number = serializers.IntegerField()
    value = serializers.FloatField(help_text="The best val accuracy of trials 1..trial_number.")


# The sweep's trials counted per run status (one field each), plus these totals.
SweepCountsSerializer = type("SweepCountsSerializer", (serializers.Serializer,), {
    **{status: serializers.IntegerField() for status in Experiment.Status.values},
    "total": serializers.IntegerField(),
    "active": serializers.IntegerField(help_text="Queued + running."),
    "remaining": serializers.IntegerField(help_text="Trials still to create."),
    "__module__": __name__,
})


class SweepDetailOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField(help_text=SWEEP_STATUS_HELP)
    strategy = serializers.ChoiceField(choices=Sweep.Strategy.choices)
    objective = serializers.CharField(help_text="Maximised: each trial's best validation accuracy.")
    second_objective = serializers.ChoiceField(choices=Sweep.SecondObjective.choices)
    pruner = serializers.ChoiceField(choices=Sweep.Pruner.choices)
    budget = serializers.IntegerField()
    parallelism = serializers.IntegerField()
    seed = serializers.IntegerField()
    warm_start = serializers.BooleanField()
    warm_start_runs = serializers.ListField(child=serializers.IntegerField(),
                                            help_text="Earlier runs imported as completed trials.")
    space = SpaceField()
    base_config = s.ConfigOutputField()
    message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    trials = SweepTrialOutputSerializer(many=True)
    best_trial = serializers.IntegerField(allow_null=True, help_text="The run with the best val accuracy.")
    best_value = serializers.FloatField(allow_null=True)
    pareto_front = serializers.ListField(child=serializers.IntegerField(),
                                         help_text="Runs not beaten on both objectives (with a second objective).")
    best_so_far = BestSoFarSerializer(many=True)
    importance = serializers.DictField(child=serializers.FloatField(), allow_null=True,
                                       help_text="Share of the accuracy's variation per field (PED-ANOVA); null "
                                                 "until 4 trials succeeded with 2+ varied fields.")
    warnings = serializers.ListField(child=serializers.CharField(),
                                     help_text='e.g. "widen learning_rate above 0.1 ..." when the best trials '
                                               "sit at an edge of a range.")
    counts = SweepCountsSerializer()
    time_budget_seconds = serializers.IntegerField(allow_null=True, help_text="Wall-clock budget, or null.")
    autotune = serializers.JSONField(allow_null=True, help_text="Tune for me: its plan (minutes, fixed, rungs), "
                                                                "or null for an ordinary sweep.")
    anytime = serializers.ListField(
        child=serializers.DictField(), help_text="Best val and test accuracy so far vs seconds since the start: "
                                                 "[{seconds, best_val_accuracy, best_test_accuracy, trial_number}].")

    def to_representation(self, instance: Sweep) -> dict[str, Any]:
        # The one wire format (experiments/live_sweeps.py): also the websocket snapshot's `sweep`.
        return live_sweeps.sweep_detail(instance)


class SweepCreateErrorSerializer(serializers.Serializer):
    space = serializers.JSONField(required=False, help_text="{field: [messages]}, or [messages] for the whole space.")
    base_config = serializers.JSONField(required=False, help_text="{field: [messages]}.")
    budget = serializers.ListField(child=serializers.CharField(), required=False)
    parallelism = serializers.ListField(child=serializers.CharField(), required=False)
    strategy = serializers.ListField(child=serializers.CharField(), required=False)
    pruner = serializers.ListField(child=serializers.CharField(), required=False)
    second_objective = serializers.ListField(child=serializers.CharField(), required=False)
    seed = serializers.ListField(child=serializers.CharField(), required=False)
    warm_start = serializers.ListField(child=serializers.CharField(), required=False)
    name = serializers.ListField(child=serializers.CharField(), required=False)


SWEEP_INVALID = OpenApiResponse(
    SweepCreateErrorSerializer, description="Invalid input; every problem is listed.",
    examples=[OpenApiExample("Invalid space", value={
        "space": {"l2": ["A log scale needs low > 0, got 0."],
                  "optimizer": ['optimizer is a choice field: list its options as values, e.g. '
                                '{"values": ["sgd", "momentum"]}.']},
        "budget": ["Must be a whole number from 1 to 200, got 500."]})])
BUDGET_INVALID = OpenApiResponse(SweepCreateErrorSerializer, description="Invalid budget.")

# --------------------------------------------------------------------------- views


class TrialsCSVRenderer(renderers.BaseRenderer):
    """{"columns", "rows"} as CSV; anything else (an error) as JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict) and "rows" in data:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=data["columns"], extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(data["rows"])
            return out.getvalue().encode(self.charset)
        return renderers.JSONRenderer().render(data, accepted_media_type, renderer_context)


class SweepApiView(ApiView):
    def handle_exception(self, exc):
        if isinstance(exc, SweepInvalid):
            exc = exceptions.ValidationError(exc.errors)
        return super().handle_exception(exc)

    def get_sweep(self, sweep_id: int) -> Sweep:
        sweep = selectors.sweep_get(user=self.request.user, sweep_id=sweep_id)
        if sweep is None:
            raise exceptions.NotFound(f"You have no sweep #{sweep_id}.")
        return sweep

    def detail(self, sweep: Sweep, code: int = status.HTTP_200_OK) -> Response:
        sweep.refresh_from_db()
        return Response(SweepDetailOutputSerializer(sweep).data, status=code)


class SweepListCreateView(SweepApiView):
    throttle_classes = [WriteScopedRateThrottle]  # writes only: listing stays unthrottled
    throttle_scope = "sweep_write"

    parser_classes = [LimitedJSONParser]
    pagination_class = ExperimentPagination

    @extend_schema(tags=["sweeps"], parameters=[SweepListFilterSerializer],
                   responses={200: SweepListOutputSerializer(many=True), 401: UNAUTHENTICATED},
                   summary="Your sweeps, newest first")
    def get(self, request):
        filters = SweepListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.sweep_list(user=request.user, status=filters.validated_data.get("status"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(SweepListOutputSerializer(page, many=True).data)

    @extend_schema(tags=["sweeps"], request=SweepCreateInputSerializer,
                   responses={201: SweepDetailOutputSerializer, 400: SWEEP_INVALID, 401: UNAUTHENTICATED,
                              409: STORAGE_FULL, 429: QUOTA},
                   summary="Start a sweep: trials searched by grid, random, TPE or QMC, optionally pruned")
    def post(self, request):
        serializer = SweepCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sweep = services.sweep_create(owner=request.user, **serializer.validated_data)
        return self.detail(sweep, status.HTTP_201_CREATED)


class SweepDetailView(SweepApiView):
    @extend_schema(tags=["sweeps"], responses={200: SweepDetailOutputSerializer, 401: UNAUTHENTICATED,
                                               404: SWEEP_NOT_FOUND},
                   summary="One sweep: trials, best, Pareto front, best-so-far curve, importance, warnings")
    def get(self, request, sweep_id: int):
        return self.detail(self.get_sweep(sweep_id))


class SweepCancelView(SweepApiView):
    @extend_schema(tags=["sweeps"], request=None,
                   responses={200: SweepDetailOutputSerializer, 401: UNAUTHENTICATED, 404: SWEEP_NOT_FOUND,
                              409: SWEEP_CONFLICT},
                   summary="Cancel the sweep: queued trials at once, running ones within a mini-batch")
    def post(self, request, sweep_id: int):
        return self.detail(services.sweep_cancel(sweep=self.get_sweep(sweep_id)))


class SweepExtendView(SweepApiView):
    throttle_classes = [WriteScopedRateThrottle]  # writes only: listing stays unthrottled
    throttle_scope = "sweep_write"

    parser_classes = [LimitedJSONParser]

    @extend_schema(tags=["sweeps"], request=SweepExtendInputSerializer,
                   responses={200: SweepDetailOutputSerializer, 400: BUDGET_INVALID, 401: UNAUTHENTICATED,
                              404: SWEEP_NOT_FOUND, 409: SWEEP_CONFLICT},
                   summary="Raise the budget; the search continues from what its trials taught it")
    def post(self, request, sweep_id: int):
        sweep = self.get_sweep(sweep_id)
        serializer = SweepExtendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.detail(services.sweep_extend(sweep=sweep, budget=serializer.validated_data["budget"]))


class SweepTrialRetryView(SweepApiView):
    @extend_schema(tags=["sweeps"], request=None,
                   responses={200: s.ExperimentDetailOutputSerializer, 401: UNAUTHENTICATED,
                              404: SWEEP_NOT_FOUND, 409: SWEEP_CONFLICT},
                   summary="Queue a failed or cancelled trial again (it trains again from its first epoch)")
    def post(self, request, sweep_id: int, experiment_id: int):
        sweep = self.get_sweep(sweep_id)
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        if experiment is None or experiment.sweep_id != sweep.pk:
            raise exceptions.NotFound(f"Sweep #{sweep.pk} has no trial run #{experiment_id}.")
        experiment = services.sweep_trial_retry(sweep=sweep, experiment=experiment)
        return Response(self.detail_data(experiment))


class SweepTrialsCSVView(SweepApiView):
    renderer_classes = [TrialsCSVRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and getattr(response, "exception", False):
            request.accepted_renderer = renderers.JSONRenderer()  # errors are JSON
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(tags=["sweeps"],
                   responses={(200, "text/csv"): OpenApiResponse(
                       OpenApiTypes.STR, description="Header: trial_number, experiment_id, status, one column per "
                                                     "varied field, best_val_accuracy, test_accuracy, epochs_done, "
                                                     "seconds, parameters, message; one row per trial."),
                              (401, "application/json"): UNAUTHENTICATED,
                              (404, "application/json"): SWEEP_NOT_FOUND},
                   summary="Every trial of the sweep as CSV")
    def get(self, request, sweep_id: int):
        sweep = self.get_sweep(sweep_id)
        columns, rows = selectors.sweep_trials_table(sweep=sweep)
        data: dict[str, Any] = {"columns": columns, "rows": rows}
        return Response(data, headers={
            "Content-Disposition": f'attachment; filename="sweep-{sweep.pk}-trials.csv"'})


__all__ = ["NOT_FOUND", "SweepCancelView", "SweepDetailView", "SweepExtendView", "SweepListCreateView",
           "SweepTrialRetryView", "SweepTrialsCSVView"]


class AutotuneInputSerializer(s.StrictInputSerializer):
    """Tune for me: a wall-clock budget and optional fixed fields; the service checks the values."""

    minutes = serializers.FloatField(help_text="The wall-clock budget, 1 to 1440 minutes.")
    fixed = serializers.JSONField(required=False, default=None,
                                  help_text='Fields kept as given, e.g. {"activation": "tanh"}.')
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    parallelism = serializers.IntegerField(required=False, default=DEFAULT_PARALLELISM, min_value=1,
                                           max_value=Sweep.MAX_PARALLELISM)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)


class AutotuneErrorSerializer(serializers.Serializer):
    minutes = serializers.ListField(child=serializers.CharField(), required=False)
    fixed = serializers.ListField(child=serializers.CharField(), required=False)


class AutotuneView(SweepApiView):
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "sweep_write"
    parser_classes = [LimitedJSONParser]

    @extend_schema(tags=["sweeps"], request=AutotuneInputSerializer,
                   responses={201: SweepDetailOutputSerializer,
                              400: OpenApiResponse(AutotuneErrorSerializer, description="Invalid input."),
                              401: UNAUTHENTICATED, 409: STORAGE_FULL, 429: QUOTA},
                   summary="Tune for me: the best network the lab finds in a wall-clock budget (a sweep)")
    def post(self, request):
        serializer = AutotuneInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        from experiments.services.autotune import autotune_create

        sweep = autotune_create(owner=request.user, **serializer.validated_data)
        return self.detail(sweep, status.HTTP_201_CREATED)

"""REST API of Find the fix: queue a run's fix sweep, and read its fix sweeps.

    POST /api/experiments/<id>/find-fix/   -> 201 the new fix sweep, or 200 the one already active
    GET  /api/experiments/<id>/fixes/      -> the run's fix sweeps, newest first

Same conventions as views.py and sweep_views.py: the body is checked for its shape (none is
needed: an empty body or {}), one service call does the work, a refusal (run not finished,
nothing to try, storage full) becomes its HTTP answer, and other users' runs are 404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from experiments import selectors
from experiments.api import serializers as s
from experiments.api.parsers import LimitedJSONParser
from experiments.api.views import NOT_FOUND, UNAUTHENTICATED, ApiView
from experiments.models import Experiment, Sweep
from experiments.services.fixes import experiment_find_fix
from tuner_site.throttling import WriteScopedRateThrottle

FIX_CONFLICT = OpenApiResponse(
    s.ErrorDetailSerializer, description="The run has not finished (or did not train), its advice proposes no "
                                         "change to try, or your runs' files reached your storage limit.")


class FixCandidateOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="The candidate's trial number in the fix sweep.")
    kind = serializers.CharField(help_text="The advice it comes from, e.g. lr_too_high, or a+b when combined.")
    title = serializers.CharField()
    changes = serializers.DictField(help_text="Config changes tried on the parent's config (same seed and data).")
    trial = serializers.IntegerField(allow_null=True, help_text="The trial's run, once created.")
    status = serializers.CharField(help_text="The trial's run status, or 'waiting' before it is created.")
    best_val_accuracy = serializers.FloatField(allow_null=True)
    epochs_done = serializers.IntegerField()
    epochs = serializers.IntegerField(allow_null=True)
    gain_points = serializers.FloatField(
        allow_null=True, help_text="Best val accuracy minus the parent's, in percentage points (a diverged trial "
                                   "counts as 0 %); null until the trial finished on its own.")


class FixSweepOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The fix sweep (GET /api/sweeps/<id>/).")
    name = serializers.CharField()
    status = serializers.CharField(help_text="The fix sweep's status: " + ", ".join(Sweep.Status.values) + ".")
    message = serializers.CharField(allow_blank=True)
    parent = serializers.IntegerField(help_text="The run being fixed.")
    parent_best_val_accuracy = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    candidates = FixCandidateOutputSerializer(many=True)
    winner = serializers.IntegerField(allow_null=True,
                                      help_text="Index in `candidates` of the measured winner, once concluded.")
    recommendation = serializers.IntegerField(
        allow_null=True, help_text="The verified_fix / verified_none recommendation written on the parent.")
    fix_result = serializers.JSONField(allow_null=True,
                                       help_text="The stored verdict once every trial ended (null before).")


class FixApiView(ApiView):
    def fix_data(self, sweep: Sweep) -> dict:
        sweep = Sweep.objects.select_related("fix_of").get(pk=sweep.pk)
        return FixSweepOutputSerializer(selectors.fix_sweep_payload(sweep=sweep)).data


class ExperimentFindFixView(FixApiView):
    throttle_classes = [WriteScopedRateThrottle]  # like every sweep write
    throttle_scope = "sweep_write"
    parser_classes = [LimitedJSONParser]

    @extend_schema(tags=["experiments"], request=s.EmptyInputSerializer,
                   responses={201: FixSweepOutputSerializer,
                              200: OpenApiResponse(FixSweepOutputSerializer,
                                                   description="The run's fix sweep already under way."),
                              400: OpenApiResponse(s.ErrorDetailSerializer, description="A malformed body."),
                              401: UNAUTHENTICATED, 404: NOT_FOUND, 409: FIX_CONFLICT,
                              429: OpenApiResponse(s.ErrorDetailSerializer, description="Throttled.")},
                   summary="Find the fix: try the run's advice as 2-4 candidate changes on its seed and data")
    def post(self, request, experiment_id: int):
        experiment: Experiment = self.get_experiment(experiment_id)
        s.EmptyInputSerializer(data=request.data).is_valid(raise_exception=True)
        sweep, created = experiment_find_fix(experiment=experiment, owner=request.user)
        return Response(self.fix_data(sweep), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ExperimentFixesView(FixApiView):
    @extend_schema(tags=["experiments"],
                   responses={200: FixSweepOutputSerializer(many=True), 401: UNAUTHENTICATED, 404: NOT_FOUND},
                   summary="The run's Find-the-fix sweeps: candidates, their status and measured gains, the verdict")
    def get(self, request, experiment_id: int):
        experiment = self.get_experiment(experiment_id)
        rows = [selectors.fix_sweep_payload(sweep=sweep) for sweep in selectors.experiment_fix_sweeps(
            experiment=experiment)]
        return Response(FixSweepOutputSerializer(rows, many=True).data)


__all__ = ["ExperimentFindFixView", "ExperimentFixesView"]

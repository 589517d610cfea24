"""REST API views: validate input with a serializer, call one service or selector, serialize output.

Domain refusals (ServiceError) become HTTP answers in `ApiView.handle_exception`:
ConfigInvalid -> 400 {"config": {field: [messages]}}, QuotaExceeded -> 429, InvalidState and
StorageLimitExceeded -> 409, each other one -> its `status_code` with {"detail": message}. Runs
of other users are 404.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import exceptions, renderers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments import health, live, selectors, services, storage
from experiments.api import serializers as s
from experiments.api.authentication import TokenAuthentication
from experiments.api.parsers import LimitedJSONParser
from experiments.errors import ConfigInvalid, ServiceError
from experiments.models import Experiment
from experiments.services import tokens
from training.config import config_schema
from tuner_site.auth import lockout_message, lockout_seconds
from tuner_site.throttling import WriteScopedRateThrottle

# --------------------------------------------------------------------------- plumbing


class ServiceRefused(exceptions.APIException):
    """A ServiceError on its way to DRF's exception handler."""

    def __init__(self, error: ServiceError):
        self.status_code = error.status_code
        if isinstance(error, ConfigInvalid) and error.errors:
            detail: Any = {"config": error.errors}
        else:
            detail = error.message
        super().__init__(detail)


class CSVRenderer(renderers.BaseRenderer):
    """Renders the list of epochs as CSV: a header row of METRIC_COLUMNS, one row per epoch."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=live.METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(data or [])
        return out.getvalue().encode(self.charset)


class FormatNegotiation(DefaultContentNegotiation):
    """`?format=` picks its renderer whatever the Accept header says; an unknown format is a 400."""

    def select_renderer(self, request, renderers, format_suffix=None):
        param = self.settings.URL_FORMAT_OVERRIDE
        wanted = format_suffix or (request.query_params.get(param) if param else None)
        if wanted:
            for renderer in renderers:
                if renderer.format == wanted:
                    return renderer, renderer.media_type
            formats = ", ".join(renderer.format for renderer in renderers)
            raise exceptions.ValidationError({param or "format": [f"Unknown format {wanted!r}; use {formats}."]})
        return super().select_renderer(request, renderers, format_suffix)


class ApiView(APIView):
    # Token first: an anonymous request gets 401 with "WWW-Authenticate: Token"; the browser's
    # session (with CSRF checks on writes) works as well.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    content_negotiation_class = FormatNegotiation

    def handle_exception(self, exc):
        if isinstance(exc, ServiceError):
            exc = ServiceRefused(exc)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors, and anything else that is not a list of epochs (e.g. OPTIONS metadata), are JSON
        # even when the request asked for CSV: the CSV renderer only knows epochs.
        if isinstance(response, Response) and (getattr(response, "exception", False)
                                               or not isinstance(response.data, list)):
            if isinstance(getattr(request, "accepted_renderer", None), CSVRenderer):
                request.accepted_renderer = renderers.JSONRenderer()
                request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def get_experiment(self, experiment_id: int) -> Experiment:
        experiment = selectors.experiment_get(user=self.request.user, experiment_id=experiment_id)
        if experiment is None:
            raise exceptions.NotFound(f"You have no run #{experiment_id}.")
        return experiment

    def detail_data(self, experiment: Experiment) -> dict[str, Any]:
        return s.ExperimentDetailOutputSerializer(experiment, context={"request": self.request}).data


class ExperimentPagination(LimitOffsetPagination):
    """limit/offset paging; limit is capped at 200, and a malformed limit or offset is a 400."""

    default_limit = 50
    max_limit = 200

    def _param(self, request, name: str, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise exceptions.ValidationError({name: [f"Must be a whole number of at least {minimum}."]})
        return value

    def get_limit(self, request):
        value = self._param(request, self.limit_query_param, 1)
        return self.default_limit if value is None else min(value, self.max_limit)

    def get_offset(self, request):
        return self._param(request, self.offset_query_param, 0) or 0


NOT_FOUND = OpenApiResponse(s.ErrorDetailSerializer, description="No such run among yours.")
UNAUTHENTICATED = OpenApiResponse(s.ErrorDetailSerializer, description="Not logged in / no valid token.")
QUOTA = OpenApiResponse(s.ErrorDetailSerializer, description="Too many of your runs are queued or running.")
STORAGE_FULL = OpenApiResponse(
    s.ErrorDetailSerializer, description="Your runs' files reached your storage limit (or this run's weights "
                                         "alone would exceed it): delete runs you no longer need.")
CONFLICT = OpenApiResponse(s.ErrorDetailSerializer, description="The run's state does not allow this.")
CONFIG_INVALID = OpenApiResponse(
    s.ExperimentCreateErrorSerializer, description="Invalid input; every invalid field is listed.",
    examples=[OpenApiExample("Invalid config", value={"config": {
        "learning_rate": ["Value must be greater than 0 and at most 10, got -1."],
        "optimizer": ["Must be one of sgd, momentum, rmsprop, adam; got \"lbfgs\"."]}})],
)
# The answers of every endpoint that queues a run (create, rerun, Apply & Run).
RUN_CREATED = {201: s.ExperimentDetailOutputSerializer, 400: CONFIG_INVALID, 401: UNAUTHENTICATED,
               404: NOT_FOUND, 409: STORAGE_FULL, 429: QUOTA}

# --------------------------------------------------------------------------- auth & schema


class TokenObtainView(ApiView):
    authentication_classes: list = []  # no session, so no CSRF check: scripts post plain JSON
    permission_classes = [AllowAny]
    # settings.REST_FRAMEWORK rate "auth", per client address (shared across processes via Redis)
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        tags=["auth"], auth=[], request=s.TokenObtainInputSerializer,
        responses={200: s.TokenOutputSerializer,
                   400: OpenApiResponse(s.TokenErrorSerializer, description="Wrong username or password."),
                   429: OpenApiResponse(s.ErrorDetailSerializer, description=(
                       "Too many attempts from this address, or this username is locked out here after "
                       "too many wrong passwords (Retry-After says for how long)."))},
        summary="Exchange a username and password for a new API token",
        description="Each call creates a token of its own (one per script or device) that expires after "
                    "TUNER_TOKEN_TTL_HOURS; list and revoke them under /api/auth/tokens/.",
    )
    def post(self, request):
        serializer = s.TokenObtainInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # With the request, so django-axes counts the attempt and refuses a locked-out username + address.
        user = authenticate(request=request, **serializer.validated_data)
        if user is None:
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut()
            raise exceptions.ValidationError(
                {"non_field_errors": ["Unable to log in with the provided username and password."]})
        # A login like any other: axes resets the failure count, Django records last_login.
        user_logged_in.send(sender=type(user), request=request, user=user)
        token, secret = tokens.token_create(user=user)
        return Response(s.TokenOutputSerializer({"token": secret, "expiry": token.expiry}).data)


class LoginLockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self):
        super().__init__(lockout_message())
        self.wait = lockout_seconds()  # DRF's exception handler turns it into Retry-After


class TokenRevokeView(ApiView):
    authentication_classes = [TokenAuthentication]  # the token to revoke is the one sent

    @extend_schema(tags=["auth"], request=None,
                   responses={204: None, 400: OpenApiResponse(s.ErrorDetailSerializer, description="A body was sent."),
                              401: UNAUTHENTICATED},
                   summary="Revoke the token this request is made with")
    def post(self, request):
        s.EmptyInputSerializer(data=request.data).is_valid(raise_exception=True)
        if request.auth is None:
            raise exceptions.NotAuthenticated("Send the token to revoke as \"Authorization: Token <token>\".")
        tokens.token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListCreateView(ApiView):
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(tags=["auth"], responses={200: s.TokenListOutputSerializer(many=True), 401: UNAUTHENTICATED},
                   summary="Your API tokens that have not expired, newest first (never their secrets)")
    def get(self, request):
        rows = selectors.token_list(user=request.user)
        return Response(s.TokenListOutputSerializer(rows, many=True, context={"request": request}).data)

    @extend_schema(tags=["auth"], request=None,
                   responses={201: s.TokenCreatedOutputSerializer,
                              400: OpenApiResponse(s.ErrorDetailSerializer, description="A body was sent."),
                              401: UNAUTHENTICATED,
                              403: OpenApiResponse(s.ErrorDetailSerializer, description=(
                                  "Not from a logged-in browser session (a token cannot create tokens), "
                                  "or no CSRF token."))},
                   summary="Create a token from a logged-in browser session (the secret is shown once)")
    def post(self, request):
        if isinstance(request.successful_authenticator, TokenAuthentication):
            # A stolen token must not be able to outlive its expiry by minting new ones.
            raise exceptions.PermissionDenied("Tokens are created from a logged-in browser session, or with "
                                              "a username and password at POST /api/auth/token/.")
        s.EmptyInputSerializer(data=request.data).is_valid(raise_exception=True)
        token, secret = tokens.token_create(user=request.user)
        data = s.TokenCreatedOutputSerializer(token, context={"request": request, "secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)


class TokenDetailView(ApiView):
    @extend_schema(tags=["auth"], responses={204: None, 401: UNAUTHENTICATED,
                                             404: OpenApiResponse(s.ErrorDetailSerializer,
                                                                  description="No such token among yours.")},
                   summary="Revoke one of your tokens")
    def delete(self, request, token_id: str):
        token = selectors.token_get(user=request.user, token_id=token_id)
        if token is None:
            raise exceptions.NotFound("You have no such token.")
        tokens.token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConfigSchemaView(ApiView):
    @extend_schema(tags=["experiments"], responses={200: s.ConfigSchemaOutputSerializer, 401: UNAUTHENTICATED},
                   summary="Every hyperparameter: type, range, default, help; defaults and presets")
    def get(self, request):
        return Response(config_schema())


class SwaggerView(SpectacularSwaggerView):
    """Swagger UI from the sidecar's local assets, without the online validator badge."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        from drf_spectacular.settings import spectacular_settings

        ui_settings = spectacular_settings.SWAGGER_UI_SETTINGS
        if isinstance(ui_settings, dict) and "validatorUrl" not in ui_settings:
            response.data["settings"] = self._dump({**ui_settings, "validatorUrl": None})
        return response


# --------------------------------------------------------------------------- experiments


class RunCreatingView(ApiView):
    """A view that queues runs: its writes share the run-creation throttle (reads stay
    unthrottled) and it answers 201 with the new run's detail."""

    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "run_create"

    def created(self, experiment: Experiment) -> Response:
        return Response(self.detail_data(experiment), status=status.HTTP_201_CREATED)


class ExperimentListCreateView(RunCreatingView):
    parser_classes = [LimitedJSONParser]  # config is a nested object: JSON only
    pagination_class = ExperimentPagination  # read by drf-spectacular for the paginated schema

    @extend_schema(
        tags=["experiments"], parameters=[s.ExperimentListFilterSerializer],
        responses={200: s.ExperimentListOutputSerializer(many=True),
                   400: OpenApiResponse(s.ExperimentListErrorSerializer, description="Invalid query parameter."),
                   401: UNAUTHENTICATED},
        summary="Your runs, newest first",
    )
    def get(self, request):
        filters = s.ExperimentListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = selectors.experiment_list(user=request.user, **filters.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(s.ExperimentListOutputSerializer(page, many=True).data)

    @extend_schema(
        tags=["experiments"], request=s.ExperimentCreateInputSerializer,
        responses=RUN_CREATED, summary="Queue a run (missing hyperparameters take their defaults)",
    )
    def post(self, request):
        serializer = s.ExperimentCreateInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        return self.created(services.experiment_create(owner=request.user, **serializer.validated_data))


class ExperimentDetailView(ApiView):
    @extend_schema(tags=["experiments"],
                   responses={200: s.ExperimentDetailOutputSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
                   summary="One run with its epochs, test results, recommendations and links")
    def get(self, request, experiment_id: int):
        return Response(self.detail_data(self.get_experiment(experiment_id)))

    @extend_schema(tags=["experiments"],
                   responses={204: None, 401: UNAUTHENTICATED, 404: NOT_FOUND, 409: CONFLICT},
                   summary="Delete a run that is not running (with its checkpoint and weights)")
    def delete(self, request, experiment_id: int):
        services.experiment_delete(experiment=self.get_experiment(experiment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExperimentCancelView(ApiView):
    @extend_schema(tags=["experiments"], request=None,
                   responses={200: s.ExperimentDetailOutputSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND,
                              409: CONFLICT},
                   summary="Cancel a queued run at once, or ask a running one to stop")
    def post(self, request, experiment_id: int):
        experiment = services.experiment_cancel(experiment=self.get_experiment(experiment_id))
        return Response(self.detail_data(experiment))


class ExperimentRerunView(RunCreatingView):
    @extend_schema(tags=["experiments"], request=None, responses=RUN_CREATED,
                   summary="Queue a new run with the same configuration (its parent is this run)")
    def post(self, request, experiment_id: int):
        return self.created(services.experiment_rerun(experiment=self.get_experiment(experiment_id),
                                                      owner=request.user))


class ExperimentMetricsView(ApiView):
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    @extend_schema(tags=["experiments"],
                   responses={(200, "application/json"): s.EpochMetricOutputSerializer(many=True),
                              (200, "text/csv"): OpenApiResponse(
                                  OpenApiTypes.STR,
                                  description="Header row: " + ",".join(live.METRIC_COLUMNS) + "; one row per epoch."),
                              (401, "application/json"): UNAUTHENTICATED,
                              (404, "application/json"): NOT_FOUND},
                   summary="Per-epoch metrics as JSON, or as a CSV download with ?format=csv")
    def get(self, request, experiment_id: int):
        experiment = self.get_experiment(experiment_id)
        rows = s.EpochMetricOutputSerializer(selectors.experiment_metrics(experiment=experiment), many=True).data
        headers = {}
        if request.accepted_renderer.format == CSVRenderer.format:
            headers["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}-metrics.csv"'
        return Response(rows, headers=headers)


class ExperimentWeightsView(ApiView):
    @extend_schema(tags=["experiments"],
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 401: UNAUTHENTICATED,
                              404: NOT_FOUND},
                   summary="The trained weights as .npz (W0, b0, W1, b1, ..., class_names)")
    def get(self, request, experiment_id: int):
        experiment = self.get_experiment(experiment_id)
        if not experiment.weights_path:
            raise exceptions.NotFound(
                f"Run #{experiment.pk} has no weights yet (it is {experiment.status}; weights are stored "
                "when a run succeeds).")
        try:
            handle = storage.open_file(storage.name_of(experiment.weights_path))
        except (OSError, SuspiciousFileOperation):
            raise exceptions.NotFound(f"The weights file of run #{experiment.pk} is missing.") from None
        return FileResponse(handle, as_attachment=True, filename=f"experiment-{experiment.pk}-weights.npz",
                            content_type="application/octet-stream")


# --------------------------------------------------------------------------- health


class HealthView(ApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [renderers.JSONRenderer]
    throttle_scope = "health"  # per client address; lets the probe through when Redis is down

    @extend_schema(tags=["health"], auth=[],
                   responses={200: s.HealthOutputSerializer,
                              429: OpenApiResponse(s.ErrorDetailSerializer,
                                                   description="Too many probes from this address."),
                              503: OpenApiResponse(s.HealthOutputSerializer,
                                                   description="The database or Redis does not answer.")},
                   summary="Readiness: database, Redis, live workers, queue length (no login)")
    def get(self, request):
        report = health.readiness()
        code = status.HTTP_200_OK if report["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(s.HealthOutputSerializer(report).data, status=code,
                        headers={"Cache-Control": "no-store"})


class RecommendationApplyView(RunCreatingView):
    @extend_schema(tags=["recommendations"], request=None, responses=RUN_CREATED,
                   summary="Apply & Run: queue a child run with the recommendation's changes")
    def post(self, request, recommendation_id: int):
        recommendation = selectors.recommendation_get(user=request.user, recommendation_id=recommendation_id)
        if recommendation is None:
            raise exceptions.NotFound(f"You have no recommendation #{recommendation_id}.")
        return self.created(services.recommendation_apply(recommendation=recommendation, owner=request.user))


class RecommenderStatsView(ApiView):
    @extend_schema(tags=["recommendations"],
                   responses={200: s.RecommenderStatsOutputSerializer(many=True), 401: UNAUTHENTICATED},
                   summary="Per kind: how often advice was applied and how often it helped (all users)")
    def get(self, request):
        return Response(s.RecommenderStatsOutputSerializer(selectors.recommender_stats(), many=True).data)

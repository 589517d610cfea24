"""Input and output serializers of the REST API.

Input serializers validate the shape of a request (types, lengths, known values) and
resolve ids the requesting user may see; the hyperparameters themselves are validated
by the service (training.config is the single source of truth). Output serializers
only present rows. Neither holds business logic.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from experiments import selectors
from experiments.models import EpochMetric, Experiment, Recommendation
from experiments.services import METRIC_FIELDS
from training.config import FIELDS as CONFIG_FIELDS
from training.data import CLASS_NAMES

# The CSV header and the JSON keys of one epoch, in this order.
METRIC_COLUMNS = ("epoch", *METRIC_FIELDS)

# Form posts from the browser carry the CSRF token as a field; it is not an unknown field.
_IGNORED_INPUT_FIELDS = frozenset({"csrfmiddlewaretoken"})


class StrictInputSerializer(serializers.Serializer):
    """Rejects fields it does not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data: Any) -> Any:
        errors = {}
        if hasattr(data, "keys"):
            known = ", ".join(self.fields)
            for name in data.keys():
                if name not in self.fields and name not in _IGNORED_INPUT_FIELDS:
                    errors[name] = [f"Unknown field. Known fields: {known}."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**errors, **exc.detail}) from None
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value


# --------------------------------------------------------------------------- input


class TokenObtainInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False,
                                     style={"input_type": "password"})


@extend_schema_field({"type": "object", "additionalProperties": True})
class ConfigField(serializers.JSONField):
    """A JSON object of hyperparameters; the service validates its contents."""


class ExperimentCreateInputSerializer(StrictInputSerializer):
    """A run to queue. Unknown top-level fields are rejected."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    config = ConfigField(
        required=False, default=None,
        help_text="Hyperparameters (see /api/config-schema/); missing fields take their defaults.",
    )
    parent = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1,
        help_text="Id of one of your runs this one derives from.",
    )

    def validate_config(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object mapping hyperparameter names to values.")
        return value

    def validate_parent(self, value: int | None) -> Experiment | None:
        if value is None:
            return None
        parent = selectors.experiment_get(user=self.context["request"].user, experiment_id=value)
        if parent is None:
            raise serializers.ValidationError(f"You have no run #{value}.")
        return parent


class ExperimentListFilterSerializer(serializers.Serializer):
    status = serializers.CharField(
        required=False, allow_blank=True,
        help_text="Comma-separated statuses to keep: " + ", ".join(Experiment.Status.values) + ".",
    )
    sweep = serializers.IntegerField(required=False, min_value=1, help_text="Only runs of this sweep.")
    ordering = serializers.ChoiceField(
        required=False,
        choices=[f"{sign}{name}" for name in selectors.ORDERING_FIELDS for sign in ("", "-")],
        help_text="Sort field, prefixed with '-' for descending (default: newest first).",
    )

    def validate_status(self, value: str) -> str | None:
        statuses = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [status for status in statuses if status not in Experiment.Status.values]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown status {', '.join(unknown)}; choose from {', '.join(Experiment.Status.values)}.")
        return ",".join(statuses) or None


# --------------------------------------------------------------------------- output


class ConfigSchemaOutputSerializer(serializers.Serializer):
    fields = serializers.ListField(child=serializers.DictField(), help_text="One entry per hyperparameter.")
    defaults = serializers.DictField(help_text="The configuration used for missing fields.")
    presets = serializers.DictField(child=serializers.DictField(), help_text="Named complete configurations.")


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='Send as "Authorization: Token <token>".')


class EpochMetricOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = EpochMetric
        fields = METRIC_COLUMNS


class RecommendationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Recommendation
        fields = ("id", "kind", "priority", "title", "rationale", "changes", "confidence", "evidence",
                  "applied_at", "outcome_delta", "improved")


class ConfigOutputField(serializers.DictField):
    """The stored config with its keys in training.config.FIELDS order (PostgreSQL's jsonb reorders them)."""

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        ordered = {name: value[name] for name in CONFIG_FIELDS if name in value}
        ordered.update((name, item) for name, item in value.items() if name not in ordered)
        return ordered


class ExperimentListOutputSerializer(serializers.ModelSerializer):
    config = ConfigOutputField(read_only=True)
    parent = serializers.IntegerField(source="parent_id", read_only=True, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = ("id", "name", "status", "config", "epochs_done", "best_val_accuracy", "best_epoch",
                  "test_accuracy", "test_loss", "parent", "created_at", "started_at", "finished_at",
                  "duration_seconds")
        read_only_fields = fields


class ExperimentLinksSerializer(serializers.Serializer):
    ws = serializers.CharField(help_text="WebSocket streaming this run's live events.")
    csv = serializers.CharField(help_text="Per-epoch metrics as CSV.")
    weights = serializers.CharField(allow_null=True, help_text="Trained weights (.npz); null until stored.")


class ExperimentDetailOutputSerializer(ExperimentListOutputSerializer):
    source_recommendation = serializers.IntegerField(source="source_recommendation_id", read_only=True,
                                                     allow_null=True,
                                                     help_text="The recommendation this run applied.")
    analysis = serializers.JSONField(read_only=True, allow_null=True,
                                     help_text="The recommender's summary: convergence, generalisation gap.")
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()), read_only=True, allow_null=True,
        help_text="Test-set counts, [true class][predicted class].")
    per_class_accuracy = serializers.ListField(child=serializers.FloatField(), read_only=True,
                                               allow_null=True)
    class_names = serializers.SerializerMethodField()
    children = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    recommendations = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta(ExperimentListOutputSerializer.Meta):
        fields = (*ExperimentListOutputSerializer.Meta.fields, "confusion_matrix", "per_class_accuracy",
                  "class_names", "message", "error_message", "children", "attempts", "worker_host",
                  "performance_category", "analysis", "source_recommendation",
                  "metrics", "recommendations", "links")
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_class_names(self, experiment: Experiment) -> list[str]:
        return list(CLASS_NAMES)

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_children(self, experiment: Experiment) -> list[int]:
        # Only the owner's runs: a derived run is always created by the parent's owner.
        return list(experiment.children.filter(owner_id=experiment.owner_id)
                    .order_by("id").values_list("id", flat=True))

    @extend_schema_field(EpochMetricOutputSerializer(many=True))
    def get_metrics(self, experiment: Experiment) -> list[dict[str, Any]]:
        rows = selectors.experiment_metrics(experiment=experiment)
        return EpochMetricOutputSerializer(rows, many=True).data

    @extend_schema_field(RecommendationOutputSerializer(many=True))
    def get_recommendations(self, experiment: Experiment) -> list[dict[str, Any]]:
        rows = selectors.experiment_recommendations(experiment=experiment)
        return RecommendationOutputSerializer(rows, many=True).data

    @extend_schema_field(ExperimentLinksSerializer)
    def get_links(self, experiment: Experiment) -> dict[str, str | None]:
        request = self.context.get("request")

        def absolute(path: str) -> str:
            return request.build_absolute_uri(path) if request is not None else path

        ws_path = f"/ws/experiments/{experiment.pk}/"
        if request is not None:
            ws_path = f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}{ws_path}"
        csv_path = reverse("api:experiment-metrics", kwargs={"experiment_id": experiment.pk}) + "?format=csv"
        weights = None
        if experiment.weights_path:
            weights = absolute(reverse("api:experiment-weights", kwargs={"experiment_id": experiment.pk}))
        return {"ws": ws_path, "csv": absolute(csv_path), "weights": weights}


class RecommenderStatsOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    given = serializers.IntegerField(help_text="Recommendations of this kind written.")
    applied = serializers.IntegerField(help_text="Of those, applied with Apply & Run.")
    evaluated = serializers.IntegerField(help_text="Applied runs that finished, so the outcome is known.")
    helped = serializers.IntegerField(help_text="Evaluated ones whose child beat the parent's val accuracy.")
    help_rate = serializers.FloatField(allow_null=True)
    mean_delta = serializers.FloatField(allow_null=True, help_text="Mean val-accuracy change (child - parent).")


# --------------------------------------------------------------------------- errors (for the schema)


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ExperimentCreateErrorSerializer(serializers.Serializer):
    name = serializers.ListField(child=serializers.CharField(), required=False)
    config = serializers.JSONField(
        required=False,
        help_text='Every invalid hyperparameter with its messages, {"<field>": ["message", ...]}; '
                  'a list of messages if config is not an object.')
    parent = serializers.ListField(child=serializers.CharField(), required=False)


class ExperimentListErrorSerializer(serializers.Serializer):
    """Messages for each invalid query parameter."""

    status = serializers.ListField(child=serializers.CharField(), required=False)
    sweep = serializers.ListField(child=serializers.CharField(), required=False)
    ordering = serializers.ListField(child=serializers.CharField(), required=False)
    limit = serializers.ListField(child=serializers.CharField(), required=False)
    offset = serializers.ListField(child=serializers.CharField(), required=False)


class TokenErrorSerializer(serializers.Serializer):
    username = serializers.ListField(child=serializers.CharField(), required=False)
    password = serializers.ListField(child=serializers.CharField(), required=False)
    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


class HealthCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='"ok" when the database and Redis answer, else "unavailable".')
    database = HealthCheckSerializer()
    redis = HealthCheckSerializer()
    workers = serializers.IntegerField(allow_null=True, help_text="Live Celery workers; null if unknown.")
    queue_length = serializers.IntegerField(allow_null=True,
                                            help_text="Runs waiting in the queue; null if unknown.")


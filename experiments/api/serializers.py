"""Input and output serializers of the REST API.

Input serializers validate the shape of a request (types, lengths, known values) and
resolve ids the requesting user may see; the hyperparameters themselves are validated
by the service (training.config is the single source of truth). Output serializers
only present rows. Neither holds business logic.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from experiments import live, selectors
from experiments.models import EpochMetric, Experiment, Recommendation

# The CSV header and the JSON keys of one epoch, in this order.

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


class EmptyInputSerializer(StrictInputSerializer):
    """No fields: a POST whose meaning is all in its URL (a body with fields is a 400)."""


class TokenObtainInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False,
                                     style={"input_type": "password"})


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: "yes", 1 or "true" are a 400, not a guess."""

    default_error_messages = {"invalid": "Must be true or false, got {input!r}."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


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
    stop_on_diagnosis = StrictBooleanField(
        required=False, default=False,
        help_text="Stop the run at its first critical live diagnosis (divergence, not learning, ...), with "
                  "the reason in its message.",
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
    token = serializers.CharField(help_text='Send as "Authorization: Token <token>". Shown only this once.')
    expiry = serializers.DateTimeField(help_text="When the token stops working.")


class TokenListOutputSerializer(serializers.Serializer):
    """One API token, without its secret (which is not stored)."""

    id = serializers.SerializerMethodField(help_text="The token's id (the start of its SHA-512 digest).")
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True, help_text="When the token stops working.")
    current = serializers.SerializerMethodField(help_text="Whether this request was made with this token.")

    def get_id(self, token) -> str:
        return selectors.token_id(token)

    def get_current(self, token) -> bool:
        used = getattr(self.context.get("request"), "auth", None)
        return getattr(used, "digest", None) == token.digest


class TokenCreatedOutputSerializer(TokenListOutputSerializer):
    token = serializers.SerializerMethodField(
        help_text='The secret: send as "Authorization: Token <token>". Shown only this once.')

    def get_token(self, token) -> str:
        return self.context["secret"]


def live_payload_serializer(name: str, model, fields: tuple[str, ...], payload) -> type[serializers.ModelSerializer]:
    """An output serializer whose representation is experiments.live's `payload` (the websocket
    sends the same objects); its model `fields` document that shape in the OpenAPI schema."""
    meta = type("Meta", (), {"model": model, "fields": fields})
    return type(name, (serializers.ModelSerializer,), {
        "Meta": meta, "__module__": __name__,
        "to_representation": lambda self, instance: payload(instance),
    })


EpochMetricOutputSerializer = live_payload_serializer(
    "EpochMetricOutputSerializer", EpochMetric, live.METRIC_COLUMNS, live.metric_payload)
RecommendationOutputSerializer = live_payload_serializer(
    "RecommendationOutputSerializer", Recommendation, live.RECOMMENDATION_FIELDS, live.recommendation_payload)


class ConfigOutputField(serializers.DictField):
    """A stored config with its keys in training.config.FIELDS order (PostgreSQL's jsonb reorders them)."""

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        return live.ordered_config(value)


class ExperimentListOutputSerializer(serializers.ModelSerializer):
    """A run summary. The representation is experiments.live's (the websocket events carry the
    same fields); the declarations below document it for the OpenAPI schema."""

    config = ConfigOutputField(read_only=True)
    parent = serializers.IntegerField(source="parent_id", read_only=True, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = live.SUMMARY_FIELDS
        read_only_fields = fields

    def to_representation(self, instance: Experiment) -> dict[str, Any]:
        return live.run_summary(instance)


class ExperimentLinksSerializer(serializers.Serializer):
    ws = serializers.CharField(help_text="WebSocket streaming this run's live events.")
    csv = serializers.CharField(help_text="Per-epoch metrics as CSV.")
    weights = serializers.CharField(allow_null=True, help_text="Trained weights (.npz); null until stored.")


class ExperimentDetailOutputSerializer(ExperimentListOutputSerializer):
    """A run detail: the same object as the websocket snapshot's `experiment`."""

    source_recommendation = serializers.IntegerField(source="source_recommendation_id", read_only=True,
                                                     allow_null=True,
                                                     help_text="The recommendation this run applied.")
    analysis = serializers.JSONField(read_only=True, allow_null=True,
                                     help_text="The recommender's summary: convergence, generalisation gap.")
    analysis_pending = serializers.BooleanField(
        source="post_run_pending", read_only=True,
        help_text="True from the final status until the run's recommendations (and artifacts) are stored.")
    diagnoses = serializers.ListField(child=serializers.DictField(), read_only=True,
                                      help_text="Problems the live diagnosis recognised while the run trained.")
    stop_on_diagnosis = serializers.BooleanField(read_only=True,
                                                 help_text="Stop at the first critical live diagnosis.")
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()), read_only=True, allow_null=True,
        help_text="Test-set counts, [true class][predicted class].")
    per_class_accuracy = serializers.ListField(child=serializers.FloatField(), read_only=True,
                                               allow_null=True)
    class_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    children = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    metrics = EpochMetricOutputSerializer(many=True, read_only=True)
    recommendations = RecommendationOutputSerializer(many=True, read_only=True)
    links = ExperimentLinksSerializer(read_only=True)

    class Meta(ExperimentListOutputSerializer.Meta):
        fields = live.DETAIL_FIELDS
        read_only_fields = fields

    def to_representation(self, instance: Experiment) -> dict[str, Any]:
        return live.run_detail(instance, request=self.context.get("request"))


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


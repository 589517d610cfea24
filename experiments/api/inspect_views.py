"""Inspecting a trained run: predictions on any 28x28 image, misclassified test images, filters.

Predictions and filters read the run's stored weights (experiments.inference); the misclassified
test images are the list the worker stored when the run ended (experiments/services/inspection.py):
the web never runs the network over the test set. A run without weights (or without a stored
list) is a 409, a run of another user a 404, malformed input a 400 listing every problem. All
three are throttled per user (settings DEFAULT_THROTTLE_RATES "predict", and "inspect" shared by
misclassified and filters).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from experiments import inference
from experiments.api import serializers as s
from experiments.api.parsers import LimitedJSONParser
from experiments.api.views import NOT_FOUND, UNAUTHENTICATED, ApiView
from experiments.errors import InvalidState
from training.data import CLASS_NAMES, N_PIXELS

MISCLASSIFIED_DEFAULT_LIMIT = 24
MISCLASSIFIED_MAX_LIMIT = 100
FILTERS_DEFAULT_LIMIT = 32
FILTERS_MAX_LIMIT = 256

NO_WEIGHTS = OpenApiResponse(s.ErrorDetailSerializer,
                             description="The run has no stored weights (it has not succeeded).")
NO_LIST = OpenApiResponse(s.ErrorDetailSerializer,
                          description="No stored list: the run has no weights, its list is still being "
                                      "computed, or it finished before lists were stored.")
THROTTLED = OpenApiResponse(s.ErrorDetailSerializer, description="Too many requests; see Retry-After.")
DATA_UNAVAILABLE = OpenApiResponse(s.ErrorDetailSerializer,
                                   description="The Fashion-MNIST files are not available on the server.")

# --------------------------------------------------------------------------- input


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@extend_schema_field({"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 255},
                     "minItems": N_PIXELS, "maxItems": N_PIXELS})
class PixelsField(serializers.Field):
    """784 numbers 0..255 (row-major 28x28, white garment on black); rounded to whole values."""

    default_error_messages = {
        "not_a_list": "Must be a list of {n} numbers (a 28x28 image, row-major), got {kind}.",
        "length": "Must hold exactly {n} values (28x28, row-major), got {got}.",
    }

    def to_internal_value(self, data: Any) -> np.ndarray:
        if not isinstance(data, list):
            self.fail("not_a_list", n=N_PIXELS, kind=type(data).__name__)
        if len(data) != N_PIXELS:
            self.fail("length", n=N_PIXELS, got=len(data))
        not_numbers = [i for i, v in enumerate(data) if not _is_number(v) or (isinstance(v, float) and not math.isfinite(v))]
        if not_numbers:
            shown = ", ".join(f"{i} ({data[i]!r})" for i in not_numbers[:5])
            more = f" and {len(not_numbers) - 5} more" if len(not_numbers) > 5 else ""
            raise serializers.ValidationError(
                f"Every value must be a number from 0 to 255; not a number at index {shown}{more}.")
        out_of_range = [i for i, v in enumerate(data) if v < 0 or v > 255]
        if out_of_range:
            shown = ", ".join(f"{i} ({data[i]!r})" for i in out_of_range[:5])
            more = f" and {len(out_of_range) - 5} more" if len(out_of_range) > 5 else ""
            raise serializers.ValidationError(
                f"Every value must be from 0 to 255; out of range at index {shown}{more}.")
        return np.rint(np.asarray(data, dtype=np.float64)).astype(np.uint8)

    def to_representation(self, value: Any) -> list[int]:
        return [int(v) for v in value]


class StrictIntegerField(serializers.IntegerField):
    """An integer in JSON: no strings, booleans or fractions."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not (isinstance(data, int) or (isinstance(data, float) and data.is_integer())):
            self.fail("invalid")
        return super().to_internal_value(int(data))


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.")
        return data


class PredictInputSerializer(s.StrictInputSerializer):
    """Exactly one of `pixels`, `test_index` or `random: true`."""

    pixels = PixelsField(required=False, help_text=f"{N_PIXELS} numbers 0..255: a 28x28 image, row-major, "
                                                   "white garment on a black background.")
    test_index = StrictIntegerField(required=False, min_value=0,
                                    help_text="Index of a Fashion-MNIST test image (0..9999).")
    random = StrictBooleanField(required=False, help_text="true: a random test image.")

    def validate_test_index(self, value: int) -> int:
        count = inference.test_count()
        if value >= count:
            raise serializers.ValidationError(f"Must be from 0 to {count - 1} (the test set has {count} images).")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        chosen = [name for name in ("pixels", "test_index") if name in attrs]
        if attrs.get("random") is True:
            chosen.append("random")
        if len(chosen) > 1:
            raise serializers.ValidationError(
                {"non_field_errors": [f"Send only one of pixels, test_index or random; got {', '.join(chosen)}."]})
        if not chosen:
            raise serializers.ValidationError(
                {"non_field_errors": ['Send one of "pixels" (784 numbers 0..255), "test_index" (an integer) '
                                      'or "random": true.']})
        return attrs


class LimitQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1,
                                     help_text="How many to return (larger values are capped).")


class MisclassifiedQuerySerializer(LimitQuerySerializer):
    offset = serializers.IntegerField(required=False, min_value=0, default=0,
                                      help_text="Skip this many (for paging).")


# --------------------------------------------------------------------------- output (for the schema)


class PredictOutputSerializer(serializers.Serializer):
    probabilities = serializers.ListField(child=serializers.FloatField(), help_text="One per class, sum 1.")
    predicted = serializers.IntegerField(help_text="Index of the most probable class.")
    class_names = serializers.ListField(child=serializers.CharField())
    pixels = serializers.ListField(child=serializers.IntegerField(), help_text="The 784 pixel values used.")
    label = serializers.IntegerField(allow_null=True, help_text="The true class of a test image, else null.")
    test_index = serializers.IntegerField(allow_null=True, help_text="The test image used, else null.")


class PredictErrorSerializer(serializers.Serializer):
    pixels = serializers.ListField(child=serializers.CharField(), required=False)
    test_index = serializers.ListField(child=serializers.CharField(), required=False)
    random = serializers.ListField(child=serializers.CharField(), required=False)
    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


class MisclassifiedItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Index in the test set.")
    true = serializers.IntegerField(help_text="The true class.")
    predicted = serializers.IntegerField()
    confidence = serializers.FloatField(help_text="Probability given to the (wrong) predicted class.")
    pixels = serializers.ListField(child=serializers.IntegerField())


class MisclassifiedOutputSerializer(serializers.Serializer):
    items = MisclassifiedItemSerializer(many=True)
    total = serializers.IntegerField(help_text="How many test images the run gets wrong.")
    test_count = serializers.IntegerField(help_text="Size of the test set.")
    class_names = serializers.ListField(child=serializers.CharField())


class FiltersOutputSerializer(serializers.Serializer):
    filters = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                    help_text="Per unit, its 784 input weights min-max scaled to 0..255.")
    units = serializers.IntegerField(help_text="Units in the first hidden layer.")


class LimitErrorSerializer(serializers.Serializer):
    limit = serializers.ListField(child=serializers.CharField(), required=False)
    offset = serializers.ListField(child=serializers.CharField(), required=False)


INVALID_QUERY = OpenApiResponse(LimitErrorSerializer, description="Invalid query parameter.")

# --------------------------------------------------------------------------- views


class ExperimentPredictView(ApiView):
    parser_classes = [LimitedJSONParser]
    throttle_scope = "predict"

    @extend_schema(
        tags=["inspect"], request=PredictInputSerializer,
        responses={200: PredictOutputSerializer,
                   400: OpenApiResponse(PredictErrorSerializer, description="Invalid input; every problem listed.",
                                        examples=[OpenApiExample("Wrong length", value={
                                            "pixels": ["Must hold exactly 784 values (28x28, row-major), got 10."]})]),
                   401: UNAUTHENTICATED, 404: NOT_FOUND, 409: NO_WEIGHTS, 429: THROTTLED, 503: DATA_UNAVAILABLE},
        examples=[OpenApiExample("A test image", value={"test_index": 42}, request_only=True),
                  OpenApiExample("A random test image", value={"random": True}, request_only=True)],
        summary="Class probabilities of the trained network for a 28x28 image or a test image",
    )
    def post(self, request, experiment_id: int):
        experiment = self.get_experiment(experiment_id)
        inference.load_model(experiment)  # 409/404 for a run without weights before judging the body
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError(
                {"non_field_errors": ['Expected a JSON object such as {"test_index": 0}.']})
        serializer = PredictInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        label = index = None
        if "pixels" in data:
            pixels = data["pixels"]
        else:
            images, labels = inference.test_set()
            index = data.get("test_index")
            if index is None:
                index = int(np.random.default_rng().integers(len(labels)))
            pixels = np.asarray(images[index], dtype=np.uint8)
            label = int(labels[index])
        probabilities = inference.predict(experiment, pixels)
        model = inference.load_model(experiment)
        return Response({
            "probabilities": [float(p) for p in probabilities],
            "predicted": int(np.argmax(probabilities)),
            "class_names": list(model.class_names),
            "pixels": [int(v) for v in pixels],
            "label": label,
            "test_index": index,
        })


# The failure answers of the GET endpoints that read a run's stored weights.
LISTING_ERRORS = {400: INVALID_QUERY, 401: UNAUTHENTICATED, 404: NOT_FOUND, 409: NO_WEIGHTS, 429: THROTTLED,
                  503: DATA_UNAVAILABLE}


def listing_query(request, serializer_class, *, default_limit: int, max_limit: int) -> tuple[int, dict]:
    """The validated query of a listing endpoint and its limit (default when absent, capped)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return min(query.validated_data.get("limit", default_limit), max_limit), query.validated_data


def stored_misclassified(experiment) -> dict:
    """The list the worker stored when the run ended; 409 saying why when there is none."""
    stored = experiment.misclassified
    if isinstance(stored, dict) and isinstance(stored.get("indices"), list):
        return stored
    if not experiment.weights_path:
        inference.load_model(experiment)  # the 409 of a run without weights, worded as everywhere
    if experiment.post_run_pending:
        raise InvalidState(f"The misclassified test images of run #{experiment.pk} are still being computed "
                           "(the worker does it once the run has ended); try again in a few seconds.")
    raise InvalidState(f"Run #{experiment.pk} finished before Tuner stored misclassified test images, so it "
                       f"has none yet: an operator can compute it (`manage.py store_misclassified`), or rerun "
                       f"it (POST /api/experiments/{experiment.pk}/rerun/).")


class ExperimentMisclassifiedView(ApiView):
    throttle_scope = "inspect"

    @extend_schema(
        tags=["inspect"], parameters=[MisclassifiedQuerySerializer],
        responses={200: MisclassifiedOutputSerializer, **LISTING_ERRORS, 409: NO_LIST},
        summary=f"Test images the run gets wrong, most confident first (limit default "
                f"{MISCLASSIFIED_DEFAULT_LIMIT}, at most {MISCLASSIFIED_MAX_LIMIT})",
    )
    def get(self, request, experiment_id: int):
        limit, query = listing_query(request, MisclassifiedQuerySerializer,
                                     default_limit=MISCLASSIFIED_DEFAULT_LIMIT, max_limit=MISCLASSIFIED_MAX_LIMIT)
        offset = query.get("offset", 0)
        stored = stored_misclassified(self.get_experiment(experiment_id))
        images, _ = inference.test_set()
        window = slice(offset, offset + limit)
        items = [
            {"index": index, "true": true, "predicted": predicted, "confidence": confidence,
             "pixels": [int(v) for v in images[index]]}
            for index, true, predicted, confidence in zip(stored["indices"][window], stored["true"][window],
                                                          stored["predicted"][window], stored["confidence"][window])
        ]
        return Response({"items": items, "total": len(stored["indices"]), "test_count": stored["test_count"],
                         "class_names": stored.get("class_names") or list(CLASS_NAMES)})


class ExperimentFiltersView(ApiView):
    throttle_scope = "inspect"

    @extend_schema(
        tags=["inspect"], parameters=[LimitQuerySerializer], responses={200: FiltersOutputSerializer, **LISTING_ERRORS},
        summary=f"First-layer weights as 28x28 images (limit default {FILTERS_DEFAULT_LIMIT}, "
                f"at most {FILTERS_MAX_LIMIT})",
    )
    def get(self, request, experiment_id: int):
        limit, _ = listing_query(request, LimitQuerySerializer, default_limit=FILTERS_DEFAULT_LIMIT,
                                 max_limit=FILTERS_MAX_LIMIT)
        experiment = self.get_experiment(experiment_id)
        filters, units = inference.first_layer_filters(experiment, limit)
        return Response({"filters": filters.tolist(), "units": units})


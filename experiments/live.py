"""The one wire format of a run: the REST API and the websockets send the same objects.

- run summary  = an item of GET /api/experiments/; `status` and `finished` events carry the
                 summary plus message, error_message, attempts, performance_category and
                 analysis_pending (true until the run's advice is stored), all
                 named as in the detail (a client merges an event into a run it got over REST);
- run detail   = GET /api/experiments/<id>/ = summary + results, metrics, recommendations,
                 links; the websocket snapshot's `experiment` is exactly this object;
- metric       = an entry of `metrics` = the fields of an `epoch` event;
- recommendation = an entry of `recommendations`, also inside `recommendations` events.

The DRF output serializers in experiments/api/serializers.py describe these shapes for the
OpenAPI schema and delegate their representation here, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from experiments import events, lab_events, selectors
from experiments.models import EpochMetric, Experiment, Recommendation
from training.config import FIELDS as CONFIG_FIELDS
from training.data import CLASS_NAMES
from training.trainer import METRIC_FIELDS

METRIC_COLUMNS = ("epoch", *METRIC_FIELDS)

SUMMARY_FIELDS = ("id", "name", "status", "config", "epochs_done", "best_val_accuracy", "best_epoch",
                  "test_accuracy", "test_loss", "parent", "created_at", "started_at", "finished_at",
                  "duration_seconds")
DETAIL_FIELDS = (*SUMMARY_FIELDS, "confusion_matrix", "per_class_accuracy", "class_names", "message",
                 "error_message", "children", "attempts", "worker_host", "performance_category", "analysis",
                 "analysis_pending", "diagnoses", "stop_on_diagnosis",
                 "source_recommendation", "metrics", "recommendations", "links")
# A status/finished event: the summary (less `id`: events carry `experiment`) and the detail's
# fields that say how the run is doing, under the detail's names.
STATUS_EVENT_FIELDS = (*SUMMARY_FIELDS[1:], "message", "error_message", "attempts", "performance_category",
                       "analysis_pending")
RECOMMENDATION_FIELDS = ("id", "kind", "priority", "title", "rationale", "changes", "confidence", "evidence",
                         "applied_at", "outcome_delta", "improved")


def timestamp(value) -> str | None:
    """ISO 8601 in UTC with a `Z`, as DRF renders datetimes."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def ordered_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The stored config with its keys in training.config.FIELDS order (PostgreSQL's jsonb reorders them)."""
    config = config or {}
    ordered = {name: config[name] for name in CONFIG_FIELDS if name in config}
    ordered.update((name, item) for name, item in config.items() if name not in ordered)
    return ordered


def run_summary(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "status": experiment.status,
        "config": ordered_config(experiment.config),
        "epochs_done": experiment.epochs_done,
        "best_val_accuracy": experiment.best_val_accuracy,
        "best_epoch": experiment.best_epoch,
        "test_accuracy": experiment.test_accuracy,
        "test_loss": experiment.test_loss,
        "parent": experiment.parent_id,
        "created_at": timestamp(experiment.created_at),
        "started_at": timestamp(experiment.started_at),
        "finished_at": timestamp(experiment.finished_at),
        "duration_seconds": experiment.duration_seconds,
    }


def _progress_fields(experiment: Experiment) -> dict[str, Any]:
    return {"message": experiment.message, "error_message": experiment.error_message,
            "attempts": experiment.attempts, "performance_category": experiment.performance_category,
            # Finished, but its advice (and artifacts, and its sweep's next step) not yet stored:
            # a client reading now can tell "no advice" from "advice not yet written".
            "analysis_pending": experiment.post_run_pending}


def metric_payload(row: EpochMetric) -> dict[str, Any]:
    return {name: getattr(row, name) for name in METRIC_COLUMNS}


def recommendation_payload(row: Recommendation) -> dict[str, Any]:
    payload = {name: getattr(row, name) for name in RECOMMENDATION_FIELDS}
    payload["applied_at"] = timestamp(row.applied_at)
    return payload


def run_links(experiment: Experiment, request=None) -> dict[str, str | None]:
    """Where to follow and download the run: absolute with a request, paths without one."""

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


def run_detail(experiment: Experiment, *, request=None) -> dict[str, Any]:
    detail = {
        **run_summary(experiment),
        **_progress_fields(experiment),
        "confusion_matrix": experiment.confusion_matrix,
        "per_class_accuracy": experiment.per_class_accuracy,
        "class_names": list(CLASS_NAMES),
        "children": selectors.experiment_children_ids(experiment=experiment),
        "worker_host": experiment.worker_host,
        "analysis": experiment.analysis,
        "diagnoses": experiment.diagnoses or [],
        "stop_on_diagnosis": experiment.stop_on_diagnosis,
        "source_recommendation": experiment.source_recommendation_id,
        "metrics": [metric_payload(row) for row in selectors.experiment_metrics(experiment=experiment)],
        "recommendations": [recommendation_payload(row)
                            for row in selectors.experiment_recommendations(experiment=experiment)],
        "links": run_links(experiment, request),
    }
    return {name: detail[name] for name in DETAIL_FIELDS}


# --------------------------------------------------------------------------- websocket messages


def status_event(experiment: Experiment, *, kind: str = "status") -> dict[str, Any]:
    """A `status` (or `finished`) event: STATUS_EVENT_FIELDS, named as in the REST detail."""
    fields = {**run_summary(experiment), **_progress_fields(experiment)}
    return {"type": kind, **{name: fields[name] for name in STATUS_EVENT_FIELDS}}


def epoch_event(row_values: dict[str, Any], *, epoch: int, epochs: int | None) -> dict[str, Any]:
    return {"type": "epoch", "epoch": epoch, **{name: row_values[name] for name in METRIC_FIELDS},
            "epochs": epochs}


def recommendations_event(experiment: Experiment, rows: list[Recommendation]) -> dict[str, Any]:
    return {"type": "recommendations", "performance_category": experiment.performance_category,
            "analysis": experiment.analysis, "recommendations": [recommendation_payload(row) for row in rows]}


def diagnosis_event(finding: dict[str, Any]) -> dict[str, Any]:
    """A live diagnosis found while the run trains: an entry of the detail's `diagnoses`."""
    return {"type": "diagnosis", "finding": finding}


def publish_status(experiment: Experiment) -> None:
    """The run's status changed: tell its watchers and its owner's run list."""
    events.publish(experiment.pk, experiment.owner_id, status_event(experiment), to_user=True)
    lab_events.publish_run_status(experiment)  # staff on /lab/ re-read the lab status


def publish_finished(experiment: Experiment) -> None:
    publish_status(experiment)
    events.publish(experiment.pk, experiment.owner_id, status_event(experiment, kind="finished"))


def publish_log(experiment_id: int, owner_id: int, message: str, *, level: str = "info") -> None:
    events.publish(experiment_id, owner_id, {"type": "log", "level": level, "message": message})


def snapshot(*, user, experiment_id: int) -> dict[str, Any] | None:
    """{"type": "snapshot", "seq", "experiment": <run detail>, "metrics", "recommendations"}, or None
    if `user` may not watch the run. `metrics`/`recommendations` repeat the detail's lists for
    clients written before the formats were unified.

    Reads the seq counter *before* the database (see experiments/consumers.py); the caller
    must already be in the run's group.
    """
    seq = events.current_seq(experiment_id)
    experiment = selectors.visible_run(user=user, experiment_id=experiment_id)
    if experiment is None:
        return None
    detail = run_detail(experiment)
    return {"type": "snapshot", "seq": seq, "experiment": detail, "metrics": detail["metrics"],
            "recommendations": detail["recommendations"]}

"""Every non-trivial read of experiments."""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from experiments.models import EpochMetric, Experiment, Recommendation, Sweep
from experiments.recommender import RunSummary
from training.trainer import METRIC_FIELDS

ORDERING_FIELDS = ("created_at", "best_val_accuracy", "test_accuracy", "status", "name", "epochs_done",
                   "finished_at")


def experiments_visible_to(*, user) -> QuerySet[Experiment]:
    """Runs a user may see: their own (staff review through the admin). The stored misclassified
    list (up to ~200 KB a run) is only loaded where it is read."""
    return Experiment.objects.filter(owner=user).defer("misclassified")


def experiment_list(*, user, status: str | None = None, sweep: int | None = None,
                    ordering: str | None = None) -> QuerySet[Experiment]:
    runs = experiments_visible_to(user=user).select_related("owner")
    if status:
        runs = runs.filter(status__in=status.split(","))
    if sweep is not None and hasattr(Experiment, "sweep"):
        runs = runs.filter(sweep_id=sweep)
    if ordering and ordering.lstrip("-") in ORDERING_FIELDS:
        runs = runs.order_by(ordering, "-id")
    return runs


def experiment_get(*, user, experiment_id: int) -> Experiment | None:
    """The run if `user` may see it, else None (the API answers 404 either way)."""
    return experiments_visible_to(user=user).filter(pk=experiment_id).first()


def experiment_metrics(*, experiment: Experiment) -> QuerySet[EpochMetric]:
    return EpochMetric.objects.filter(experiment=experiment).order_by("epoch")


def experiment_recommendations(*, experiment: Experiment) -> QuerySet[Recommendation]:
    return Recommendation.objects.filter(experiment=experiment).order_by("priority_rank", "rank", "id")


def active_run_count(*, user) -> int:
    return Experiment.objects.filter(owner=user, status__in=Experiment.ACTIVE_STATUSES).count()


def stored_bytes(prefix: str = ""):
    """The bytes a run keeps on disk (final weights + checkpoint), as an expression on `prefix` + fields."""
    return F(f"{prefix}weights_bytes") + F(f"{prefix}checkpoint_bytes")


def storage_used_bytes(*, user) -> int:
    """What `user`'s runs store on disk, from the sizes recorded on their rows."""
    return Experiment.objects.filter(owner=user).aggregate(used=Coalesce(Sum(stored_bytes()), 0))["used"]


def users_with_storage(users: QuerySet) -> QuerySet:
    """`users` annotated with `storage_bytes` (their runs' stored bytes) and `run_count`."""
    return users.annotate(storage_bytes=Coalesce(Sum(stored_bytes("experiments__")), 0),
                          run_count=Count("experiments"))


HISTORY_LIMIT = 200


def run_summary(*, experiment: Experiment, metrics=None):
    """The recommender's plain-data view of one run (no ORM objects inside)."""
    if metrics is None:
        metrics = experiment_metrics(experiment=experiment)
    epochs = [{field: getattr(m, field) for field in ("epoch", *METRIC_FIELDS)} for m in metrics]
    return RunSummary(config=experiment.config, status=experiment.status, epochs=epochs,
                      best_val_accuracy=experiment.best_val_accuracy, best_epoch=experiment.best_epoch,
                      test_accuracy=experiment.test_accuracy, message=experiment.message,
                      run_id=experiment.pk, diagnoses=tuple(experiment.diagnoses or ()))


def recommender_history(*, experiment: Experiment) -> list:
    """The owner's other finished runs with a result, newest first (metrics not needed)."""
    others = (Experiment.objects.filter(owner_id=experiment.owner_id, status=Experiment.Status.SUCCEEDED,
                                        best_val_accuracy__isnull=False)
              .exclude(pk=experiment.pk).order_by("-finished_at")[:HISTORY_LIMIT])
    return [run_summary(experiment=other, metrics=[]) for other in others]


def recommendation_get(*, user, recommendation_id: int) -> Recommendation | None:
    return (Recommendation.objects.select_related("experiment")
            .filter(pk=recommendation_id, experiment__owner=user).first())


def recommender_stats() -> list[dict]:
    """Per kind: how often advice was given, applied, evaluated, and how often it helped."""
    rows = (Recommendation.objects.values("kind")
            .annotate(given=Count("id"),
                      applied=Count("id", filter=Q(applied_at__isnull=False)),
                      evaluated=Count("id", filter=Q(improved__isnull=False)),
                      helped=Count("id", filter=Q(improved=True)),
                      mean_delta=Avg("outcome_delta"))
            .order_by("kind"))
    stats = []
    for row in rows:
        row["help_rate"] = row["helped"] / row["evaluated"] if row["evaluated"] else None
        stats.append(row)
    return stats


def recommendation_outcomes() -> dict[str, tuple[int, int]]:
    """Per kind, across all users: (applied advice whose child finished, of those the ones that helped)."""
    rows = (Recommendation.objects.filter(improved__isnull=False).values("kind")
            .annotate(evaluated=Count("id"), helped=Count("id", filter=Q(improved=True))))
    return {row["kind"]: (row["evaluated"], row["helped"]) for row in rows}


def experiment_children_ids(*, experiment: Experiment) -> list[int]:
    # Only the owner's runs: a derived run is always created by the parent's owner.
    return list(experiment.children.filter(owner_id=experiment.owner_id)
                .order_by("id").values_list("id", flat=True))


def visible_run(*, user, experiment_id: int) -> Experiment | None:
    """The run if `user` may watch it live: its owner, or any staff member."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_staff:
        return Experiment.objects.filter(pk=experiment_id).defer("misclassified").first()
    return experiment_get(user=user, experiment_id=experiment_id)


# --------------------------------------------------------------------------- sweeps

SWEEP_ORDERING_FIELDS = ("created_at", "name", "status", "strategy")
WARM_START_LIMIT = 500


def sweeps_visible_to(*, user) -> QuerySet[Sweep]:
    """Sweeps a user may see: their own (staff review through the admin)."""
    return Sweep.objects.filter(owner=user)


def sweep_list(*, user, status: str | None = None) -> QuerySet[Sweep]:
    from django.db.models import Count

    sweeps = sweeps_visible_to(user=user).annotate(trial_count=Count("trials")).select_related("best_trial")
    if status:
        sweeps = sweeps.filter(status__in=status.split(","))
    return sweeps


def sweep_get(*, user, sweep_id: int) -> Sweep | None:
    """The sweep if `user` may see it, else None (the API answers 404 either way)."""
    return sweeps_visible_to(user=user).filter(pk=sweep_id).first()


def visible_sweep(*, user, sweep_id: int) -> Sweep | None:
    """The sweep if `user` may watch it live: its owner, or any staff member (as for runs)."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_staff:
        return Sweep.objects.filter(pk=sweep_id).first()
    return sweep_get(user=user, sweep_id=sweep_id)


def sweep_trials(*, sweep: Sweep) -> QuerySet[Experiment]:
    return Experiment.objects.filter(sweep=sweep).order_by("trial_number", "id")


def _trial_records(runs: QuerySet[Experiment], *, warm: bool = False) -> list:
    """Plain-data trials (search.records.TrialRecord) with their per-epoch val accuracies: two queries."""
    from experiments.search.records import TrialRecord

    rows = list(runs.values("id", "trial_number", "status", "config", "best_val_accuracy", "test_accuracy",
                            "epochs_done", "message", "error_message", "finished_at", "started_at", "sweep_rung"))
    epochs: dict[int, dict[int, float]] = {row["id"]: {} for row in rows}
    seconds: dict[int, float] = {row["id"]: 0.0 for row in rows}
    metrics = (EpochMetric.objects.filter(experiment_id__in=list(epochs))
               .values_list("experiment_id", "epoch", "val_accuracy", "seconds"))
    for experiment_id, epoch, val_accuracy, epoch_seconds in metrics:
        epochs[experiment_id][epoch] = val_accuracy
        seconds[experiment_id] += epoch_seconds
    return [TrialRecord(number=0 if warm else row["trial_number"], experiment_id=row["id"], status=row["status"],
                        config=row["config"] if isinstance(row["config"], dict) else {},
                        best_val_accuracy=row["best_val_accuracy"], test_accuracy=row["test_accuracy"],
                        epochs_done=row["epochs_done"], intermediate=epochs[row["id"]], seconds=seconds[row["id"]],
                        message=row["message"] or row["error_message"], warm=warm,
                        finished_at=row["finished_at"].timestamp() if row["finished_at"] else None,
                        started_at=row["started_at"].timestamp() if row["started_at"] else None,
                        rung=row["sweep_rung"])
            for row in rows]


def sweep_trial_records(*, sweep: Sweep) -> list:
    """The sweep's trials as experiments.search.records.TrialRecord, by trial number."""
    return _trial_records(sweep_trials(sweep=sweep))


def sweep_trial_records_changed(*, sweep: Sweep, after: int, numbers: list[int]) -> list:
    """The trials numbered above `after` or in `numbers` (what a cached study has not seen final)."""
    return _trial_records(sweep_trials(sweep=sweep).filter(Q(trial_number__gt=after) | Q(trial_number__in=numbers)))


def sweep_trial_fingerprint(*, sweep: Sweep):
    """search.study.Fingerprint of the sweep's trial rows: one aggregate query."""
    from django.db.models import Count, Max

    from experiments.search.study import Fingerprint

    row = Experiment.objects.filter(sweep=sweep).aggregate(
        count=Count("id"), active=Count("id", filter=Q(status__in=Experiment.ACTIVE_STATUSES)),
        last=Max("trial_number"), finished=Max("finished_at"))
    return Fingerprint(count=row["count"], active=row["active"], last=row["last"] or 0,
                       finished=row["finished"].timestamp() if row["finished"] else None)


def sweep_typical_trial_seconds(*, sweep: Sweep, rung: int | None = None) -> float | None:
    """The median wall time (start to end) of the sweep's succeeded trials (of one autotune rung), or None."""
    runs = Experiment.objects.filter(sweep=sweep, status=Experiment.Status.SUCCEEDED, started_at__isnull=False,
                                     finished_at__isnull=False)
    if rung is not None:
        runs = runs.filter(sweep_rung=rung)
    spans = sorted((end - start).total_seconds()
                   for start, end in runs.order_by("-finished_at").values_list("started_at", "finished_at")[:50])
    return spans[len(spans) // 2] if spans else None


def sweep_warm_records(*, sweep: Sweep) -> list:
    """The earlier runs imported at creation (those still stored), as completed TrialRecords."""
    ids = [i for i in (sweep.warm_start_runs or []) if isinstance(i, int)]
    if not ids:
        return []
    runs = Experiment.objects.filter(pk__in=ids, owner_id=sweep.owner_id, status=Experiment.Status.SUCCEEDED)
    return _trial_records(runs.order_by("id"), warm=True)


def sweep_warm_start_candidates(*, owner) -> QuerySet[Experiment]:
    """The owner's finished runs outside any sweep that have a result, newest first."""
    return (Experiment.objects.filter(owner=owner, sweep__isnull=True, status=Experiment.Status.SUCCEEDED,
                                      best_val_accuracy__isnull=False)
            .order_by("-finished_at", "-id")[:WARM_START_LIMIT])


def sweep_trial_record(*, experiment_id: int):
    """One trial as a TrialRecord (for pruning decisions), or None if the run is not a sweep trial."""
    records = _trial_records(Experiment.objects.filter(pk=experiment_id, sweep__isnull=False))
    return records[0] if records else None


def sweep_counts(*, sweep: Sweep, records=None) -> dict[str, int]:
    records = sweep_trial_records(sweep=sweep) if records is None else records
    counts = {status: 0 for status in Experiment.Status.values}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    created = max(sweep.trials_created, max((r.number for r in records), default=0))
    counts["total"] = len(records)
    counts["active"] = counts["queued"] + counts["running"]
    counts["remaining"] = max(0, _sweep_budget(sweep) - created) if sweep.status in Sweep.ACTIVE_STATUSES else 0
    return counts


def _sweep_budget(sweep: Sweep) -> int:
    from experiments.search.records import SweepSpec
    from experiments.search.space import SweepSpecError

    try:
        return SweepSpec.from_row(sweep).effective_budget
    except SweepSpecError:
        return sweep.budget


def sweep_trial_row(spec, record) -> dict[str, Any]:
    """One trial as the API and the CSV show it."""
    return {
        "id": record.experiment_id,
        "trial_number": record.number,
        "status": record.status,
        "params": spec.params_of(record.config),
        "best_val_accuracy": record.best_val_accuracy,
        "test_accuracy": record.test_accuracy,
        "epochs_done": record.epochs_done,
        "seconds": round(record.seconds, 3),
        "parameters": record.parameters,
        "pruned": record.status == Experiment.Status.PRUNED,
        "message": record.message,
    }


def sweep_detail(*, sweep: Sweep) -> dict[str, Any]:
    """Everything the sweep page shows: its settings, trials, best, Pareto front, importance, warnings."""
    from experiments.search.analysis import analyse
    from experiments.search.autotune import anytime_curve
    from experiments.search.records import SweepSpec

    records = sweep_trial_records(sweep=sweep)
    spec = SweepSpec.from_row(sweep)
    analysis = analyse(spec, records)
    best_id = sweep.best_trial_id or analysis["best_trial"]
    return {
        "id": sweep.pk,
        "name": sweep.name,
        "status": sweep.status,
        "strategy": sweep.strategy,
        "objective": sweep.objective,
        "second_objective": sweep.second_objective,
        "pruner": sweep.pruner,
        "budget": sweep.budget,
        "parallelism": sweep.parallelism,
        "seed": sweep.seed,
        "warm_start": sweep.warm_start,
        "warm_start_runs": list(sweep.warm_start_runs or []),
        "space": sweep.space,
        "base_config": sweep.base_config,
        "message": sweep.message,
        "created_at": sweep.created_at,
        "finished_at": sweep.finished_at,
        "trials": [sweep_trial_row(spec, record) for record in records],
        "best_trial": best_id,
        "best_value": next((r.best_val_accuracy for r in records if r.experiment_id == best_id), None),
        "pareto_front": analysis["pareto_front"],
        "best_so_far": analysis["best_so_far"],
        "importance": analysis["importance"],
        "warnings": analysis["warnings"],
        "counts": sweep_counts(sweep=sweep, records=records),
        "time_budget_seconds": sweep.time_budget_seconds,
        "autotune": sweep.autotune,
        "anytime": anytime_curve(records, start=sweep.created_at.timestamp()),
    }


def sweep_trials_table(*, sweep: Sweep) -> tuple[list[str], list[dict[str, Any]]]:
    """CSV columns and rows: one per trial, each varied field a column."""
    import json

    from experiments.search.records import SweepSpec

    spec = SweepSpec.from_row(sweep)
    records = sweep_trial_records(sweep=sweep)
    columns = ["trial_number", "experiment_id", "status", *spec.params, "best_val_accuracy", "test_accuracy",
               "epochs_done", "seconds", "parameters", "message"]
    rows = []
    for record in records:
        row = sweep_trial_row(spec, record)
        params = {name: json.dumps(value) if isinstance(value, (list, dict)) else value
                  for name, value in row.pop("params").items()}
        rows.append({**row, **params, "experiment_id": row["id"]})
    return columns, rows


# --------------------------------------------------------------------------- Find the fix


def experiment_fix_sweeps(*, experiment: Experiment) -> list[Sweep]:
    """The run's Find-the-fix sweeps, newest first."""
    return list(Sweep.objects.filter(fix_of=experiment).order_by("-created_at", "-id"))


def fix_sweep_payload(*, sweep: Sweep) -> dict[str, Any]:
    """A fix sweep as the API and the page show it: each candidate with its trial's live status and,
    once measured, its gain over the parent (the stored `fix_result` when the sweep has ended)."""
    from experiments.recommender.fixes import fix_verdict

    parent = sweep.fix_of
    trials = {t.trial_number: t for t in sweep_trials(sweep=sweep)}
    parent_best = parent.best_val_accuracy if parent else None
    if parent is not None and parent_best is None and parent.status == Experiment.Status.DIVERGED:
        parent_best = 0.0
    measured = [{**candidate, "trial": trials[n].pk if n in trials else None,
                 "status": trials[n].status if n in trials else "waiting",
                 "best_val_accuracy": trials[n].best_val_accuracy if n in trials else None}
                for n, candidate in enumerate(sweep.candidates or [], start=1)]
    verdict = fix_verdict(parent_best, measured)
    for row, (n, _) in zip(verdict["candidates"], enumerate(sweep.candidates or [], start=1)):
        trial = trials.get(n)
        row["number"] = n
        row["epochs_done"] = trial.epochs_done if trial else 0
        row["epochs"] = (trial.config or {}).get("epochs") if trial else None
    result = sweep.fix_result
    return {"id": sweep.pk, "name": sweep.name, "status": sweep.status, "message": sweep.message,
            "parent": sweep.fix_of_id, "parent_best_val_accuracy": parent_best,
            "created_at": sweep.created_at, "finished_at": sweep.finished_at,
            "candidates": verdict["candidates"],
            "winner": result.get("winner") if result else None,
            "recommendation": result.get("recommendation") if result else None,
            "fix_result": result}


# --------------------------------------------------------------------------- API tokens

# A token's public id: the start of its SHA-512 digest. The secret is never stored, and the
# plain-text lookup prefix knox keeps is a piece of the secret, so that is not shown either.
TOKEN_ID_LENGTH = 16


def token_id(token) -> str:
    return token.digest[:TOKEN_ID_LENGTH]


def token_list(*, user) -> QuerySet:
    """The user's tokens that have not expired, newest first."""
    from django.utils import timezone
    from knox.models import get_token_model

    live = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    return get_token_model().objects.filter(live, user=user).order_by("-created", "digest")


def token_get(*, user, token_id: str):
    """The user's live token with this id, else None (a malformed id included)."""
    import re

    if len(token_id) != TOKEN_ID_LENGTH or not re.fullmatch(r"[0-9a-f]+", token_id):
        return None
    return token_list(user=user).filter(digest__startswith=token_id).first()

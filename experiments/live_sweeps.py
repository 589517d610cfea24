"""The one wire format of a sweep: the REST API and the sweep websocket send the same objects.

- sweep detail = GET /api/sweeps/<id>/ (settings, `trials`, best, Pareto front, best-so-far
                 curve, importance, warnings, counts); the websocket snapshot's `sweep` is
                 exactly this object;
- trial row    = an entry of its `trials`; `trial_started`, `trial_epoch` and `trial_ended`
                 events carry one as `trial` (a client replaces the row with the same `id`);
- sweep fields = the detail without `trials`: `sweep_status` and `sweep_finished` events
                 carry all of them (a client merges them into its detail);
- `best_changed` carries best_trial, best_value and best_so_far, named as in the detail.

Services call the `publish_*` / `announce_*` helpers after their writes commit; each one
reads the database under the sweep's publish lock (experiments.events.publish_sweep), so
the events of one sweep are numbered in the order their reads happened.
Schema: README "Live events".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction

from experiments import events, selectors
from experiments.live import ordered_config, timestamp
from experiments.models import Experiment, Sweep

TRIAL_EVENTS = ("trial_started", "trial_epoch", "trial_ended")
BEST_FIELDS = ("best_trial", "best_value", "best_so_far")


def sweep_detail(sweep: Sweep) -> dict[str, Any]:
    """GET /api/sweeps/<id>/ (the REST serializer delegates here) = the snapshot's `sweep`."""
    detail = selectors.sweep_detail(sweep=sweep)
    detail.update(created_at=timestamp(detail["created_at"]), finished_at=timestamp(detail["finished_at"]),
                  base_config=ordered_config(detail["base_config"]))
    return detail


def sweep_fields(detail: dict[str, Any]) -> dict[str, Any]:
    """A sweep_status / sweep_finished event's fields: the detail without its trials."""
    return {name: value for name, value in detail.items() if name != "trials"}


def trial_row(*, sweep: Sweep, experiment_id: int) -> dict[str, Any] | None:
    """One trial as an entry of the detail's `trials`, or None when it is not (or no longer) stored."""
    from experiments.search.records import SweepSpec

    record = selectors.sweep_trial_record(experiment_id=experiment_id)
    if record is None:
        return None
    return selectors.sweep_trial_row(SweepSpec.from_row(sweep), record)


def snapshot(*, user, sweep_id: int) -> dict[str, Any] | None:
    """{"type": "snapshot", "seq", "sweep": <sweep detail>}, or None if `user` may not watch it.

    Reads the seq counter *before* the database (see experiments/consumers.py); the caller
    must already be in the sweep's group.
    """
    seq = events.current_sweep_seq(sweep_id)
    sweep = selectors.visible_sweep(user=user, sweep_id=sweep_id)
    if sweep is None:
        return None
    return {"type": "snapshot", "seq": seq, "sweep": sweep_detail(sweep)}


# --------------------------------------------------------------------------- publishing


def _trial_event(kind: str, sweep_id: int, experiment_id: int, **extra: Any) -> list[dict[str, Any]]:
    sweep = Sweep.objects.filter(pk=sweep_id).first()
    row = trial_row(sweep=sweep, experiment_id=experiment_id) if sweep is not None else None
    if row is None:
        return []
    if kind == "trial_ended":
        extra["reason"] = row["message"]
    return [{"type": kind, "trial": row, **extra}]


def publish_trial(experiment: Experiment, kind: str, **extra: Any) -> None:
    """A trial event (`kind` in TRIAL_EVENTS) for a sweep's run, once the current transaction commits;
    nothing for a run outside sweeps. `trial_ended` adds `reason` (the trial's message: why it was
    pruned, stopped or failed)."""
    if experiment.sweep_id is None:
        return
    build = partial(_trial_event, kind, experiment.sweep_id, experiment.pk, **extra)
    transaction.on_commit(partial(events.publish_sweep, experiment.sweep_id, build))


def publish_trial_epoch(experiment: Experiment, *, epoch: int, val_accuracy: float) -> None:
    """A trial stored `epoch`: its row (epochs_done, best_val_accuracy, seconds so far) and the epoch's val."""
    publish_trial(experiment, "trial_epoch", epoch=epoch, val_accuracy=val_accuracy)


@dataclass(frozen=True)
class Before:
    """What a sweep was before a service changed it: tells `best_changed` and `sweep_finished` apart."""

    status: str
    best_trial: int | None

    @classmethod
    def of(cls, sweep: Sweep) -> Before:
        return cls(status=sweep.status, best_trial=sweep.best_trial_id)


def _sweep_events(sweep_id: int, before: Before, started: tuple[int, ...]) -> list[dict[str, Any]]:
    sweep = Sweep.objects.filter(pk=sweep_id).first()
    if sweep is None:
        return []
    detail = sweep_detail(sweep)
    rows = {row["id"]: row for row in detail["trials"]}
    out: list[dict[str, Any]] = []
    for row in (rows[i] for i in started if i in rows):  # an invalid combination is stored failed at once
        active = row["status"] in Experiment.ACTIVE_STATUSES
        out.append({"type": "trial_started", "trial": row} if active
                   else {"type": "trial_ended", "trial": row, "reason": row["message"]})
    if detail["best_trial"] != before.best_trial:
        out.append({"type": "best_changed", **{name: detail[name] for name in BEST_FIELDS}})
    finished = before.status in Sweep.ACTIVE_STATUSES and sweep.status not in Sweep.ACTIVE_STATUSES
    out.append({"type": "sweep_finished" if finished else "sweep_status", **sweep_fields(detail)})
    return out


def announce_sweep(sweep: Sweep, before: Before, *, started: list[int] | tuple[int, ...] = ()) -> None:
    """After the current transaction commits: `trial_started` for each run in `started` (new or re-queued
    trials; `trial_ended` for one already stored as failed), `best_changed` if the best trial is not `before`'s, then `sweep_status` (`sweep_finished`
    when the sweep just left queued/running) with every sweep-level field."""
    build = partial(_sweep_events, sweep.pk, before, tuple(started))
    transaction.on_commit(partial(events.publish_sweep, sweep.pk, build))

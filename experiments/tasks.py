"""Celery tasks: take an id, call one service. Services send them by name (experiments/broker.py)."""

from celery import shared_task

from experiments import broker
from experiments.services.execution import experiment_run
from experiments.services.reconcile import runs_reconcile


@shared_task(name=broker.RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_experiment(self, experiment_id: int, handed_back_lease: int | None = None) -> None:
    # Idempotent: the service claims the run with a conditional UPDATE, so a duplicate
    # or re-delivered message either resumes a dead attempt or does nothing.
    experiment_run(experiment_id=experiment_id, task_id=self.request.id or "", handed_back_lease=handed_back_lease)


@shared_task(name=broker.RECONCILE_TASK, ignore_result=True)
def reconcile_runs() -> dict:
    """Celery beat, every minute: re-enqueue runs the broker lost or whose worker vanished."""
    return runs_reconcile()

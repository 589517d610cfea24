"""Celery tasks: take an id, call one service."""

from celery import shared_task

from experiments import services


@shared_task(name="experiments.run_experiment", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_experiment(self, experiment_id: int) -> None:
    # Idempotent: the service claims the run with a conditional UPDATE, so a duplicate
    # or re-delivered message either resumes a dead attempt or does nothing.
    services.experiment_run(experiment_id=experiment_id, task_id=self.request.id or "")


@shared_task(name="experiments.reconcile_runs", ignore_result=True)
def reconcile_runs() -> dict:
    """Celery beat, every minute: re-enqueue runs the broker lost or whose worker vanished."""
    return services.runs_reconcile()

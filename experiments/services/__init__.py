"""Every write to experiments, one module per concern; views, tasks, consumers and commands
validate input and call one function here.

- runs.py            create (quota), rerun, cancel, delete
- execution.py       the worker's side: claim and lease, epoch writes, the trainer's callbacks
                     (RunMonitor), the task body `experiment_run`, the shutdown hand-back
- lifecycle.py       `run_end`: the one way a run reaches a final status, and its subscribers
- recommendations.py advice stored when a run ends, Apply & Run
- sweeps.py          sweeps: create, fill (the coordinator), extend, retry, cancel, pruning
- reconcile.py       re-send what the broker lost, re-deliver runs whose worker vanished
- artifacts.py       a run's files: checkpoint deleted when it ends, sizes, the storage limit, pruning

Callers may import the functions from this package; the errors live in experiments/errors.py.
"""

from experiments.errors import (
    ConfigInvalid,
    InvalidState,
    LeaseLost,
    QuotaExceeded,
    ServiceError,
    StorageLimitExceeded,
    SweepInvalid,
    SweepTrialNotFound,
)
from experiments.services.artifacts import artifacts_prune
from experiments.services.execution import (
    RunMonitor,
    artifact_path,
    experiment_claim,
    experiment_fail,
    experiment_finish,
    experiment_give_up,
    experiment_hand_back,
    experiment_record_epoch,
    experiment_run,
    request_worker_stop,
    worker_identity,
)
from experiments.services.recommendations import recommendation_apply, recommendations_generate
from experiments.services.reconcile import runs_reconcile
from experiments.services.runs import (
    config_validate,
    experiment_cancel,
    experiment_create,
    experiment_delete,
    experiment_rerun,
)
from experiments.services.sweeps import (
    sweep_cancel,
    sweep_create,
    sweep_extend,
    sweep_fill,
    sweep_trial_prune_check,
    sweep_trial_retry,
)

__all__ = [
    "StorageLimitExceeded", "artifacts_prune",
    "ConfigInvalid", "InvalidState", "LeaseLost", "QuotaExceeded", "RunMonitor", "ServiceError", "SweepInvalid",
    "SweepTrialNotFound", "artifact_path", "config_validate", "experiment_cancel", "experiment_claim",
    "experiment_create", "experiment_delete", "experiment_fail", "experiment_finish", "experiment_record_epoch",
    "experiment_give_up", "experiment_hand_back", "experiment_rerun", "experiment_run", "recommendation_apply",
    "recommendations_generate", "request_worker_stop", "runs_reconcile", "sweep_cancel", "sweep_create",
    "sweep_extend", "sweep_fill", "sweep_trial_prune_check", "sweep_trial_retry", "worker_identity",
]

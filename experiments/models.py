"""Experiments (training runs), their per-epoch metrics and their recommendations.

No business logic here: writes live in experiments/services/, reads in selectors.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Experiment(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        DIVERGED = "diverged", "Diverged"
        CANCELLED = "cancelled", "Cancelled"
        PRUNED = "pruned", "Pruned"  # a sweep trial its pruner stopped early (epochs kept)

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.DIVERGED, Status.CANCELLED, Status.PRUNED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="experiments")
    name = models.CharField(max_length=200, blank=True)
    config = models.JSONField(help_text="Hyperparameters, validated by training.config.TrainingConfig.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="children", help_text="The run this one was derived from.")
    source_recommendation = models.ForeignKey(
        "Recommendation", null=True, blank=True, on_delete=models.SET_NULL, related_name="applied_runs",
        help_text="The recommendation whose changes created this run (Apply & Run).")
    sweep = models.ForeignKey("Sweep", null=True, blank=True, on_delete=models.SET_NULL, related_name="trials",
                              help_text="The sweep this run is a trial of.")
    trial_number = models.PositiveIntegerField(null=True, blank=True,
                                               help_text="1-based number of the trial within its sweep.")

    sweep_rung = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Autotune: the trial's fidelity rung (0 = cheapest); the final trial's is "
                                         "one past the last search rung.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    epochs_done = models.PositiveIntegerField(default=0)
    best_val_accuracy = models.FloatField(null=True, blank=True)
    best_epoch = models.PositiveIntegerField(null=True, blank=True)
    test_accuracy = models.FloatField(null=True, blank=True)
    test_loss = models.FloatField(null=True, blank=True)
    confusion_matrix = models.JSONField(null=True, blank=True)
    per_class_accuracy = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True, help_text="Why the run ended as it did (early stop, divergence).")
    performance_category = models.CharField(max_length=16, blank=True)
    analysis = models.JSONField(null=True, blank=True, help_text="The recommender's summary of the run.")
    error_message = models.TextField(blank=True)

    # Work distribution. `attempts` is the lease: each delivery that claims the run bumps
    # it, and only the holder of the current value may write epochs or finish the run.
    task_id = models.CharField(max_length=64, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Graceful hand-backs (worker shutdown, broker loss, database outage): they bump `attempts`
    # like any claim (the lease stays monotonic) but do not count against TUNER_MAX_ATTEMPTS.
    handbacks = models.PositiveIntegerField(default=0)
    # Set with the final status, cleared once everything that follows a run's end (advice,
    # artifacts, the sweep's next trials) has run; the reconciler finishes what a crash left.
    post_run_pending = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    weights_path = models.CharField(max_length=500, blank=True)
    checkpoint_bytes = models.BigIntegerField(default=0, help_text="Size of the stored checkpoint.")
    weights_bytes = models.BigIntegerField(default=0, help_text="Size of the stored final weights.")
    misclassified = models.JSONField(
        null=True, blank=True,
        help_text="Test images the final network gets wrong, computed once by the worker when the run ends.")
    # Live diagnosis: what the recommender's per-epoch checks found while the run trained.
    diagnoses = models.JSONField(
        default=list, blank=True,
        help_text="Problems recognised while training: [{epoch, kind, severity, title, message, changes}].")
    stop_on_diagnosis = models.BooleanField(
        default=False, help_text="Stop the run at the first critical live diagnosis, with its reason.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status"], name="experiment_owner_status"),
            models.Index(fields=["owner", "-created_at"], name="experiment_owner_created"),
            models.Index(fields=["status", "heartbeat_at"], name="experiment_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "diverged",
                                        "cancelled", "pruned"]),
                name="experiment_status_valid",
            ),
            models.UniqueConstraint(fields=["sweep", "trial_number"], name="experiment_unique_sweep_trial"),
            models.CheckConstraint(condition=Q(sweep__isnull=True) | Q(trial_number__gte=1),
                                   name="experiment_sweep_trial_numbered"),
            models.CheckConstraint(
                condition=Q(best_val_accuracy__isnull=True)
                | Q(best_val_accuracy__gte=0, best_val_accuracy__lte=1),
                name="experiment_best_val_accuracy_range",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name or 'run'} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()


class EpochMetric(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="metrics")
    epoch = models.PositiveIntegerField()
    train_loss = models.FloatField()
    train_accuracy = models.FloatField()
    val_loss = models.FloatField()
    val_accuracy = models.FloatField()
    learning_rate = models.FloatField()
    seconds = models.FloatField()
    samples_per_second = models.FloatField()
    gradient_norm = models.FloatField()
    gradient_norm_max = models.FloatField(default=0.0)
    dead_unit_fraction = models.FloatField()
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["experiment", "epoch"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "epoch"], name="epochmetric_unique_epoch"),
            models.CheckConstraint(condition=Q(epoch__gte=1), name="epochmetric_epoch_positive"),
        ]

    def __str__(self) -> str:
        return f"epoch {self.epoch} of #{self.experiment_id}"


class Recommendation(models.Model):
    Priority = models.TextChoices("Priority", [(value.upper(), (value, value.title()))
                                               for value in ("critical", "high", "medium", "low")])

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="recommendations")
    kind = models.CharField(max_length=40)
    priority = models.CharField(max_length=10, choices=Priority.choices)
    # Sort key: 0 = critical ... 3 = low; `rank` orders recommendations of one run.
    priority_rank = models.PositiveSmallIntegerField(default=3)
    rank = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=200)
    rationale = models.TextField()
    changes = models.JSONField(default=dict, blank=True)
    confidence = models.FloatField(default=0.5)
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Self-assessment: filled when a run created from this advice finishes.
    applied_at = models.DateTimeField(null=True, blank=True)
    outcome_experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+")
    outcome_delta = models.FloatField(null=True, blank=True,
                                      help_text="Child's best val accuracy minus the parent's.")
    improved = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "priority_rank", "rank", "id"]
        indexes = [models.Index(fields=["kind"], name="recommendation_kind")]

    def __str__(self) -> str:
        return f"{self.priority}: {self.title}"


class Sweep(models.Model):
    """A batch of runs (trials) searched by one strategy within a search space.

    The trials are Experiment rows (Experiment.sweep / trial_number) and the only record
    of what the search has learned: experiments/search rebuilds the optimiser's state
    from them whenever it asks for new parameters or decides about pruning.
    """

    # (member, (value, label)): the search options of experiments/search/space.py, labelled.
    Strategy = models.TextChoices("Strategy", [
        ("GRID", ("grid", "Grid")), ("RANDOM", ("random", "Random")), ("TPE", ("tpe", "TPE (Bayesian)")),
        ("QMC", ("qmc", "Quasi-Monte Carlo")),
        # Not offered to users: "Find the fix" sweeps try a fixed list of candidate changes.
        ("CANDIDATES", ("candidates", "Candidate fixes"))])
    Pruner = models.TextChoices("Pruner", [
        ("NONE", ("none", "None")), ("MEDIAN", ("median", "Median")), ("ASHA", ("asha", "Successive halving (ASHA)"))])
    SecondObjective = models.TextChoices("SecondObjective", [
        ("NONE", ("none", "None")), ("SECONDS", ("seconds", "Training seconds (minimise)")),
        ("PARAMETERS", ("parameters", "Parameter count (minimise)"))])

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    OBJECTIVE = "val_accuracy"  # maximised; the best validation accuracy of a trial
    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    MAX_BUDGET = 200  # trials, for a sweep without a time budget
    MAX_TIMED_BUDGET = 100_000  # trials, for a time-budgeted sweep (the clock is its real limit)
    MAX_TIME_BUDGET_SECONDS = 24 * 3600
    MAX_PARALLELISM = 8

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sweeps")
    name = models.CharField(max_length=200, blank=True)
    base_config = models.JSONField(help_text="The full validated config every trial starts from.")
    space = models.JSONField(help_text='{field: {"values": [...]}} or {field: {"low", "high", "scale", "type"}}.')
    strategy = models.CharField(max_length=12, choices=Strategy.choices, default=Strategy.TPE)
    objective = models.CharField(max_length=32, default=OBJECTIVE, editable=False,
                                 help_text="Maximised: the trial's best validation accuracy.")
    second_objective = models.CharField(max_length=12, choices=SecondObjective.choices,
                                        default=SecondObjective.NONE,
                                        help_text="Minimised alongside the objective; the result is a Pareto front.")
    budget = models.PositiveIntegerField(help_text="Most trials the sweep creates.")
    time_budget_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Wall-clock budget from created_at (extend adds to it); None: trials only.")
    autotune = models.JSONField(
        null=True, blank=True, help_text="Tune for me: {minutes, fixed, rungs, final, ...} "
                                         "(experiments/search/autotune.py); None for an ordinary sweep.")
    trials_created = models.PositiveIntegerField(
        default=0, help_text="Trials created so far (the last trial_number); deleted ones still count.")
    parallelism = models.PositiveSmallIntegerField(default=2, help_text="Most trials queued or running at once.")
    pruner = models.CharField(max_length=8, choices=Pruner.choices, default=Pruner.NONE)
    seed = models.PositiveIntegerField(default=0, help_text="Seeds the sampler: same seed and results, same trials.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    best_trial = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    warm_start = models.BooleanField(default=False,
                                     help_text="Seed the search with the owner's earlier matching runs.")
    warm_start_runs = models.JSONField(default=list, blank=True,
                                       help_text="Ids of the earlier runs imported as completed trials.")
    message = models.TextField(blank=True, help_text="Why the sweep ended, or why it is waiting.")
    diagnostic_pruning = models.BooleanField(
        default=False, help_text="Also stop trials the live diagnosis finds hopeless (beside median/ASHA).")
    # "Find the fix": a sweep of candidate changes to one finished run, compared with it.
    fix_of = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="fix_sweeps", help_text="The run whose diagnosis this sweep verifies.")
    candidates = models.JSONField(
        default=list, blank=True,
        help_text="Find the fix: [{kind, title, changes}], trial n tries candidate n on the parent's config.")
    fix_result = models.JSONField(
        null=True, blank=True,
        help_text="Find the fix: the measured gain per candidate and the winner, once every trial ended.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status"], name="sweep_owner_status"),
            models.Index(fields=["owner", "-created_at"], name="sweep_owner_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["queued", "running", "finished", "cancelled"]),
                                   name="sweep_status_valid"),
            models.CheckConstraint(condition=Q(strategy__in=["grid", "random", "tpe", "qmc", "candidates"]),
                                   name="sweep_strategy_valid"),
            models.CheckConstraint(condition=Q(pruner__in=["none", "median", "asha"]), name="sweep_pruner_valid"),
            models.CheckConstraint(condition=Q(second_objective__in=["none", "seconds", "parameters"]),
                                   name="sweep_second_objective_valid"),
            models.CheckConstraint(condition=Q(budget__gte=1) & (Q(budget__lte=200) | (
                Q(time_budget_seconds__isnull=False) & Q(budget__lte=100_000))), name="sweep_budget_range"),
            models.CheckConstraint(condition=Q(time_budget_seconds__isnull=True) | Q(
                time_budget_seconds__gte=1, time_budget_seconds__lte=24 * 3600), name="sweep_time_budget_range"),
            models.CheckConstraint(condition=Q(parallelism__gte=1, parallelism__lte=8),
                                   name="sweep_parallelism_range"),
        ]

    def __str__(self) -> str:
        return f"sweep #{self.pk} {self.name or ''} ({self.strategy}, {self.status})".replace("  ", " ")

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class WorkerHeartbeat(models.Model):
    """A Celery worker process that says it is alive (experiments/services/workers.py).

    Written by the worker's main process at start-up and then every
    TUNER_WORKER_HEARTBEAT_SECONDS; deleted on a clean shutdown. A row whose `last_seen` is
    older than a few intervals belongs to a worker that died without saying so (shown offline).
    Its runs are the running Experiments whose `worker_host` ("host:pid") names one of `pids`.
    """

    nodename = models.CharField(max_length=255, unique=True, help_text="Celery's node name, e.g. tuner@host.")
    hostname = models.CharField(max_length=255, help_text="The machine (socket.gethostname()).")
    pid = models.PositiveIntegerField(help_text="The worker's main process.")
    pids = models.JSONField(default=list, blank=True,
                            help_text="The processes that train (pool children, or the main process).")
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["hostname", "nodename"]

    def __str__(self) -> str:
        return f"{self.nodename} (pid {self.pid})"

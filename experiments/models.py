"""Experiments (training runs), their per-epoch metrics and their recommendations.

No business logic here: writes live in services.py, reads in selectors.py.
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

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.DIVERGED, Status.CANCELLED)

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
    cancel_requested = models.BooleanField(default=False)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    weights_path = models.CharField(max_length=500, blank=True)

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
                                        "cancelled"]),
                name="experiment_status_valid",
            ),
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
    class Priority(models.TextChoices):
        CRITICAL = "critical", "Critical"
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

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

"""Runs (with their epochs and advice inline), epoch metrics and recommendations.

Runs are created through the API and trained by workers, so the admin edits nothing that
would bypass the services: results, status and the configuration are read-only, and the
only writes are the actions (which call services) and the name.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from experiments import selectors, services
from experiments.admin.common import (
    EMPTY,
    ReadOnlyInline,
    RecentExperimentFilter,
    ViewOnlyAdmin,
    class_names_for,
    config_value,
    duration_text,
    format_value,
    percent,
    run_ids,
)
from experiments.errors import ServiceError
from experiments.models import EpochMetric, Experiment, Recommendation
from experiments.services.artifacts import human_bytes
from training.config import FIELDS, OPTIMIZERS
from training.trainer import METRIC_FIELDS


class OptimizerFilter(admin.SimpleListFilter):
    title = "optimizer"
    parameter_name = "optimizer"

    def lookups(self, request, model_admin):
        return [(name, name) for name in OPTIMIZERS]

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(config__optimizer=value)
        return queryset


class EpochMetricInline(ReadOnlyInline):
    model = EpochMetric
    fk_name = "experiment"
    fields = ("epoch", *METRIC_FIELDS)
    ordering = ("epoch",)


class RecommendationInline(ReadOnlyInline):
    model = Recommendation
    fk_name = "experiment"
    fields = ("priority", "kind", "title", "rationale", "changes", "confidence")
    ordering = ("priority_rank", "rank", "id")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "status", "hidden_layers", "optimizer", "learning_rate",
                    "batch_size", "epochs", "best_val", "test_acc", "duration", "storage")
    list_display_links = ("id", "name")
    list_filter = ("status", "owner", OptimizerFilter)
    search_fields = ("name", "owner__username")
    search_help_text = "Name, owner's username, or a run id (12 or #12)."
    list_select_related = ("owner",)
    list_per_page = 50
    date_hierarchy = "created_at"
    inlines = (EpochMetricInline, RecommendationInline)
    actions = ("cancel_runs", "requeue_runs")
    fieldsets = (
        (None, {"fields": ("name", "owner", "status", "parent_link", "message", "error_message")}),
        ("Configuration", {"fields": ("config_table",)}),
        ("Results", {"fields": ("epochs_done", "best_val_accuracy", "best_epoch", "test_accuracy",
                                "test_loss", "per_class_table", "confusion_table")}),
        ("Timing", {"fields": ("created_at", "started_at", "finished_at", "heartbeat_at", "duration")}),
        ("Worker", {"classes": ("collapse",),
                    "fields": ("task_id", "worker_host", "attempts", "cancel_requested",
                               "checkpoint_path", "weights_path", "checkpoint_bytes", "weights_bytes")}),
    )
    readonly_fields = (
        "owner", "status", "parent_link", "message", "error_message", "config_table",
        "epochs_done", "best_val_accuracy", "best_epoch", "test_accuracy", "test_loss",
        "per_class_table", "confusion_table", "created_at", "started_at", "finished_at",
        "heartbeat_at", "duration", "task_id", "worker_host", "attempts", "cancel_requested",
        "checkpoint_path", "weights_path", "checkpoint_bytes", "weights_bytes",
    )

    def _unlisted_fields(self) -> list[str]:
        """Model fields the fieldsets above do not mention (added later): shown read-only."""
        listed = {name for _, options in self.fieldsets for name in options["fields"]}
        listed |= {"id", "config", "parent"}
        return [f.name for f in self.model._meta.concrete_fields if f.name not in listed]

    def get_fieldsets(self, request, obj=None):
        extra = self._unlisted_fields()
        return self.fieldsets + ((("Other", {"fields": tuple(extra)}),) if extra else ())

    def get_readonly_fields(self, request, obj=None):
        return tuple(self.readonly_fields) + tuple(self._unlisted_fields())

    # -- list columns: the key hyperparameters from the config JSON

    @admin.display(description="hidden layers")
    def hidden_layers(self, obj: Experiment) -> str:
        return format_value(config_value(obj, "hidden_layers"))

    @admin.display(description="optimizer", ordering="config__optimizer")
    def optimizer(self, obj: Experiment) -> str:
        return format_value(config_value(obj, "optimizer"))

    @admin.display(description="learning rate", ordering="config__learning_rate")
    def learning_rate(self, obj: Experiment) -> str:
        return format_value(config_value(obj, "learning_rate"))

    @admin.display(description="batch", ordering="config__batch_size")
    def batch_size(self, obj: Experiment) -> str:
        return format_value(config_value(obj, "batch_size"))

    @admin.display(description="epochs")
    def epochs(self, obj: Experiment) -> str:
        return f"{obj.epochs_done}/{format_value(config_value(obj, 'epochs'))}"

    @admin.display(description="best val", ordering="best_val_accuracy")
    def best_val(self, obj: Experiment) -> str:
        return percent(obj.best_val_accuracy)

    @admin.display(description="test", ordering="test_accuracy")
    def test_acc(self, obj: Experiment) -> str:
        return percent(obj.test_accuracy)

    @admin.display(description="duration")
    def duration(self, obj: Experiment) -> str:
        return duration_text(obj.duration_seconds)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_stored=selectors.stored_bytes())

    @admin.display(description="storage", ordering="_stored")
    def storage(self, obj: Experiment) -> str:
        """Final weights + checkpoint on disk (the checkpoint only while the run may still train)."""
        return human_bytes(obj.weights_bytes + obj.checkpoint_bytes)

    # -- change page

    @admin.display(description="parent")
    def parent_link(self, obj: Experiment) -> str:
        if obj.parent_id is None:
            return EMPTY
        url = reverse("admin:experiments_experiment_change", args=[obj.parent_id])
        return format_html('<a href="{}">#{}</a>', url, obj.parent_id)

    @admin.display(description="config")
    def config_table(self, obj: Experiment) -> SafeString | str:
        config = obj.config
        if not isinstance(config, dict):
            return format_html("<pre>{}</pre>", json.dumps(config, indent=2, sort_keys=True))
        # Known fields in their canonical order, then anything unexpected; values that
        # differ from the default are bold.
        names = [name for name in FIELDS if name in config] + sorted(set(config) - set(FIELDS))
        rows = []
        for name in names:
            value = config[name]
            spec = FIELDS.get(name)
            default = spec.default if spec else None
            if isinstance(default, tuple):
                default = list(default)
            changed = spec is None or value != default
            label = spec.label if spec else name
            rows.append((name, label, format_html("<strong>{}</strong>", format_value(value))
                         if changed else format_value(value), format_value(default) if spec else ""))
        return format_html(
            '<table class="tuner-config"><thead><tr><th>field</th><th>value</th><th>default</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            format_html_join("", '<tr><td title="{1}"><code>{0}</code></td><td>{2}</td><td>{3}</td></tr>',
                             rows),
        )

    @admin.display(description="per-class test accuracy")
    def per_class_table(self, obj: Experiment) -> SafeString | str:
        values = obj.per_class_accuracy or []
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", (
            (name, percent(value)) for name, value in zip(class_names_for(len(values)), values, strict=True)))
        return format_html("<table><tbody>{}</tbody></table>", rows) if values else EMPTY

    @admin.display(description="confusion matrix (rows: true class, columns: predicted)")
    def confusion_table(self, obj: Experiment) -> SafeString | str:
        matrix = obj.confusion_matrix
        if not matrix:
            return EMPTY
        names = class_names_for(len(matrix))
        header = format_html_join("", '<th title="{}">{}</th>', ((n, i) for i, n in enumerate(names)))
        body = format_html_join("", "<tr><th>{}</th>{}</tr>", (
            (name, format_html_join("", "<td>{}</td>", ((cell,) for cell in row)))
            for name, row in zip(names, matrix, strict=True)
        ))
        return format_html("<table><thead><tr><th></th>{}</tr></thead><tbody>{}</tbody></table>", header, body)

    # -- search: name, owner's username, or a run id

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        if term.isdigit() and len(term) < 19:
            results |= queryset.filter(pk=int(term))
        return results, may_have_duplicates

    # -- permissions: runs come from the API, deletion goes through the service

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        if obj is not None and obj.status == Experiment.Status.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # A run's metrics and recommendations go with it: their admins being view-only
        # must not block deleting the run.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        owned = {EpochMetric._meta.verbose_name, Recommendation._meta.verbose_name}
        return deleted, model_count, set(perms_needed) - owned, protected

    def delete_model(self, request: HttpRequest, obj: Experiment) -> None:
        services.experiment_delete(experiment=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        skipped = []
        for experiment in queryset:
            try:
                services.experiment_delete(experiment=experiment)
            except ServiceError as exc:
                skipped.append(f"#{experiment.pk}: {exc.message}")
        if skipped:
            self.message_user(request, "Not deleted: " + "; ".join(skipped), messages.WARNING)

    # -- actions

    @admin.action(description="Cancel selected runs", permissions=["change"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        cancelled, requested, skipped = [], [], []
        for experiment in queryset.order_by("pk"):
            try:
                experiment = services.experiment_cancel(experiment=experiment)
            except ServiceError as exc:
                skipped.append(f"#{experiment.pk} ({exc.message})")
                continue
            (cancelled if experiment.status == Experiment.Status.CANCELLED else requested).append(experiment)
        if cancelled:
            self.message_user(request, f"Cancelled {len(cancelled)} run(s): {run_ids(cancelled)}.",
                              messages.SUCCESS)
        if requested:
            self.message_user(
                request, f"Cancel requested for {len(requested)} running run(s): {run_ids(requested)}; "
                         "each stops within one mini-batch.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {len(skipped)} run(s): {'; '.join(skipped)}",
                              messages.WARNING)

    @admin.action(description="Re-queue selected runs", permissions=["change"])
    def requeue_runs(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        created, skipped = [], []
        for experiment in queryset.select_related("owner").order_by("pk"):
            try:
                created.append((experiment, services.experiment_rerun(experiment=experiment,
                                                                      owner=experiment.owner)))
            except ServiceError as exc:
                skipped.append(f"#{experiment.pk} ({exc.message})")
        if created:
            pairs = ", ".join(f"#{new.pk} (from #{old.pk})" for old, new in created)
            self.message_user(request, f"Queued {len(created)} new run(s): {pairs}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {len(skipped)} run(s): {'; '.join(skipped)}",
                              messages.WARNING)


@admin.register(EpochMetric)
class EpochMetricAdmin(ViewOnlyAdmin):
    list_display = ("experiment", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                    "learning_rate", "seconds", "samples_per_second", "gradient_norm", "dead_unit_fraction")
    list_filter = (RecentExperimentFilter, "experiment__status")
    list_select_related = ("experiment",)
    search_fields = ("experiment__name",)
    ordering = ("-experiment_id", "epoch")
    list_per_page = 100


@admin.register(Recommendation)
class RecommendationAdmin(ViewOnlyAdmin):
    list_display = ("kind", "priority", "title", "experiment", "confidence", "created_at")
    list_filter = ("priority", "kind", RecentExperimentFilter)
    list_select_related = ("experiment",)
    search_fields = ("title", "kind", "experiment__name")
    ordering = ("-experiment_id", "priority_rank", "rank", "id")

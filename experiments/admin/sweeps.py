"""Sweeps, with their trials inline; cancel and resume go through the services."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from experiments import services
from experiments.admin.common import EMPTY, ReadOnlyInline, config_value, format_value, percent, run_ids
from experiments.errors import ServiceError
from experiments.models import Experiment, Sweep


class SweepTrialInline(ReadOnlyInline):
    """A sweep's trials (runs), by trial number, each linking to its run's page."""

    model = Experiment
    fk_name = "sweep"
    fields = ("trial_link", "status", "params", "best_val", "test_acc", "epochs_done", "message")
    ordering = ("trial_number",)
    verbose_name = "trial"
    verbose_name_plural = "trials"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sweep")

    @admin.display(description="trial")
    def trial_link(self, obj: Experiment) -> str:
        url = reverse("admin:experiments_experiment_change", args=[obj.pk])
        return format_html('<a href="{}">{} (run #{})</a>', url, obj.trial_number, obj.pk)

    @admin.display(description="params")
    def params(self, obj: Experiment) -> str:
        space = obj.sweep.space if obj.sweep and isinstance(obj.sweep.space, dict) else {}
        return ", ".join(f"{name}={format_value(config_value(obj, name))}" for name in space)

    @admin.display(description="best val")
    def best_val(self, obj: Experiment) -> str:
        return percent(obj.best_val_accuracy)

    @admin.display(description="test")
    def test_acc(self, obj: Experiment) -> str:
        return percent(obj.test_accuracy)


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "status", "strategy", "pruner", "progress", "best", "created_at")
    list_display_links = ("id", "name")
    list_filter = ("status", "strategy", "pruner", "owner")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner", "best_trial")
    list_per_page = 50
    date_hierarchy = "created_at"
    inlines = (SweepTrialInline,)
    actions = ("cancel_sweeps", "resume_sweeps")
    fieldsets = (
        (None, {"fields": ("name", "owner", "status", "message", "best_link")}),
        ("Search", {"fields": ("strategy", "objective", "second_objective", "pruner", "budget", "parallelism",
                               "seed", "warm_start", "warm_start_runs", "space_table", "base_config_json")}),
        ("Timing", {"fields": ("created_at", "finished_at")}),
    )
    readonly_fields = ("owner", "status", "message", "best_link", "strategy", "objective", "second_objective",
                       "pruner", "budget", "parallelism", "seed", "warm_start", "warm_start_runs", "space_table",
                       "base_config_json", "created_at", "finished_at")

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_trials=Count("trials"))

    @admin.display(description="trials", ordering="_trials")
    def progress(self, obj: Sweep) -> str:
        return f"{obj._trials}/{obj.budget}"

    @admin.display(description="best val", ordering="best_trial__best_val_accuracy")
    def best(self, obj: Sweep) -> str:
        return percent(obj.best_trial.best_val_accuracy) if obj.best_trial else EMPTY

    @admin.display(description="best trial")
    def best_link(self, obj: Sweep) -> str:
        if obj.best_trial_id is None:
            return EMPTY
        url = reverse("admin:experiments_experiment_change", args=[obj.best_trial_id])
        return format_html('<a href="{}">run #{}</a> ({})', url, obj.best_trial_id,
                           percent(obj.best_trial.best_val_accuracy))

    @admin.display(description="space")
    def space_table(self, obj: Sweep) -> SafeString | str:
        space = obj.space if isinstance(obj.space, dict) else {}
        return format_html(
            "<table><thead><tr><th>field</th><th>search</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>",
                             ((name, json.dumps(spec)) for name, spec in space.items())))

    @admin.display(description="base config")
    def base_config_json(self, obj: Sweep) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.base_config, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sweeps are started from the API or `manage.py sweep`

    def has_delete_permission(self, request: HttpRequest, obj: Sweep | None = None) -> bool:
        if obj is not None and obj.is_active:
            return False  # cancel it first; deleting keeps its runs (their sweep link is cleared)
        return super().has_delete_permission(request, obj)

    @admin.action(description="Cancel selected sweeps", permissions=["change"])
    def cancel_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        done, skipped = [], []
        for sweep in queryset.order_by("pk"):
            try:
                done.append(services.sweep_cancel(sweep=sweep))
            except ServiceError as exc:
                skipped.append(f"#{sweep.pk} ({exc.message})")
        if done:
            self.message_user(request, f"Cancelled {len(done)} sweep(s): {run_ids(done)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {len(skipped)}: {'; '.join(skipped)}", messages.WARNING)

    @admin.action(description="Resume selected sweeps (create their next trials)", permissions=["change"])
    def resume_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        for sweep in queryset.order_by("pk"):
            services.sweep_fill(sweep_id=sweep.pk)
        self.message_user(request, f"Checked {queryset.count()} sweep(s) for trials to create.", messages.SUCCESS)

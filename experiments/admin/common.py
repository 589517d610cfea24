"""What the model admins share: value formatting, read-only inlines and admins, the run filter."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin

from experiments.models import Experiment
from training.config import FIELDS
from training.data import CLASS_NAMES

EMPTY = "-"


def config_value(experiment: Experiment, name: str) -> Any:
    config = experiment.config if isinstance(experiment.config, dict) else {}
    return config.get(name, FIELDS[name].default if name in FIELDS else None)


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " × ".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else json.dumps(value)
    return str(value)


def percent(value: float | None) -> str:
    return EMPTY if value is None else f"{100 * value:.2f} %"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return EMPTY
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def run_ids(experiments) -> str:
    return ", ".join(f"#{e.pk}" for e in experiments)


def class_names_for(count: int) -> list[str]:
    """Fashion-MNIST's class names, or plain indices if a stored result has another size."""
    return list(CLASS_NAMES) if count == len(CLASS_NAMES) else [str(i) for i in range(count)]


class LookOnly:
    """No adding, changing or deleting through this admin (rows the services and workers write)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(LookOnly, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields


class ViewOnlyAdmin(LookOnly, admin.ModelAdmin):
    """Rows written by workers: staff can look, not touch (delete the run instead)."""


class RecentExperimentFilter(admin.SimpleListFilter):
    """Filter by run: offers the most recent runs; any id works through ?experiment=<id>."""

    title = "experiment"
    parameter_name = "experiment"
    limit = 20

    def lookups(self, request, model_admin):
        runs = list(Experiment.objects.filter(
            pk__in=model_admin.model.objects.values("experiment_id")
        ).order_by("-id").only("id", "name", "status")[: self.limit])
        value = self.value()
        if value and value.isdigit() and all(str(run.pk) != value for run in runs):
            runs += list(Experiment.objects.filter(pk=int(value)).only("id", "name", "status"))
        return [(str(run.pk), str(run)) for run in runs]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(experiment_id=int(value))
        return queryset

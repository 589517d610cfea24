"""The user list with what each user's runs store on disk (final weights + checkpoints), next to
TUNER_MAX_STORAGE_BYTES_PER_USER: Django's own user admin, with two columns more."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html

from experiments import selectors
from experiments.services.artifacts import human_bytes

User = get_user_model()


class StorageUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "runs", "storage")

    def get_queryset(self, request):
        return selectors.users_with_storage(super().get_queryset(request))

    @admin.display(description="runs", ordering="run_count")
    def runs(self, obj) -> str:
        url = reverse("admin:experiments_experiment_changelist") + f"?owner__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.run_count)

    @admin.display(description="storage", ordering="storage_bytes")
    def storage(self, obj) -> str:
        limit = settings.TUNER_MAX_STORAGE_BYTES_PER_USER
        if not limit:
            return human_bytes(obj.storage_bytes)
        return f"{human_bytes(obj.storage_bytes)} of {human_bytes(limit)} ({100 * obj.storage_bytes / limit:.0f} %)"


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, StorageUserAdmin)

"""Who owns what a management command creates: --user NAME, or the only superuser."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def resolve_owner(username: str | None, *, what: str):
    users = get_user_model().objects
    if username:
        owner = users.filter(**{users.model.USERNAME_FIELD: username}).first()
        if owner is None:
            raise CommandError(f"No user named {username!r}. Create it first (manage.py createsuperuser) "
                               "or pass an existing --user.")
        if not owner.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        return owner
    superusers = list(users.filter(is_superuser=True, is_active=True)[:2])
    if len(superusers) != 1:
        found = "no superuser" if not superusers else "several superusers"
        raise CommandError(f"There is {found}; say who owns the {what} with --user NAME.")
    return superusers[0]

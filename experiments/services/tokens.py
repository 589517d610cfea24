"""API tokens (django-rest-knox): create, revoke, and their end when the owner's password changes.

A token is a random secret shown once; the database keeps its SHA-512 digest, its creation time and
its expiry (settings.REST_KNOX TOKEN_TTL, from TUNER_TOKEN_TTL_HOURS). Reads are in selectors.
"""

from __future__ import annotations

from django.db import transaction
from knox.models import get_token_model

# Live tokens a user may hold; creating one more retires the oldest, so a script that obtains a
# token on every run keeps working while the table stays bounded.
MAX_TOKENS_PER_USER = 100


def token_create(*, user):
    """A new token for `user`: (its row, the secret). The secret is not stored and cannot be shown again."""
    AuthToken = get_token_model()
    with transaction.atomic():
        row, secret = AuthToken.objects.create(user=user)
        retired = (AuthToken.objects.filter(user=user).order_by("-created", "digest")
                   .values_list("digest", flat=True)[MAX_TOKENS_PER_USER:])
        AuthToken.objects.filter(digest__in=list(retired)).delete()
    return row, secret


def token_revoke(*, token) -> None:
    """The token stops working at once (its row is deleted)."""
    token.delete()


def tokens_revoke_all(*, user) -> int:
    """Every token of `user`; returns how many there were."""
    return get_token_model().objects.filter(user=user).delete()[0]


def tokens_revoke_if_password_changed(*, user) -> None:
    """After a save of `user`: a new password (or none usable any more) ends every token.

    Why this test: Django's set_password() keeps the raw password in `_password` until the save
    that follows, which is how Django itself tells a password change (that save calls
    password_validation.password_changed()); the hash upgrade at a login (check_password() re-hashing
    with a newer hasher) clears it before saving, since a re-hash is not a change. So it catches
    every path that sets a password - the admin's change-password form, `manage.py changepassword`,
    set_password() + save() in code - and no other save. Comparing the stored hash instead would
    also fire on those re-hashes (all tokens gone after an upgrade raised the hasher's iterations)
    and cost a query per save; a per-user password fingerprint checked at authentication would
    need a column in knox's table (a custom token model). Not caught: writing `password` without
    set_password() (a queryset update()), which no Django path does.
    """
    if getattr(user, "_password", None) is not None or not user.has_usable_password():
        tokens_revoke_all(user=user)


def on_user_saved(sender, instance, **kwargs) -> None:
    """post_save receiver of the user model (connected by `connect()`)."""
    tokens_revoke_if_password_changed(user=instance)


def connect() -> None:
    """Called once from ExperimentsConfig.ready()."""
    from django.conf import settings
    from django.db.models.signals import post_save

    post_save.connect(on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="tokens.on_user_saved")

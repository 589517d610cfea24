"""Make sure a local superuser exists, and say how to log in.

Development: the first call creates the account with a random password, kept in
var/admin_password (mode 600) so that `make run` can show it every time. Production:
refused, unless the password comes from the environment (--password-from-env reads
TUNER_ADMIN_PASSWORD); nothing is written to disk then.

    python manage.py ensure_admin
    TUNER_ADMIN_USER=root python manage.py ensure_admin
    DJANGO_ENV=production TUNER_ADMIN_PASSWORD=... python manage.py ensure_admin --password-from-env
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

PASSWORD_FILE = "admin_password"


def password_file() -> Path:
    return Path(settings.VAR_DIR) / PASSWORD_FILE


def admin_username() -> str:
    return os.environ.get("TUNER_ADMIN_USER", "").strip() or "admin"


def stored_password() -> str | None:
    """The generated password kept in var/, or None."""
    try:
        return password_file().read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Created 600 from the start: the password is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Command(BaseCommand):
    help = "Create the local superuser if it is missing (random password saved in var/), and print the login."

    # After handle(): (username, password or None when unknown). `runlab` reads it for its banner.
    login: tuple[str, str | None] | None = None

    def add_arguments(self, parser):
        parser.add_argument("--password-from-env", action="store_true",
                            help="Create the account with the password in TUNER_ADMIN_PASSWORD "
                                 "(required when DJANGO_ENV=production); nothing is written to disk.")

    def handle(self, *args, password_from_env: bool = False, **options):
        username = admin_username()
        if settings.PRODUCTION and not password_from_env:
            raise CommandError(
                "Refusing to create an admin with a generated password in production. Set "
                "TUNER_ADMIN_PASSWORD and run `manage.py ensure_admin --password-from-env`, or use "
                "`manage.py createsuperuser`.")
        env_password = None
        if password_from_env:
            env_password = os.environ.get("TUNER_ADMIN_PASSWORD", "")
            if not env_password:
                raise CommandError("--password-from-env: TUNER_ADMIN_PASSWORD is not set or empty.")

        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            password = env_password or secrets.token_urlsafe(12)
            try:
                with transaction.atomic():
                    user = User.objects.create_superuser(**{User.USERNAME_FIELD: username},
                                                         email="", password=password)
            except IntegrityError:
                # Created concurrently by another process: report it as existing.
                user = User.objects.get(**{User.USERNAME_FIELD: username})
            else:
                self.login = (username, None if env_password else password)
                if env_password:
                    self.stdout.write(f"Created admin account: {username} (password from TUNER_ADMIN_PASSWORD)")
                else:
                    _write_private(password_file(), password)
                    self.stdout.write(f"Created admin account: {username} / {password}")
                    self.stdout.write(f"  (saved in {password_file()}, readable by you only)")
                return

        problems = []
        if not user.is_active:
            problems.append("it is inactive")
        if not (user.is_staff and user.is_superuser):
            problems.append("it is not a superuser")
        if problems:
            self.stderr.write(self.style.WARNING(
                f"Note: the account {username!r} exists but {' and '.join(problems)}."))

        stored = None if password_from_env else stored_password()
        self.login = (username, None)
        if stored and user.check_password(stored):
            self.login = (username, stored)
            self.stdout.write(f"Login: {username} / {stored}")
        elif stored:
            self.stdout.write(
                f"Admin account {username!r} exists, but its password was changed since it was saved in "
                f"{password_file()}. Reset it with: python manage.py changepassword {username}")
        else:
            self.stdout.write(
                f"Admin account {username!r} exists (password not stored here). "
                f"Reset it with: python manage.py changepassword {username}")

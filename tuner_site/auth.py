"""Authentication backend plumbing (settings.AUTHENTICATION_BACKENDS)."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class AxesBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for every `authenticate()` that comes with an HTTP request.

    The login page, the admin's and POST /api/auth/token/ all pass their request, so their attempts
    are counted per username + client address and refused while locked out. A call without a
    request (Django's test client `login()`, code in `manage.py shell`) has no client to count or
    lock out: axes' own backend raises a ValueError there; this one lets the next backend decide.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def lockout_seconds() -> int:
    """How long a locked-out username + address pair waits (settings.AXES_COOLOFF_TIME)."""
    from axes.helpers import get_cool_off

    cool_off = get_cool_off()
    return int(cool_off.total_seconds()) if cool_off else 0


def lockout_message() -> str:
    """What every login door says to a locked-out pair (the page, the admin's, the token endpoint)."""
    minutes = -(-lockout_seconds() // 60)
    return (f"Too many failed login attempts. Try again in {minutes} minute{'' if minutes == 1 else 's'}, "
            "or ask an administrator to lift the lockout.")

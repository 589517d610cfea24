"""Throttles shared by all processes (they count in the Redis cache, settings.CACHES).

Rates live in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]; a throttled request is a
429 with {"detail": "Request was throttled. Expected available in N seconds."} and Retry-After.
"""

from __future__ import annotations

import ipaddress
import logging

from redis.exceptions import RedisError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle

logger = logging.getLogger(__name__)


class FailOpenScopedRateThrottle(ScopedRateThrottle):
    """The default throttle (settings DEFAULT_THROTTLE_CLASSES): the rate of the view's
    `throttle_scope`, per user, else per client address (`client_address`); a view without a
    scope is not throttled.

    Throttles count in Redis; with Redis unreachable this one lets the request through (logged)
    instead of turning it into a 500: the database, not Redis, is what a request needs, and a
    creation then still answers 201 `queued` (the reconciler sends the run once the broker is back).
    """

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError):
            logger.warning("throttle %s: cache unreachable; not throttling", type(self).__name__, exc_info=True)
            return True

    def get_ident(self, request):  # anonymous requests only (else the user is the ident)
        return client_address(request)


class WriteScopedRateThrottle(FailOpenScopedRateThrottle):
    """The default throttle for writes only: reading a list that also accepts POSTs stays free."""

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


def client_address(request) -> str | None:
    """The client's IP address for the per-address limits: the throttles and the login lockouts
    (settings.AXES_CLIENT_IP_CALLABLE). DRF's rule: REMOTE_ADDR, or behind N reverse proxies
    (TUNER_NUM_PROXIES -> REST_FRAMEWORK["NUM_PROXIES"]) the N-th X-Forwarded-For entry from the
    right, the one the outermost trusted proxy wrote; what a client prepends is never used. Not a
    valid address (a misconfigured proxy, a client reaching Daphne directly with a made-up header):
    the peer's own address, else None."""
    for candidate in (BaseThrottle().get_ident(request), request.META.get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address((candidate or "").strip()))
        except ValueError:
            continue
    return None

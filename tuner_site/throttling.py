"""Throttles shared by all processes (they count in the Redis cache, settings.CACHES).

Rates live in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]; a throttled request is a
429 with {"detail": "Request was throttled. Expected available in N seconds."} and Retry-After.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import ScopedRateThrottle


class WriteScopedRateThrottle(ScopedRateThrottle):
    """`ScopedRateThrottle` for writes only: reading a list that also accepts POSTs stays free.

    Counts per user when authenticated, else per client address (as ScopedRateThrottle).
    """

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

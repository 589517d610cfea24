"""The exceptions services raise; `status_code` is the HTTP answer each maps to.

A leaf module: views, consumers, commands, inference and every service import their errors
from here, so none of them imports the services only to name an exception.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the domain refuses; `errors` maps fields to messages (400 {field: [...]})."""

    status_code = 400

    def __init__(self, message: str, *, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class ConfigInvalid(ServiceError):
    pass


class QuotaExceeded(ServiceError):
    status_code = 429


class StorageLimitExceeded(QuotaExceeded):
    """The owner's stored run files reached TUNER_MAX_STORAGE_BYTES_PER_USER (or one run's weights
    alone would exceed it). 409, not 429: waiting does not help, only deleting runs does (the
    conflict is with the state of their stored runs); not 413, which is about the request body."""

    status_code = 409


class InvalidState(ServiceError):
    status_code = 409


class NotFound(ServiceError):
    status_code = 404


class Unavailable(ServiceError):
    """Something this server needs is missing right now (e.g. the dataset): try again later."""

    status_code = 503


class SweepInvalid(ServiceError):
    """An invalid sweep request; `errors` is {"space": {field: [...]}, "budget": [...], ...}."""


class SweepTrialNotFound(NotFound):
    pass


class LeaseLost(Exception):
    """Another delivery of the same run holds the lease now; this one must stop writing."""

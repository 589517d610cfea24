"""Structured logging: one JSON object per line, carrying the run id when there is one.

`JsonLinesFormatter` writes `{"ts", "level", "logger", "message", ...}` and copies any
`experiment_id` (and a few other context keys) given as `extra=` into the record. Use
`ExperimentFilter` / `experiment_logger()` to stamp a whole logger or adapter with a run id:

    log = experiment_logger(logger, experiment.pk)
    log.info("claimed")                      # -> {"message": "claimed", "experiment_id": 7, ...}
    logger.warning("lost", extra={"experiment_id": 7})
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

# Extra record attributes copied into the JSON object when present.
CONTEXT_KEYS = ("experiment_id", "task_id", "worker", "user_id", "request_id")


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class ExperimentFilter(logging.Filter):
    """Sets `experiment_id` on every record passing through (unless the call gave its own)."""

    def __init__(self, experiment_id: int | None = None, name: str = ""):
        super().__init__(name)
        self.experiment_id = experiment_id

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "experiment_id", None) is None and self.experiment_id is not None:
            record.experiment_id = self.experiment_id
        return True


class ExperimentAdapter(logging.LoggerAdapter):
    """A logger adapter whose records carry `experiment_id` (merged with any call's own extra)."""

    def process(self, msg, kwargs):
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def experiment_logger(logger: logging.Logger, experiment_id: int) -> ExperimentAdapter:
    return ExperimentAdapter(logger, {"experiment_id": experiment_id})

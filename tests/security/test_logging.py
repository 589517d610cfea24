"""Structured logs: one JSON object per line, with the run id when the call gave one."""

from __future__ import annotations

import json
import logging

from tuner_site.logging import ExperimentFilter, JsonLinesFormatter, experiment_logger


def capture(logger_name: str):
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_experiment_id_from_extra_adapter_and_filter():
    logger, stream = capture("tuner.test.json")
    logger.info("plain %s", "message")
    logger.warning("lost lease", extra={"experiment_id": 7})
    experiment_logger(logger, 8).info("claimed\nwith a newline")
    logger.addFilter(ExperimentFilter(9))
    try:
        logger.info("filtered")
        logger.info("own id wins", extra={"experiment_id": 10})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.filters.clear()
    records = lines(stream)
    assert len(records) == 6  # a newline in a message stays inside its JSON line
    assert records[0]["message"] == "plain message" and "experiment_id" not in records[0]
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "tuner.test.json" and records[0]["ts"]
    assert [r.get("experiment_id") for r in records[1:]] == [7, 8, 9, 10, 9]
    assert "ValueError: boom" in records[5]["exc_info"]


def test_production_logging_uses_the_json_formatter():
    from django.conf import settings

    assert settings.LOGGING["formatters"]["json"]["()"] == "tuner_site.logging.JsonLinesFormatter"

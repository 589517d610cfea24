"""Named fault points: where the fault-injection tests and bench/chaos.py stop a worker.

`TUNER_FAULT_PAUSES` ("final_commit=3,sweep_refill=3") makes the process log that it reached a
point and sleep there, so a harness can kill the worker, restart Redis or cut the database at
exactly that moment. Empty in every real deployment: then a fault point costs a dict lookup.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)

FINAL_COMMIT = "final_commit"  # the trainer is done; the final result is about to be stored
SWEEP_REFILL = "sweep_refill"  # a trial ended; the sweep is about to create the next ones


def fault_point(name: str) -> None:
    seconds = settings.TUNER_FAULT_PAUSES.get(name, 0.0)
    if seconds > 0:
        logger.warning("fault point %s reached: pausing %.1f s", name, seconds)
        time.sleep(seconds)

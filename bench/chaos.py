"""Chaos: SIGKILL the worker in the middle of a run, N times; count runs lost and epochs duplicated.

Each round queues one run, waits until it has recorded a random epoch (1-3), kills the whole
worker process group with SIGKILL at a random moment of the next epoch (an OOM kill), starts a
fresh worker, and runs the reconciler (experiments.services.runs_reconcile) once the dead
worker's heartbeat is stale. The run must then finish `succeeded` with epochs 1..N recorded
exactly once, on its second attempt. Goal: 0 runs lost, 0 epochs duplicated or missing.

Bounded and loopback only: its own stack from bench/queue_overhead.py (a temporary var dir
with SQLite, or a temporary database on DATABASE_URL's PostgreSQL server; Redis database 12
with its own queue and channel prefix), one worker subprocess at a time, every round capped.

    .venv/bin/python bench/chaos.py [--rounds 10]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/chaos.py
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from queue_overhead import Stack  # noqa: E402 - sets the environment and BLAS threads first

CONFIG = {"hidden_layers": [128], "epochs": 6, "train_size": 12000, "batch_size": 64,
          "lr_schedule": "constant", "dropout": 0.0, "learning_rate": 0.003}
ROUND_TIMEOUT = 120.0
STALE_SECONDS = 1.0


def kill_worker(stack: Stack) -> None:
    os.killpg(stack.worker.pid, signal.SIGKILL)
    stack.worker.wait(timeout=10)
    stack.worker = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    stack = Stack()
    try:
        stack.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from experiments import services
        from experiments.models import EpochMetric, Experiment

        db = settings.DATABASES["default"]
        print(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}; queue {settings.TUNER_QUEUE}; "
              f"config {CONFIG}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        user = get_user_model().objects.create_user("chaos", password="chaos-password-1")
        stack.start_worker()
        lost = duplicated = missing = not_killed = 0
        started_all = time.monotonic()
        for round_ in range(1, args.rounds + 1):
            started = time.monotonic()
            run = services.experiment_create(owner=user, config=CONFIG, name=f"chaos {round_}")
            kill_after_epoch = rng.randint(1, 3)
            deadline = time.monotonic() + ROUND_TIMEOUT
            while not EpochMetric.objects.filter(experiment=run, epoch=kill_after_epoch).exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the next epoch (or its write)
            kill_worker(stack)
            run.refresh_from_db()
            at_kill = (run.status, run.epochs_done)
            if run.status != Experiment.Status.RUNNING:
                not_killed += 1  # finished before the kill landed: still checked below
            stack.start_worker()
            time.sleep(STALE_SECONDS + 0.2)
            report = services.runs_reconcile(stale_after_seconds=STALE_SECONDS)
            while time.monotonic() < deadline:
                run.refresh_from_db()
                if run.status in Experiment.FINISHED_STATUSES:
                    break
                time.sleep(0.1)
            epochs = list(EpochMetric.objects.filter(experiment=run).order_by("epoch")
                          .values_list("epoch", flat=True))
            expected = list(range(1, CONFIG["epochs"] + 1))
            round_lost = run.status != Experiment.Status.SUCCEEDED
            round_dup = len(epochs) - len(set(epochs))
            round_missing = len(set(expected) - set(epochs))
            lost += round_lost
            duplicated += round_dup
            missing += round_missing
            print(f"round {round_:2d}: killed at {at_kill[0]} after epoch {at_kill[1]}; reconciler re-queued "
                  f"{report['requeued_stale']}; ended {run.status} on attempt {run.attempts}, epochs {epochs}"
                  f" ({time.monotonic() - started:.1f} s){'  <-- LOST' if round_lost else ''}")
        print(f"\n{args.rounds} rounds in {time.monotonic() - started_all:.0f} s; kills that landed after the "
              f"run finished: {not_killed}")
        print(f"runs lost: {lost}   epochs duplicated: {duplicated}   epochs missing: {missing}   (goal 0/0/0)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()

"""Ask-and-refill latency of a TPE sweep with 50, 500 and 2,000 finished trials.

One round is what happens when a worker finishes a trial: the trial's row turns succeeded (with
8 epochs of metrics; not timed) and `sweep_fill` runs (timed): it locks the sweep, asks Optuna for
the next trial's parameters and creates it. Also timed: `sweep_trial_prune_check` (ASHA) for a
running trial at epoch 2, which a worker calls after every stored epoch. The trial rows are
synthetic (no training, no broker: TUNER_DISPATCH_RUNS off), in a scratch PostgreSQL database
created beside the one DATABASE_URL names and dropped at the end:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/ask_latency.py

The first round in a process may pay a one-off build (quoted as "cold"); the median and p90 are
over the following rounds, which is what a long-running worker pays for every trial it ends.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch_db import create_database, drop_database  # noqa: E402

SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"},
         "optimizer": {"values": ["sgd", "momentum", "adam"]},
         "hidden_layers": {"values": [[64], [128], [256, 128]]},
         "dropout": {"low": 0.0, "high": 0.5}}
EPOCHS = 8


def add_finished(sweep, user, number: int, rng: random.Random) -> None:
    """A succeeded trial `number` with EPOCHS epochs of metrics (the way a worker leaves it)."""
    from django.utils import timezone

    from experiments.models import Experiment

    config = {**sweep.base_config, "learning_rate": 10 ** rng.uniform(-4, -1),
              "optimizer": rng.choice(["sgd", "momentum", "adam"]),
              "hidden_layers": rng.choice([[64], [128], [256, 128]]), "dropout": rng.uniform(0, 0.5)}
    run = Experiment.objects.create(owner=user, sweep=sweep, trial_number=number, config=config,
                                    status="succeeded", task_id=uuid.uuid4().hex, finished_at=timezone.now(),
                                    epochs_done=EPOCHS)
    finish(run, rng)


def finish(run, rng: random.Random) -> None:
    from django.utils import timezone

    from experiments.models import EpochMetric, Experiment

    accuracies = sorted(rng.uniform(0.5, 0.9) for _ in range(EPOCHS))
    EpochMetric.objects.filter(experiment=run).delete()
    EpochMetric.objects.bulk_create([
        EpochMetric(experiment=run, epoch=e + 1, train_loss=0.5, train_accuracy=a, val_loss=0.5, val_accuracy=a,
                    learning_rate=1e-3, seconds=0.5, samples_per_second=1e4, gradient_norm=1.0,
                    dead_unit_fraction=0.0) for e, a in enumerate(accuracies)])
    Experiment.objects.filter(pk=run.pk).update(status="succeeded", best_val_accuracy=accuracies[-1],
                                                test_accuracy=accuracies[-1], epochs_done=EPOCHS,
                                                finished_at=timezone.now())


def measure(user, existing: int, rounds: int, seed: int) -> dict[str, float]:
    from django.db import connection

    from experiments.models import Experiment, Sweep
    from experiments.services.sweeps import sweep_fill, sweep_trial_prune_check

    rng = random.Random(seed)
    base = {"epochs": EPOCHS, "train_size": 5000}
    from training.config import TrainingConfig

    sweep = Sweep.objects.create(owner=user, name=f"latency {existing}", base_config=TrainingConfig.from_dict(
        base).to_dict(), space=SPACE, strategy="tpe", budget=min(existing + rounds + 10, 30000), parallelism=2,
        pruner="asha", seed=seed, status="running")
    for number in range(1, existing + 1):
        add_finished(sweep, user, number, rng)
    Sweep.objects.filter(pk=sweep.pk).update(trials_created=existing)
    connection.close()
    sweep_fill(sweep_id=sweep.pk)  # the first two running trials
    fills, checks = [], []
    for _ in range(rounds + 1):
        running = list(Experiment.objects.filter(sweep=sweep, status="queued").order_by("trial_number"))
        finish(running[0], rng)
        start = time.perf_counter()
        sweep_fill(sweep_id=sweep.pk)
        fills.append(time.perf_counter() - start)
        other = Experiment.objects.filter(sweep=sweep, status="queued").order_by("trial_number").first()
        start = time.perf_counter()
        sweep_trial_prune_check(experiment_id=other.pk, epoch=2)
        checks.append(time.perf_counter() - start)
    warm_fills, warm_checks = fills[1:], checks[1:]
    return {"cold": fills[0], "fill_median": statistics.median(warm_fills),
            "fill_p90": sorted(warm_fills)[int(0.9 * (len(warm_fills) - 1))],
            "check_median": statistics.median(warm_checks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server (a scratch database is made beside it)")
    name = f"ask_latency_{uuid.uuid4().hex[:8]}"
    os.environ.update(DATABASE_URL=create_database(admin_url, name), DJANGO_SETTINGS_MODULE="tuner_site.settings",
                      DJANGO_ENV="development", TUNER_VAR_DIR=tempfile.mkdtemp(prefix="ask-latency-"),
                      TUNER_MAX_ACTIVE_RUNS_PER_USER="1000", TUNER_CHANNEL_PREFIX=name)
    try:
        import django
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        django.setup()
        settings.TUNER_DISPATCH_RUNS = False  # rows only: no broker, no worker
        call_command("migrate", interactive=False, verbosity=0)
        with connection.cursor() as cursor:  # the 200-trial cap of older code: lifted for the measurement
            cursor.execute("ALTER TABLE experiments_sweep DROP CONSTRAINT IF EXISTS sweep_budget_range")
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", password="x" * 12)
        print(f"{'trials':>7} {'cold fill':>10} {'fill median':>12} {'fill p90':>9} {'prune check':>12}  (ms)")
        for existing in args.trials:
            r = measure(user, existing, args.rounds, args.seed)
            print(f"{existing:>7} {r['cold'] * 1e3:>10.1f} {r['fill_median'] * 1e3:>12.1f} "
                  f"{r['fill_p90'] * 1e3:>9.1f} {r['check_median'] * 1e3:>12.1f}", flush=True)
    finally:
        drop_database(admin_url, name)


if __name__ == "__main__":
    main()

"""Bytes a finished run leaves on disk, before and after checkpoints were deleted at a run's end.

Prints figures; asserts nothing. Trains real runs in this process through the worker's own
task body (`services.experiment_run`) on a throwaway stack: a temporary var dir (artifacts
and a SQLite database; TUNER_ARTIFACT_DIR inside it), Redis database 12 with its own channel
prefix (the run events go nowhere), the project's dataset cache.

    .venv/bin/python bench/artifacts.py                  # 10 small runs, the default net, 3×2048
    .venv/bin/python bench/artifacts.py --small 73       # the issue's 73 finished small runs

"Before" is what stayed before this change: the final weights plus the last checkpoint the
trainer wrote (every checkpoint write is measured as it happens). "After" is what is on disk
for the run once it ended (and what its row records: `weights_bytes + checkpoint_bytes`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = f"bench-artifacts-{os.getpid()}"
REDIS_URL = "redis://127.0.0.1:6379/12"

SMALL = {"hidden_layers": [32], "epochs": 3, "train_size": 1000, "batch_size": 64, "lr_schedule": "constant",
         "dropout": 0.0}
DEFAULT_NET = {"epochs": 1, "train_size": 1000, "lr_schedule": "constant", "dropout": 0.0}  # 784-256-128-10
WIDE = {"hidden_layers": [2048, 2048, 2048], "epochs": 1, "train_size": 100, "lr_schedule": "constant",
        "dropout": 0.0}

sys.path.insert(0, str(ROOT))


def mib(size: float) -> str:
    return f"{size / 2**20:8.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10, help="small runs (784-32-10, 3 epochs, 1000 images)")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="tuner-bench-artifacts-"))
    os.environ.update(TUNER_VAR_DIR=str(var_dir), DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}",
                      REDIS_URL=REDIS_URL, TUNER_CHANNEL_PREFIX=RUN_ID, TUNER_CACHE_PREFIX=RUN_ID,
                      TUNER_QUEUE=RUN_ID, DJANGO_SETTINGS_MODULE="tuner_site.settings", DJANGO_ENV="development",
                      TUNER_MAX_ACTIVE_RUNS_PER_USER="100000", TUNER_MAX_STORAGE_BYTES_PER_USER="0")
    try:
        run(args.small)
    finally:
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{RUN_ID}*"))
            if keys:
                client.delete(*keys)
        except Exception as exc:  # noqa: BLE001
            print(f"(could not clean Redis: {exc})")
        shutil.rmtree(var_dir, ignore_errors=True)


def run(small: int) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)

    from django.contrib.auth import get_user_model

    import training.trainer as trainer
    from experiments import services, storage
    from experiments.models import Experiment
    from experiments.services.artifacts import estimated_weights_bytes
    from training.config import TrainingConfig

    last_checkpoint: dict[str, int] = {}  # checkpoint path -> size of its latest write
    save = trainer._save_checkpoint

    def measured_save(store, *args, **kwargs):  # store: the run's storage.StorageCheckpoint
        save(store, *args, **kwargs)
        last_checkpoint[store.name] = storage.size(store.name)

    trainer._save_checkpoint = measured_save
    owner = get_user_model().objects.create_user("bench")
    def on_disk(experiment: Experiment) -> int:
        return sum(storage.size(storage.artifact_name(kind, experiment.pk)) for kind in storage.KINDS)

    groups = [("784-32-10, 3 epochs, 1000 images", SMALL, small),
              ("784-256-128-10 (default), 1 epoch, 1000 images", DEFAULT_NET, 1),
              ("784-2048×3-10, 1 epoch, 100 images", WIDE, 1)]
    print(f"{'runs':>5}  {'network':<48} {'before/run':>12} {'after/run':>12} {'recorded':>12} "
          f"{'estimate':>12}  {'before total':>12} {'after total':>12}")
    totals = [0, 0]
    for label, config, count in groups:
        before = after = recorded = 0
        for _ in range(count):
            experiment = services.experiment_create(owner=owner, config=config, enqueue=False)
            services.experiment_run(experiment_id=experiment.pk)
            experiment.refresh_from_db()
            assert experiment.status == Experiment.Status.SUCCEEDED, experiment.error_message
            before += experiment.weights_bytes + last_checkpoint.get(experiment.checkpoint_path, 0)
            after += on_disk(experiment)
            recorded += experiment.weights_bytes + experiment.checkpoint_bytes
        estimate = estimated_weights_bytes(TrainingConfig.from_dict(config))
        print(f"{count:>5}  {label:<48} {mib(before / count)} {mib(after / count)} {mib(recorded / count)} "
              f"{mib(estimate)}  {mib(before)} {mib(after)}")
        totals[0] += before
        totals[1] += after
    print(f"all runs: before {mib(totals[0]).strip()}, after {mib(totals[1]).strip()} "
          f"({100 * (1 - totals[1] / totals[0]):.0f} % less)")
    report = services.artifacts_prune(dry_run=True)
    print(f"prune_artifacts --dry-run afterwards: {len(report.deleted)} file(s) to delete, "
          f"{len(report.corrected)} row(s) to correct")


if __name__ == "__main__":
    main()

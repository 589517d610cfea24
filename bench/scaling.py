"""Sweep throughput against the number of worker processes: trials per minute with 1, 2 and 4.

Prints figures; asserts nothing. One fixed sweep (random strategy, the same seed and so the same
trials every time, parallelism 4, 12 trials of a 784-1024-512-10 net on 5000 training images for 3 epochs,
learning rate and optimizer searched)
is run to the end on 1, 2 and then 4 Celery worker SUBPROCESSES (`-P solo -c 1`, each with
OPENBLAS_NUM_THREADS=--blas-threads, default 1), after a warm-up sweep that makes every worker
import, load the dataset and cache the split. Per worker count: the wall time from sweep_create
to the sweep finishing (the median of --repeats sweeps), trials per minute, and the per-process
efficiency throughput_n / (n x throughput_1).

It runs on its own stack (bench/sweep_bench.py's `Stack`: temporary var dir, Redis database 5
with its own queue and channel prefix) and, when DATABASE_URL names a PostgreSQL server, a
scratch database created beside it and dropped at the end (bench/scratch_db.py); else SQLite.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/scaling.py
    .venv/bin/python bench/scaling.py --workers 1 2 --repeats 1 --trials 8    # shorter
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep_bench  # noqa: E402 - sets the BLAS threads before NumPy is imported
from scratch_db import create_database, drop_database  # noqa: E402

# A net big enough that a trial (~2 s of training on one core) outweighs the per-trial overhead
# (claim, split, persisting, the sweep's next step): the width stays fixed so every trial costs the same.
SPACE = {"learning_rate": {"low": 1e-4, "high": 3e-2, "scale": "log"},
         "optimizer": {"values": ["sgd", "momentum", "adam"]}}
BASE = {"hidden_layers": [1024, 512], "train_size": 5000, "epochs": 3, "batch_size": 64,
        "lr_schedule": "constant", "dropout": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default 1 2 4)")
    parser.add_argument("--trials", type=int, default=12, help="trials of the fixed sweep (default 12)")
    parser.add_argument("--parallelism", type=int, default=4, help="sweep parallelism (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="sweeps per worker count; the median is quoted")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per worker process (default 1)")
    parser.add_argument("--sweep-timeout", type=float, default=600.0, help="cap per sweep, seconds")
    args = parser.parse_args()
    threads = str(args.blas_threads)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = threads  # inherited by the worker subprocesses
    sweep_bench.BASE.clear()
    sweep_bench.BASE.update(BASE)  # run_sweep trains sweep_bench.BASE with its `epochs` over SPACE
    sweep_bench.SPACE.clear()
    sweep_bench.SPACE.update(SPACE)

    admin_url = os.environ.get("DATABASE_URL", "")
    pg_name = sweep_bench.RUN_ID.replace("-", "_")
    stack = sweep_bench.Stack()  # points the environment at its own var dir, Redis db and queue
    if admin_url.startswith(("postgres://", "postgresql://")):
        os.environ["DATABASE_URL"] = create_database(admin_url, pg_name)
    try:
        stack.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        db = settings.DATABASES["default"]
        print(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}; workers -P solo -c 1, "
              f"OPENBLAS_NUM_THREADS={threads}; {os.cpu_count()} cores; {sweep_bench.load()}")
        print(f"sweep: random, seed 7, {args.trials} trials, parallelism {args.parallelism}; base {BASE}")
        user = get_user_model().objects.create_user("scalingbench", password="scaling-bench-password-1")
        results: dict[int, dict] = {}
        for count in args.workers:
            stack.start_workers(count)
            sweep_bench.run_sweep(user, strategy="random", budget=max(count, 2), parallelism=count, seed=999,
                                  epochs=1, timeout=180, name=f"warm-up {count}w")
            runs = [sweep_bench.run_sweep(user, strategy="random", budget=args.trials, seed=7,
                                          parallelism=args.parallelism, epochs=BASE["epochs"],
                                          timeout=args.sweep_timeout, name=f"scaling {count}w #{i + 1}")
                    for i in range(args.repeats)]
            stack.stop_workers()
            wall = statistics.median(r["wall"] for r in runs)
            busy = statistics.median(r["busy"] for r in runs)
            results[count] = {"wall": wall, "per_min": args.trials / wall * 60}
            flags = "".join(f"  #{i + 1} TIMED OUT" for i, r in enumerate(runs) if r["timed_out"])
            walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
            print(f"  {count} worker(s): walls {walls} s -> "
                  f"{results[count]['per_min']:.1f} trials/min; {busy / wall:.2f} trials in a worker on "
                  f"average; {sweep_bench.fmt_counts(runs[-1]['counts'])}{flags}; {sweep_bench.load()}")
        base = results.get(1)
        print(f"\n{'workers':>7}  {'wall s':>7}  {'trials/min':>10}  {'speed-up':>8}  {'efficiency':>10}")
        for count, r in results.items():
            speedup = base and r["per_min"] / base["per_min"]
            print(f"{count:>7}  {r['wall']:>7.1f}  {r['per_min']:>10.1f}  "
                  f"{f'{speedup:.2f}x' if base else '-':>8}  {f'{speedup / count:.2f}' if base else '-':>10}")
        print("(efficiency = throughput_n / (n x throughput_1))")
    finally:
        stack.close()
        if admin_url.startswith(("postgres://", "postgresql://")):
            drop_database(admin_url, pg_name)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f} s")

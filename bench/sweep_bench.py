"""Sweeps: worker scaling, TPE vs random, median pruning vs none.

Prints figures; asserts nothing. Bounded (every sweep has a time cap; a sweep that hits it is
cancelled and reported as such) and loopback only. Runs against its own stack, as
bench/queue_overhead.py does: a temporary var dir with SQLite (migrated here), Redis database
5 with its own queue name and channel prefix, and Celery worker SUBPROCESSES
(-P solo -c 1, OPENBLAS_NUM_THREADS=1 each) started with the same environment.

    .venv/bin/python bench/sweep_bench.py            # full: ~10 min on an idle 2-core machine
    .venv/bin/python bench/sweep_bench.py --quick    # smaller budgets

Trials train a subset: base config hidden_layers [32], train_size 2000, epochs 4 (6 for the
pruning part), batch 64, lr_schedule constant, dropout 0. Space: learning_rate log
1e-4..3e-1, optimizer [sgd, momentum, adam], hidden_layers [[16], [32], [64]].

(1) one random sweep (parallelism 2), the same seed and so the same trials, on 1 worker and
    then on 2 workers: wall time from sweep_create to the sweep finishing; ratio (goal >= 1.8x).
(2) TPE vs random at equal budget (parallelism 2, 2 workers) over several sweep seeds: the
    sweep's best validation accuracy per seed and the mean (goal TPE >= random).
(3) median pruner vs none at equal budget (epochs 6, 2 workers): total epochs spent (sum of
    epochs_done over trials) and best accuracy (goal: >= 40 % fewer epochs, best within 0.5 points).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS = "1"
REDIS_URL = "redis://127.0.0.1:6379/5"
RUN_ID = f"sweepbench-{os.getpid()}"

# Before NumPy is imported (by Django's app loading): the same BLAS threads as the workers.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = THREADS
sys.path.insert(0, str(ROOT))

BASE = {"hidden_layers": [32], "train_size": 2000, "epochs": 4, "batch_size": 64,
        "lr_schedule": "constant", "dropout": 0.0}
SPACE = {"learning_rate": {"low": 1e-4, "high": 3e-1, "scale": "log"},
         "optimizer": {"values": ["sgd", "momentum", "adam"]},
         "hidden_layers": {"values": [[16], [32], [64]]}}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} cores"


class Stack:
    """Environment, database and workers of this benchmark; everything undone by close()."""

    def __init__(self) -> None:
        self.var_dir = Path(tempfile.mkdtemp(prefix="tuner-sweep-bench-"))
        self.workers: list[tuple[subprocess.Popen, Path]] = []
        self.started = 0
        os.environ.update(TUNER_VAR_DIR=str(self.var_dir), REDIS_URL=REDIS_URL, TUNER_QUEUE=RUN_ID,
                          TUNER_CHANNEL_PREFIX=RUN_ID, DJANGO_SETTINGS_MODULE="tuner_site.settings",
                          DJANGO_ENV="development", TUNER_MAX_ACTIVE_RUNS_PER_USER="1000")
        os.environ.pop("DATABASE_URL", None)  # SQLite in the temp var dir

    def setup_django(self) -> None:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)

    def start_workers(self, count: int) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        pending = []
        for _ in range(count):
            self.started += 1
            log_path = self.var_dir / f"worker-{self.started}.log"
            log = open(log_path, "wb")  # noqa: SIM115 - closed once the child has it
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tuner_site", "worker", "-l", "INFO", "-P", "solo",
                 "-c", "1", "-Q", RUN_ID, "--hostname", f"{RUN_ID}-{self.started}@%h", "--without-mingle",
                 "--without-gossip"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            log.close()
            self.workers.append((proc, log_path))
            pending.append((proc, log_path))
        deadline = time.monotonic() + 90
        for proc, log_path in pending:
            while b" ready." not in log_path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"a worker did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.05)

    def stop_workers(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm: nothing is running between sweeps
        for proc, _ in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.workers = []

    def close(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
        for proc, _ in self.workers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.workers = []
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = [*client.scan_iter(f"{RUN_ID}*"), *client.scan_iter(f"_kombu.binding*.{RUN_ID}")]
            if keys:
                client.delete(*keys)
        except Exception as exc:  # noqa: BLE001
            print(f"(could not clean Redis: {exc})")
        shutil.rmtree(self.var_dir, ignore_errors=True)


def wait_for_sweep(sweep, timeout: float) -> bool:
    """Wait until `sweep` ends; past `timeout` seconds cancel it and wait (up to 30 s) for its
    trials to stop. True when it timed out."""
    from experiments import services
    from experiments.models import Experiment, Sweep

    deadline = time.monotonic() + timeout
    while True:
        sweep.refresh_from_db()
        if sweep.status not in Sweep.ACTIVE_STATUSES:
            return False
        if time.monotonic() > deadline:
            services.sweep_cancel(sweep=sweep)
            end = time.monotonic() + 30
            while Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES).exists() \
                    and time.monotonic() < end:
                time.sleep(0.1)
            return True
        time.sleep(0.05)


def run_sweep(user, *, strategy: str, budget: int, seed: int, pruner: str = "none", parallelism: int = 2,
              epochs: int = 4, timeout: float = 300.0, name: str = "") -> dict:
    """Create a sweep, wait until it finishes (or cancel it at `timeout`); its figures."""
    from experiments import services
    from experiments.models import Experiment

    base = {**BASE, "epochs": epochs}
    started = time.perf_counter()
    sweep = services.sweep_create(owner=user, name=name or f"{strategy} {pruner} s{seed}", base_config=base,
                                  space=SPACE, strategy=strategy, budget=budget, parallelism=parallelism,
                                  pruner=pruner, seed=seed)
    timed_out = wait_for_sweep(sweep, timeout)
    wall = time.perf_counter() - started
    trials = list(Experiment.objects.filter(sweep=sweep).values("status", "epochs_done", "best_val_accuracy",
                                                                 "started_at", "finished_at"))
    # Seconds the trials spent claimed by a worker (dataset split, training, persisting):
    # busy / wall is the average number of trials in progress; the rest is queue + sweep overhead.
    busy = sum((t["finished_at"] - t["started_at"]).total_seconds() for t in trials
               if t["started_at"] and t["finished_at"])
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    succeeded = [t["best_val_accuracy"] for t in trials
                 if t["status"] == "succeeded" and t["best_val_accuracy"] is not None]
    any_acc = [t["best_val_accuracy"] for t in trials if t["best_val_accuracy"] is not None]
    return {"wall": wall, "busy": busy, "timed_out": timed_out, "counts": counts, "trials": len(trials),
            "epochs": sum(t["epochs_done"] for t in trials),
            "best": max(succeeded) if succeeded else float("nan"),
            "best_any": max(any_acc) if any_acc else float("nan")}


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def warm_up(user, workers: int) -> None:
    """Each worker imports, loads the dataset and caches the 2000-sample split before timing."""
    run_sweep(user, strategy="random", budget=2 * workers, parallelism=workers, seed=999, epochs=1,
              timeout=120, name="warm-up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller budgets and fewer seeds")
    parser.add_argument("--train-size", type=int, default=BASE["train_size"],
                        help=f"training samples per trial (default {BASE['train_size']}); larger = longer trials")
    parser.add_argument("--sweep-timeout", type=float, default=300.0, help="cap per sweep, seconds")
    args = parser.parse_args()
    if args.quick:
        scale_budget, compare_budget, compare_seeds, prune_budget, prune_seeds = 12, 10, [1, 2], 10, [1]
    else:
        scale_budget, compare_budget, compare_seeds, prune_budget, prune_seeds = 24, 16, [1, 2, 3], 16, [1, 2]

    BASE["train_size"] = args.train_size
    t0 = time.perf_counter()
    stack = Stack()
    try:
        stack.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from experiments.search import pruning

        db = settings.DATABASES["default"]
        print(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}; redis {REDIS_URL}; queue {RUN_ID}; "
              f"workers -P solo -c 1, OPENBLAS_NUM_THREADS={THREADS}; {load()}")
        print(f"mode: {'quick' if args.quick else 'full'}; base {BASE}; validation "
              f"{round(BASE['train_size'] * 0.1)} samples (accuracy steps of {100 / round(BASE['train_size'] * 0.1):.2f} "
              f"points)")
        print(f"space: learning_rate log 1e-4..3e-1, optimizer [sgd, momentum, adam], hidden [[16],[32],[64]]; "
              f"median pruner: startup {pruning.MEDIAN_STARTUP_TRIALS} trials, warmup {pruning.MEDIAN_WARMUP_STEPS} "
              f"epoch(s)")
        user = get_user_model().objects.create_user("sweepbench", password="sweep-bench-password-1")

        # ---------------------------------------------------------------- (1) scaling
        print(f"\n(1) random sweep, {scale_budget} trials, parallelism 2, seed 7 (same trials both times)")
        walls = {}
        for workers in (1, 2):
            stack.start_workers(workers)
            warm_up(user, workers)
            r = run_sweep(user, strategy="random", budget=scale_budget, seed=7, timeout=args.sweep_timeout,
                          name=f"scale {workers}w")
            walls[workers] = r
            print(f"    {workers} worker{'s' if workers > 1 else ' '}: {r['wall']:6.1f} s "
                  f"({r['wall'] / max(1, r['trials']):.2f} s/trial; trials in a worker {r['busy']:.1f} s, "
                  f"{r['busy'] / r['wall']:.2f} busy on average), {r['epochs']} epochs, best "
                  f"{r['best'] * 100:.2f} %, {fmt_counts(r['counts'])}"
                  f"{'  TIMED OUT (cancelled)' if r['timed_out'] else ''}; {load()}")
            if workers == 1:
                stack.stop_workers()
        speedup = walls[1]["wall"] / walls[2]["wall"]
        print(f"    speed-up 2 workers vs 1: {speedup:.2f}x (goal >= 1.8x)")

        # ---------------------------------------------------------------- (2) TPE vs random
        print(f"\n(2) TPE vs random, {compare_budget} trials each, parallelism 2, 2 workers")
        best = {"tpe": [], "random": []}
        for seed in compare_seeds:
            line = []
            for strategy in ("random", "tpe"):
                r = run_sweep(user, strategy=strategy, budget=compare_budget, seed=seed,
                              timeout=args.sweep_timeout)
                best[strategy].append(r["best"])
                line.append(f"{strategy} {r['best'] * 100:.2f} % ({r['wall']:.0f} s"
                            f"{', TIMED OUT' if r['timed_out'] else ''}"
                            f"{'' if r['counts'].get('succeeded') == r['trials'] else ', ' + fmt_counts(r['counts'])})")
            print(f"    seed {seed}: " + "   ".join(line))
        mean_tpe, mean_random = statistics.mean(best["tpe"]), statistics.mean(best["random"])
        print(f"    mean best: random {mean_random * 100:.2f} %, TPE {mean_tpe * 100:.2f} % "
              f"(TPE - random {(mean_tpe - mean_random) * 100:+.2f} points; goal >= 0); {load()}")

        # ---------------------------------------------------------------- (3) pruning
        print(f"\n(3) median pruner vs none, random sampler, {prune_budget} trials, epochs 6, "
              f"parallelism 2, 2 workers")
        totals = {"none": {"epochs": 0, "best": []}, "median": {"epochs": 0, "best": []}}
        for seed in prune_seeds:
            for pruner in ("none", "median"):
                r = run_sweep(user, strategy="random", budget=prune_budget, seed=seed, pruner=pruner, epochs=6,
                              timeout=args.sweep_timeout)
                totals[pruner]["epochs"] += r["epochs"]
                totals[pruner]["best"].append(r["best"])
                print(f"    seed {seed} {pruner:>6}: {r['epochs']:3d} epochs of {prune_budget * 6}, best "
                      f"{r['best'] * 100:.2f} % (incl. pruned {r['best_any'] * 100:.2f} %), {r['wall']:.0f} s, "
                      f"{fmt_counts(r['counts'])}{'  TIMED OUT' if r['timed_out'] else ''}")
        saved = 1 - totals["median"]["epochs"] / totals["none"]["epochs"]
        best_none = statistics.mean(totals["none"]["best"])
        best_median = statistics.mean(totals["median"]["best"])
        print(f"    epochs: none {totals['none']['epochs']}, median {totals['median']['epochs']} "
              f"-> saved {saved * 100:.1f} % (goal >= 40 %)")
        print(f"    best (mean over seeds): none {best_none * 100:.2f} %, median {best_median * 100:.2f} % "
              f"-> difference {(best_median - best_none) * 100:+.2f} points (goal within 0.5); {load()}")

        # ---------------------------------------------------------------- summary
        rows = [
            ("(1) 2 workers vs 1, speed-up", f"{speedup:.2f}x", ">= 1.8x", speedup >= 1.8),
            ("(2) TPE - random, mean best val acc", f"{(mean_tpe - mean_random) * 100:+.2f} pt", ">= 0",
             mean_tpe >= mean_random),
            ("(3) epochs saved by median pruning", f"{saved * 100:.1f} %", ">= 40 %", saved >= 0.40),
            ("(3) best acc, median - none", f"{(best_median - best_none) * 100:+.2f} pt", "within 0.5",
             abs(best_median - best_none) <= 0.005),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"\n{'measure':<{width}}  {'figure':>10}  {'goal':<11} met")
        print(f"{'-' * width}  {'-' * 10}  {'-' * 11} ---")
        for name, figure, goal, met in rows:
            print(f"{name:<{width}}  {figure:>10}  {goal:<11} {'yes' if met else 'NO'}")
        print(f"\ntotal {time.perf_counter() - t0:.0f} s; {load()}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()

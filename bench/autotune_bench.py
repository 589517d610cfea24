"""Tune for me (autotune) against Optuna used directly, at the same wall budget: anytime curves and final tests.

Prints figures; asserts nothing. For each budget (--minutes, default 2 5 15) and seed (--seeds, default 3):

- autotune: `autotune_create(minutes=M, seed=S, parallelism=2)` on 2 Celery worker SUBPROCESSES
  (-P solo -c 1, OPENBLAS_NUM_THREADS=1 each; bench/sweep_bench.py's Stack: its own var dir, Redis
  database 5, queue and channel prefix; a scratch PostgreSQL database when DATABASE_URL names a server,
  else SQLite), a fresh user per autotune (no warm start from an earlier repetition), the default plan
  (rungs 5 000 x 2 → 15 000 x 4 → 54 000 x 8 epochs, then the winner on all the data);
- Optuna direct, TPE and random search: the same space as the autotune (experiments/search/autotune.py
  SPACE) plus epochs 2–12, every trial `training.trainer.fit` on all 54 000 training images, in 2
  processes sharing one study (a JournalStorage file), each optimizing until the budget is spent; a trial
  still training at the deadline is stopped (`should_stop`) and counts for nothing.

Anytime: at 1/4, 1/2, 3/4 and the end of the budget (for the autotune: of its wall time, when its final trial
finished in the grace after the budget), the best validation accuracy of the trials finished by
then and the test accuracy of that same trial (not the best test seen: that would select on the test set).
"final test" is the autotune's final (winner on all the data) trial, or Optuna's best-val trial.
Worker idle fraction: 1 - (time with a trial claimed, per worker, from the trials' started_at/finished_at
by worker_host) / (workers x wall time from the start to the end: the autotune's finished_at; for Optuna,
the budget).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/autotune_bench.py
    .venv/bin/python bench/autotune_bench.py --minutes 2 --seeds 1      # what the README quotes
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep_bench  # noqa: E402 - sets the BLAS threads before NumPy is imported
from scratch_db import create_database, drop_database  # noqa: E402

WORKERS = 2
MARKS = (0.25, 0.5, 0.75, 1.0)


# ------------------------------------------------------------------ shared figures

def anytime_at(trials: list[dict], seconds: float) -> tuple[float | None, float | None]:
    """(best val, that trial's test) over trials finished by `seconds` since the start."""
    done = [t for t in trials if t["end"] <= seconds and t["val"] is not None]
    if not done:
        return None, None
    best = max(done, key=lambda t: t["val"])
    return best["val"], best["test"]


def idle_fraction(trials: list[dict], workers: int, wall: float) -> float:
    """1 - busy / (workers x wall), busy = the union of each worker's trial intervals within [0, wall]."""
    busy = 0.0
    for host in {t["host"] for t in trials}:
        spans = sorted((max(0.0, t["start"]), min(wall, t["end"])) for t in trials if t["host"] == host)
        last = 0.0
        for start, end in spans:
            start = max(start, last)
            if end > start:
                busy += end - start
                last = end
    return max(0.0, 1 - busy / (workers * wall))


# ------------------------------------------------------------------ Optuna direct (no Django)

def _direct_worker(journal: str, name: str, sampler_kind: str, seed: int, worker: int, t0: float,
                   deadline: float) -> None:
    import optuna

    from experiments.search.autotune import SPACE
    from training.config import TrainingConfig
    from training.data.cache import load_fashion_mnist
    from training.data.split import prepare_dataset
    from training.trainer import Outcome, fit

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    sampler = (optuna.samplers.TPESampler(seed=seed + worker, constant_liar=True, multivariate=True)
               if sampler_kind == "tpe" else optuna.samplers.RandomSampler(seed=seed + worker))
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    base = TrainingConfig.from_dict({})
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=base.validation_fraction, seed=base.seed,
                           train_size=None)

    def objective(trial):
        config = {}
        for field, spec in SPACE.items():
            if "values" in spec:
                index = trial.suggest_categorical(field, list(range(len(spec["values"]))))
                config[field] = spec["values"][index]
            else:
                config[field] = trial.suggest_float(field, spec["low"], spec["high"], log=spec.get("scale") == "log")
        config["epochs"] = trial.suggest_int("epochs", 2, 12)
        start = time.time() - t0
        try:
            cfg = TrainingConfig.from_dict(config)
        except Exception:  # noqa: BLE001 - an invalid combination (warm-up vs epochs): nothing trained
            raise optuna.TrialPruned() from None
        result = fit(cfg, data, should_stop=lambda: time.time() > deadline)
        end = time.time() - t0
        trial.set_user_attr("span", [start, end, f"direct-{worker}"])
        if result.outcome == Outcome.CANCELLED or result.best_val_accuracy is None:
            raise optuna.TrialPruned()
        trial.set_user_attr("test", result.test_accuracy)
        return result.best_val_accuracy

    study.optimize(objective, timeout=max(0.0, deadline - time.time()), catch=(Exception,))


def run_direct(sampler_kind: str, seconds: float, seed: int) -> dict:
    import optuna

    with tempfile.TemporaryDirectory(prefix="autotune-bench-") as tmp:
        journal = str(Path(tmp) / "journal.log")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
        name = f"direct-{sampler_kind}-{seed}"
        optuna.create_study(study_name=name, storage=storage, direction="maximize")
        t0 = time.time()
        context = multiprocessing.get_context("spawn")
        procs = [context.Process(target=_direct_worker, args=(journal, name, sampler_kind, seed, w, t0, t0 + seconds))
                 for w in range(WORKERS)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        study = optuna.load_study(study_name=name, storage=storage)
        trials = []
        for t in study.trials:
            span = t.user_attrs.get("span")
            if span is None:
                continue
            ok = t.state == optuna.trial.TrialState.COMPLETE
            trials.append({"start": span[0], "end": span[1], "host": span[2], "val": t.value if ok else None,
                           "test": t.user_attrs.get("test") if ok else None})
    val, test = anytime_at(trials, seconds)
    return {"trials": trials, "wall": seconds, "final_test": test, "final_val": val,
            "idle": idle_fraction(trials, WORKERS, seconds), "count": sum(t["val"] is not None for t in trials)}


# ------------------------------------------------------------------ the autotune (Django, real workers)

def run_autotune(minutes: float, seed: int, index: int) -> dict:
    from django.contrib.auth import get_user_model

    from experiments.models import Experiment
    from experiments.search.autotune import Plan
    from experiments.services.autotune import autotune_create

    user = get_user_model().objects.create_user(f"autotunebench{index}", password="autotune-bench-password-1")
    sweep = autotune_create(owner=user, minutes=minutes, seed=seed, parallelism=WORKERS,
                            name=f"bench {minutes:g} min s{seed}")
    timed_out = sweep_bench.wait_for_sweep(sweep, timeout=minutes * 60 * 1.2 + 60)
    sweep.refresh_from_db()
    t0 = sweep.created_at
    wall = ((sweep.finished_at or t0) - t0).total_seconds()
    final_rung = Plan.from_json(sweep.autotune).final_rung
    trials, final = [], None
    for e in Experiment.objects.filter(sweep=sweep).order_by("trial_number"):
        if e.started_at is None or e.finished_at is None:
            continue
        ok = e.status == Experiment.Status.SUCCEEDED
        row = {"start": (e.started_at - t0).total_seconds(), "end": (e.finished_at - t0).total_seconds(),
               "host": e.worker_host, "val": e.best_val_accuracy if ok else None,
               "test": e.test_accuracy if ok else None, "rung": e.sweep_rung}
        trials.append(row)
        if e.sweep_rung == final_rung and ok:
            final = row
    return {"trials": trials, "wall": wall, "final_test": final and final["test"], "final_val": final and final["val"],
            "idle": idle_fraction(trials, WORKERS, max(wall, 1e-9)), "count": sum(t["val"] is not None for t in trials),
            "message": sweep.message, "timed_out": timed_out,
            "rungs": {r: sum(t["rung"] == r for t in trials) for r in sorted({t["rung"] for t in trials})}}


# ------------------------------------------------------------------ output

def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 5, 15], help="budgets (default 2 5 15)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per budget (default 3: 0, 1, 2)")
    parser.add_argument("--methods", nargs="+", default=["autotune", "tpe", "random"],
                        choices=["autotune", "tpe", "random"])
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL", "")
    pg_name = sweep_bench.RUN_ID.replace("-", "_")
    stack = sweep_bench.Stack()
    if admin_url.startswith(("postgres://", "postgresql://")):
        os.environ["DATABASE_URL"] = create_database(admin_url, pg_name)
    results: dict[tuple[float, int, str], dict] = {}
    try:
        stack.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        db = settings.DATABASES["default"]
        print(f"database: {db['ENGINE'].rsplit('.', 1)[-1]}; {WORKERS} workers -P solo -c 1 (autotune) / "
              f"{WORKERS} processes (Optuna direct), OPENBLAS_NUM_THREADS=1; {sweep_bench.load()}")
        index = 0
        for minutes in args.minutes:
            for seed in range(args.seeds):
                for method in args.methods:
                    index += 1
                    began = time.perf_counter()
                    if method == "autotune":
                        stack.start_workers(WORKERS)
                        sweep_bench.warm_up(get_user_model().objects.create_user(
                            f"warmup{index}", password="autotune-bench-password-1"), WORKERS)
                        r = run_autotune(minutes, seed, index)
                        stack.stop_workers()  # idle workers would not compete, but stop them anyway
                    else:
                        r = run_direct(method, minutes * 60, seed)
                    results[(minutes, seed, method)] = r
                    extra = (f"; rungs {r['rungs']}; {r['message']}{' TIMED OUT' if r['timed_out'] else ''}"
                             if method == "autotune" else "")
                    print(f"  {minutes:g} min seed {seed} {method}: {r['count']} trials succeeded, wall "
                          f"{r['wall']:.0f} s (bench {time.perf_counter() - began:.0f} s), final test "
                          f"{pct(r['final_test'])} %, idle {100 * r['idle']:.1f} %{extra}; {sweep_bench.load()}",
                          flush=True)
    finally:
        stack.close()
        if admin_url.startswith(("postgres://", "postgresql://")):
            drop_database(admin_url, pg_name)

    print("\nbest val / that trial's test accuracy (%) at each fraction of the budget; medians over seeds")
    head = " | ".join(f"{int(100 * m)} %" for m in MARKS)
    print(f"| budget | method | seeds | {head} | final test | trials | worker idle |")
    print("|---|---|---|" + "---|" * len(MARKS) + "---|---|---|")
    for minutes in args.minutes:
        for method in args.methods:
            runs = [results[(minutes, seed, method)] for seed in range(args.seeds)
                    if (minutes, seed, method) in results]
            if not runs:
                continue
            cells = []
            for mark in MARKS:
                # the end: the budget, or later when the autotune's final trial used its grace
                pairs = [anytime_at(r["trials"], max(mark * minutes * 60, r["wall"] if mark == 1 else 0))
                         for r in runs]
                vals = [v for v, _ in pairs if v is not None]
                tests = [t for _, t in pairs if t is not None]
                cells.append(f"{pct(statistics.median(vals)) if vals else '–'} / "
                             f"{pct(statistics.median(tests)) if tests else '–'}")
            finals = [r["final_test"] for r in runs if r["final_test"] is not None]
            print(f"| {minutes:g} min | {method} | {len(runs)} | {' | '.join(cells)} | "
                  f"{pct(statistics.median(finals)) if finals else '–'} | "
                  f"{statistics.median(r['count'] for r in runs):g} | "
                  f"{100 * statistics.median(r['idle'] for r in runs):.1f} % |")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f} s")

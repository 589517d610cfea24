"""The reference curve: what a sound MLP reaches on N training images in E epochs.

Trains this project's own trainer (`training.trainer.fit`) with the default config (adam 1e-3,
[256, 128], relu, dropout 0.2, batch 128, cosine decay, validation fraction 0.1) at training-set
sizes 1 000 ... 60 000 (`train_size`, train + validation) for E epochs, over several seeds, and
prints the test accuracy (weights of the best validation epoch, as the trainer reports it) and the
best validation accuracy, mean and spread (max - min) over the seeds, per size x epochs.

The epochs axis is one cosine run per (size, E, seed), not the best-so-far of one long run: the
default schedule is cosine, and a cosine run of E epochs anneals to zero at epoch E, so it reaches
more in E epochs than epoch E of a longer run (whose rate is still high there). The reference is
what a user's default run of that length reaches; a constant-rate run is judged against it too.

    python bench/reference_curve.py                 # measure and print (~4-5 min on 2 cores)
    python bench/reference_curve.py --write         # ... and rewrite the measured block of
                                                    #     experiments/recommender/reference.py
    python bench/reference_curve.py --seeds 1 --sizes 1000 2000 --epochs 1 5   # a quick look

Runs go to a pool of `--workers` processes (default 2), one BLAS thread each: on small subsets
a single-threaded process per core does more work than two threads on one run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "experiments" / "recommender" / "reference.py"
SIZES = (1000, 2000, 5000, 10000, 20000, 60000)  # train_size (train + validation); 60 000 = all (None)
EPOCHS = (1, 2, 3, 5, 8, 12, 20, 30)
SEEDS = (0, 1, 2)
BEGIN = "# --- measured: begin (written by `python bench/reference_curve.py --write`; do not edit) ---"
END = "# --- measured: end ---"


def _init_worker() -> None:
    sys.path.insert(0, str(ROOT))
    from training.data import load_fashion_mnist
    load_fashion_mnist()  # parse/cache once per worker; later loads are memory maps


def _train(size: int, epochs: int, seed: int) -> dict:
    from training.config import TrainingConfig
    from training.data import load_fashion_mnist, prepare_dataset
    from training.trainer import fit

    config = TrainingConfig.from_dict({"epochs": epochs, "seed": seed,
                                       "train_size": None if size >= 60000 else size})
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction,
                           seed=config.seed, train_size=config.train_size)
    start = time.perf_counter()
    result = fit(config, data)
    return {"size": size, "epochs": epochs, "seed": seed, "train_images": int(data.x_train.shape[0]),
            "outcome": result.outcome.value, "best_val_accuracy": result.best_val_accuracy,
            "test_accuracy": result.test_accuracy, "seconds": time.perf_counter() - start}


def measure(sizes, epochs, seeds, workers: int) -> list[dict]:
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    # Longest runs first, so the pool is not left waiting on one big run at the end.
    tasks = sorted(((s, e, seed) for s in sizes for e in epochs for seed in seeds),
                   key=lambda t: -min(t[0], 60000) * t[1])
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = [pool.submit(_train, *task) for task in tasks]
        for done, future in enumerate(futures, start=1):
            row = future.result()
            results.append(row)
            print(f"  [{done:3d}/{len(tasks)}] {row['size']:6d} images, {row['epochs']:2d} epochs, seed "
                  f"{row['seed']}: test {100 * row['test_accuracy']:.2f} %, best val "
                  f"{100 * row['best_val_accuracy']:.2f} % ({row['seconds']:.1f} s)", flush=True)
    return results


def _cells(results, sizes, epochs, key) -> tuple[list[list[float]], list[list[float]]]:
    """(mean, spread = max - min) over the seeds of `key`, per size x epochs."""
    means, spreads = [], []
    for size in sizes:
        mean_row, spread_row = [], []
        for e in epochs:
            values = [r[key] for r in results if r["size"] == size and r["epochs"] == e]
            mean_row.append(statistics.fmean(values))
            spread_row.append(max(values) - min(values))
        means.append(mean_row)
        spreads.append(spread_row)
    return means, spreads


def print_table(title, train_images, epochs, means, spreads) -> None:
    print(f"\n{title} (%, mean over seeds ± half the max-min spread)")
    print(f"{'train images':>12} | " + " | ".join(f"{e:>3} epochs " for e in epochs))
    for n, mean_row, spread_row in zip(train_images, means, spreads, strict=True):
        print(f"{n:>12} | " + " | ".join(f"{100 * m:5.1f} ± {50 * s:3.1f}"
                                         for m, s in zip(mean_row, spread_row, strict=True)))


def _literal(rows: list[list[float]], train_images, digits: int = 4) -> str:
    lines = ["("]
    for n, row in zip(train_images, rows, strict=True):
        lines.append("    (" + ", ".join(f"{v:.{digits}f}" for v in row) + f"),  # {n} images")
    lines.append(")")
    return "\n".join(lines)


def write_module(results, sizes, epochs, seeds, train_images, wall_seconds: float) -> None:
    test_mean, test_spread = _cells(results, sizes, epochs, "test_accuracy")
    val_mean, val_spread = _cells(results, sizes, epochs, "best_val_accuracy")
    cores = os.cpu_count()
    block = "\n".join([
        BEGIN,
        f"MEASURED = {datetime.date.today().isoformat()!r}",
        f"MACHINE = {f'{platform.machine()}, {cores} cores, Python {platform.python_version()}, {len(results)} runs in {wall_seconds:.0f} s'!r}",
        f"SEEDS = {tuple(seeds)!r}",
        f"TRAIN_IMAGES = {tuple(train_images)!r}",
        f"EPOCHS = {tuple(epochs)!r}",
        "# Test accuracy (fraction, at the best validation epoch) of the default config, mean over SEEDS,",
        "# per TRAIN_IMAGES row x EPOCHS column; *_SPREAD: max - min over the seeds.",
        f"TEST_ACCURACY = {_literal(test_mean, train_images)}",
        f"TEST_SPREAD = {_literal(test_spread, train_images)}",
        "# Best validation accuracy (fraction) of the same runs (validation = 10 % of train_size).",
        f"BEST_VAL_ACCURACY = {_literal(val_mean, train_images)}",
        f"BEST_VAL_SPREAD = {_literal(val_spread, train_images)}",
        END,
    ])
    text = MODULE.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{MODULE}: no measured block between the begin/end markers")
    MODULE.write_text(pattern.sub(lambda _: block, text))
    print(f"\nwrote the measured block of {MODULE.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--epochs", type=int, nargs="+", default=list(EPOCHS))
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0 .. N-1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="rewrite the shipped reference table")
    args = parser.parse_args()
    sizes, epochs, seeds = sorted(args.sizes), sorted(args.epochs), list(range(args.seeds))
    if args.write and len(seeds) < 2:
        parser.error("--write needs at least 2 seeds (the spread is part of the table)")
    print(f"reference curve: default config (adam 1e-3, [256, 128], dropout 0.2, cosine), sizes {sizes}, "
          f"epochs {epochs}, seeds {seeds}, {args.workers} workers x 1 BLAS thread")
    start = time.perf_counter()
    results = measure(sizes, epochs, seeds, args.workers)
    wall = time.perf_counter() - start
    train_images = [next(r["train_images"] for r in results if r["size"] == s) for s in sizes]
    for title, key in (("Test accuracy", "test_accuracy"), ("Best validation accuracy", "best_val_accuracy")):
        means, spreads = _cells(results, sizes, epochs, key)
        print_table(title, train_images, epochs, means, spreads)
    print(f"\n{len(results)} runs in {wall:.0f} s wall, {sum(r['seconds'] for r in results):.0f} s of training")
    if args.write:
        write_module(results, sizes, epochs, seeds, train_images, wall)


if __name__ == "__main__":
    main()

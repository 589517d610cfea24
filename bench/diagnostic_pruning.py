"""Diagnostic pruning: the same random sweep with and without it, over several sweep seeds.

Prints figures; asserts nothing. Runs on its own stack (bench/sweep_bench.py's `Stack`: a
temporary var dir with SQLite, Redis database 5 with its own queue and channel prefix, two
Celery worker subprocesses, -P solo, one BLAS thread each) through the project's own code:
`services.sweep_create` with `diagnostic_pruning` on or off, trials trained by the workers.

    .venv/bin/python bench/diagnostic_pruning.py             # 3 seeds x 20 trials x 12 epochs: ~8 min
    .venv/bin/python bench/diagnostic_pruning.py --quick     # 1 seed, 10 trials

The sweep: random search (the same sweep seed gives the same trials in both arms), no median/ASHA
pruner, trials on a 5 000-image subset for up to 12 epochs; space: learning_rate log 1e-5..1,
optimizer sgd/momentum/rmsprop/adam, hidden_layers [64]/[128]/[256, 128], dropout 0..0.9.
Goal (issue 13): >= 30 % fewer epochs at equal best accuracy (+-0.3 points) over 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_bench import Stack, fmt_counts, load, wait_for_sweep  # noqa: E402 - sets the BLAS threads before NumPy

# "dev": the setting the thresholds were chosen on (seeds 1-3). "heldout": never looked at while
# choosing them (seeds 11-13): more images, a longer budget, other ranges and schedules.
SETTINGS = {
    "dev": {"base": {"train_size": 5000, "epochs": 12, "batch_size": 128, "lr_schedule": "cosine"},
            "space": {"learning_rate": {"low": 1e-5, "high": 1.0, "scale": "log"},
                      "optimizer": {"values": ["sgd", "momentum", "rmsprop", "adam"]},
                      "hidden_layers": {"values": [[64], [128], [256, 128]]},
                      "dropout": {"low": 0.0, "high": 0.9}},
            "seeds": [1, 2, 3], "budget": 20},
    "heldout": {"base": {"train_size": 10000, "epochs": 15, "batch_size": 64},
                "space": {"learning_rate": {"low": 1e-4, "high": 0.3, "scale": "log"},
                          "optimizer": {"values": ["sgd", "momentum", "rmsprop", "adam"]},
                          "hidden_layers": {"values": [[32], [128, 64], [512]]},
                          "dropout": {"low": 0.0, "high": 0.6},
                          "lr_schedule": {"values": ["constant", "step", "cosine"]}},
                "seeds": [11, 12, 13], "budget": 16},
}
BASE, SPACE = SETTINGS["dev"]["base"], SETTINGS["dev"]["space"]


def run_sweep(user, *, seed: int, budget: int, diagnostic: bool, timeout: float) -> dict:
    from experiments import services
    from experiments.models import EpochMetric, Experiment

    started = time.perf_counter()
    sweep = services.sweep_create(owner=user, name=f"{'diag' if diagnostic else 'none'} s{seed}", base_config=BASE,
                                  space=SPACE, strategy="random", budget=budget, parallelism=2, seed=seed,
                                  diagnostic_pruning=diagnostic)
    timed_out = wait_for_sweep(sweep, timeout)
    trials = list(Experiment.objects.filter(sweep=sweep).order_by("trial_number").values(
        "id", "trial_number", "status", "epochs_done", "best_val_accuracy", "message", "config"))
    for t in trials:
        t["curve"] = list(EpochMetric.objects.filter(experiment_id=t["id"]).order_by("epoch")
                          .values_list("val_accuracy", flat=True))
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    accuracies = [t["best_val_accuracy"] for t in trials if t["status"] == "succeeded"
                  and t["best_val_accuracy"] is not None]
    return {"wall": time.perf_counter() - started, "timed_out": timed_out, "counts": counts, "trials": trials,
            "epochs": sum(t["epochs_done"] for t in trials), "best": max(accuracies, default=float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 10 trials")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="dev",
                        help="dev: the thresholds' tuning setting; heldout: never used for tuning")
    parser.add_argument("--seeds", type=int, nargs="*", help="default: the setting's seeds")
    parser.add_argument("--budget", type=int, help="default: the setting's budget")
    parser.add_argument("--plain-only", action="store_true", help="only the arm without diagnostic pruning")
    parser.add_argument("--dump", type=Path, help="write every trial's config and val curve here (JSON)")
    parser.add_argument("--sweep-timeout", type=float, default=400.0, help="cap per sweep, seconds")
    args = parser.parse_args()
    global BASE, SPACE
    setting = SETTINGS[args.setting]
    BASE, SPACE = setting["base"], setting["space"]
    seeds, budget = ([1], 10) if args.quick else (args.seeds or setting["seeds"], args.budget or setting["budget"])

    stack = Stack()
    try:
        stack.setup_django()
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        stack.start_workers(2)
        print(f"{load()}; 2 workers; {args.setting} setting: random sweeps of {budget} trials x up to "
              f"{BASE['epochs']} epochs on {BASE['train_size']} images; seeds {seeds}")
        rows = []
        for seed in seeds:
            plain = run_sweep(user, seed=seed, budget=budget, diagnostic=False, timeout=args.sweep_timeout)
            diag = plain if args.plain_only else run_sweep(user, seed=seed, budget=budget, diagnostic=True,
                                                           timeout=args.sweep_timeout)
            if args.dump:
                dumped = json.loads(args.dump.read_text()) if args.dump.exists() else {}
                dumped[f"{args.setting}-{seed}"] = {"base": BASE, "plain": plain["trials"],
                                                    "diag": None if args.plain_only else diag["trials"]}
                args.dump.write_text(json.dumps(dumped, default=str))
            saved = 1 - diag["epochs"] / plain["epochs"] if plain["epochs"] else float("nan")
            rows.append((seed, plain, diag, saved))
            print(f"\nseed {seed}: without: {plain['epochs']} epochs, best {100 * plain['best']:.1f} %, "
                  f"{plain['wall']:.0f} s ({fmt_counts(plain['counts'])}){' TIMED OUT' if plain['timed_out'] else ''}")
            print(f"        with:    {diag['epochs']} epochs, best {100 * diag['best']:.1f} %, "
                  f"{diag['wall']:.0f} s ({fmt_counts(diag['counts'])}){' TIMED OUT' if diag['timed_out'] else ''}")
            print(f"        epochs saved {100 * saved:.1f} %, best accuracy difference "
                  f"{100 * (diag['best'] - plain['best']):+.1f} points")
            for trial in diag["trials"]:
                if trial["status"] == "pruned":
                    cfg = trial["config"]
                    print(f"          #{trial['trial_number']} {cfg['optimizer']} lr {cfg['learning_rate']:.3g} "
                          f"dropout {cfg['dropout']:.2f}: {trial['message']}")
        savings = [saved for *_, saved in rows]
        deltas = [100 * (diag["best"] - plain["best"]) for _, plain, diag, _ in rows]
        print(f"\nepochs saved: mean {100 * statistics.mean(savings):.1f} % (per seed "
              f"{', '.join(f'{100 * s:.1f}' for s in savings)}; spread {100 * (max(savings) - min(savings)):.1f} "
              f"points); best accuracy difference per seed {', '.join(f'{d:+.1f}' for d in deltas)} points "
              f"(goal: >= 30 % saved, within +-0.3 points)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()

"""Measure whether the recommender's advice is right: `python manage.py evaluate_recommender`.

Trains a built-in suite of deliberately flawed configurations (each chosen to show one
problem, on a training subset), applies each run's top recommendation (Apply & Run),
trains the child, and prints: expected problem, diagnosed kinds, validation accuracy
before -> after, improved. Runs execute in this process through the same services the
workers use (rows, metrics, recommendations and their outcomes are stored as usual).
"""

from __future__ import annotations

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from experiments import selectors, services
from experiments.models import Experiment, Recommendation

SUBSET = {"train_size": 6000, "validation_fraction": 0.2, "seed": 11}

# (expected problem kind, what is wrong, config)
SUITE: list[tuple[str, str, dict]] = [
    ("divergence", "SGD with a learning rate of 5", {"optimizer": "sgd", "learning_rate": 5.0, "epochs": 8,
                                                     "lr_schedule": "constant", "dropout": 0.0}),
    ("lr_too_high", "Adam at 0.03: oscillating loss", {"optimizer": "adam", "learning_rate": 0.03, "epochs": 10,
                                                        "lr_schedule": "constant", "dropout": 0.0}),
    ("lr_too_low", "SGD at 1e-4: the loss barely moves", {"optimizer": "sgd", "learning_rate": 0.0001,
                                                          "epochs": 8, "lr_schedule": "constant",
                                                          "dropout": 0.0}),
    ("underfitting", "a 4-unit hidden layer", {"hidden_layers": [4], "epochs": 10, "learning_rate": 0.003,
                                                "lr_schedule": "constant", "dropout": 0.0}),
    ("overfitting", "a wide net, no regularisation, many epochs", {"hidden_layers": [1024, 512], "epochs": 30,
                                                                   "learning_rate": 0.001, "dropout": 0.0,
                                                                   "lr_schedule": "constant"}),
    ("more_epochs", "stopped while still improving", {"optimizer": "momentum", "learning_rate": 0.005,
                                                      "epochs": 4, "lr_schedule": "constant", "dropout": 0.0}),
    ("plateau", "tiny noisy batches at a constant rate", {"optimizer": "sgd", "learning_rate": 0.1,
                                                          "batch_size": 8, "epochs": 10,
                                                          "lr_schedule": "constant", "dropout": 0.0}),
    ("dead_units", "a narrow ReLU net, momentum, tiny batches", {"optimizer": "momentum", "learning_rate": 0.05,
                                                                 "batch_size": 16, "epochs": 8,
                                                                 "lr_schedule": "constant", "dropout": 0.0,
                                                                 "hidden_layers": [32]}),
    ("instability", "RMSprop at 0.01 without warm-up", {"optimizer": "rmsprop", "learning_rate": 0.01,
                                                        "epochs": 8, "lr_schedule": "constant",
                                                        "dropout": 0.0}),
    ("underfitting", "tanh bottleneck of 8 units", {"hidden_layers": [8], "activation": "tanh", "epochs": 10,
                                                    "learning_rate": 0.003, "lr_schedule": "constant",
                                                    "dropout": 0.0}),
]


class Command(BaseCommand):
    help = "Run the recommender's self-assessment suite and print how often it is right."

    def add_arguments(self, parser):
        parser.add_argument("--user", default="recommender-eval", help="account that owns the suite's runs")
        parser.add_argument("--only", nargs="*", help="run only these expected kinds")
        parser.add_argument("--json", action="store_true", help="also print the results as JSON")

    def handle(self, *args, **options):
        owner, _ = get_user_model().objects.get_or_create(username=options["user"])
        suite = [case for case in SUITE if not options["only"] or case[0] in options["only"]]
        rows = []
        started = time.monotonic()
        for expected, description, overrides in suite:
            row = self._evaluate_case(owner, expected, description, overrides)
            rows.append(row)
            self.stdout.write(self._format_row(row))
        named = sum(r["named"] for r in rows)
        applied = [r for r in rows if r["improved"] is not None]
        improved = sum(bool(r["improved"]) for r in applied)
        self.stdout.write("")
        self.stdout.write(f"problem named: {named}/{len(rows)} ({named / len(rows):.0%}; goal >= 90%)")
        if applied:
            self.stdout.write(f"top change improved validation accuracy: {improved}/{len(applied)} "
                              f"({improved / len(applied):.0%}; goal >= 80%)")
        self.stdout.write(f"time: {time.monotonic() - started:.0f} s")
        if options["json"]:
            self.stdout.write(json.dumps(rows))

    def _run(self, experiment: Experiment) -> Experiment:
        services.experiment_run(experiment_id=experiment.pk)
        experiment.refresh_from_db()
        return experiment

    def _evaluate_case(self, owner, expected: str, description: str, overrides: dict) -> dict:
        config = {**overrides, **SUBSET}
        parent = self._run(services.experiment_create(owner=owner, config=config, enqueue=False,
                                                      name=f"eval: {description}"))
        advice = list(selectors.experiment_recommendations(experiment=parent))
        kinds = [a.kind for a in advice]
        top = next((a for a in advice if a.changes), None)
        row = {"expected": expected, "description": description, "status": parent.status,
               "kinds": kinds, "named": expected in kinds, "top_kind": top.kind if top else None,
               "top_changes": top.changes if top else None, "before": parent.best_val_accuracy,
               "after": None, "improved": None}
        if top is not None:
            child = self._run(services.recommendation_apply(recommendation=top, owner=owner, enqueue=False))
            top = Recommendation.objects.get(pk=top.pk)
            row.update(after=child.best_val_accuracy if child.status != Experiment.Status.DIVERGED else None,
                       improved=top.improved)
        return row

    @staticmethod
    def _format_row(row: dict) -> str:
        def pct(value):
            return "  -  " if value is None else f"{value * 100:5.1f}"

        mark = "yes" if row["improved"] else ("n/a" if row["improved"] is None else "no")
        diagnosed = ",".join(k for k in row["kinds"] if k not in ("performance", "history")) or "-"
        return (f"{row['expected']:<13} {'OK ' if row['named'] else 'MISS'} diagnosed {diagnosed:<45.45} "
                f"val {pct(row['before'])} -> {pct(row['after'])}  improved {mark:<3}  "
                f"top: {row['top_kind']} {json.dumps(row['top_changes'])}")

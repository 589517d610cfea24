"""Measure whether the recommender's advice is right: `python manage.py evaluate_recommender`.

Trains the evaluation set (`experiments/recommender/evaluation/`: deliberately flawed
configurations and healthy controls, split once into a development and a held-out half),
applies each flawed run's top recommendation (Apply & Run), trains the child, and prints per
case and seed the diagnosis and validation accuracy before -> after, then per half: the
confusion of expected vs diagnosed problem, named %, improved % and false alarms on the
healthy controls, with the spread over seeds.

    manage.py evaluate_recommender --half development|held-out|both [--seeds N] [--quick] [--limit K]
    manage.py evaluate_recommender --legacy      # the original 10-case table
    manage.py evaluate_recommender --find-fix --half held-out [--quick]

--find-fix evaluates Find the fix instead: for each flawed case and seed, the candidates of
experiments/recommender/fixes.py are trained on that seed and compared with the run; the winner
(if any helped) is re-run on another seed (seed + 1000) beside the parent re-run there, and the
report says how often any candidate helped and how often the verified fix held on the new seed.

Tune the recommender on the development half only. Runs execute in this process through the
same services the workers use (rows, metrics, recommendations and their outcomes are stored
as usual).
"""

from __future__ import annotations

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from experiments import selectors, services
from experiments.models import Experiment, Recommendation
from experiments.recommender import evaluation
from experiments.recommender.evaluation import HALVES, HEALTHY, Case, Outcome
from experiments.recommender.evaluation.report import (
    FixOutcome,
    format_fix_outcome,
    format_fix_summary,
    summarise_fixes,
)
from experiments.recommender.fixes import fix_candidates, fix_verdict, measured_value

CHECK_SEED_OFFSET = 1000  # the verified fix is re-checked on seed + this (no case uses such a seed)

# The legacy suite (`--legacy`): the ten cases the rules were first tuned on.
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
    help = "Run the recommender's evaluation set (or the legacy suite) and print how often it is right."

    def add_arguments(self, parser):
        parser.add_argument("--user", default="recommender-eval", help="account that owns the runs")
        parser.add_argument("--half", choices=(*HALVES, "both"), default="development",
                            help="which half of the evaluation set to run (tune on development only)")
        parser.add_argument("--seeds", type=int, default=2, help="seeds per case (the first N of its seeds)")
        parser.add_argument("--quick", action="store_true", help="skip the cases on more than 10 000 images")
        parser.add_argument("--limit", type=int, help="run only the first K cases of the half")
        parser.add_argument("--only", nargs="*", help="run only these expected kinds")
        parser.add_argument("--legacy", action="store_true", help="run the original 10-case suite instead")
        parser.add_argument("--json", action="store_true", help="also print the results as JSON")
        parser.add_argument("--find-fix", action="store_true",
                            help="evaluate Find the fix: candidates per flawed case, the winner re-checked on a "
                                 "new seed")

    def handle(self, *args, **options):
        owner, _ = get_user_model().objects.get_or_create(username=options["user"])
        started = time.monotonic()
        if options["legacy"]:
            self._handle_legacy(owner, options)
        elif options["find_fix"]:
            self._handle_find_fix(owner, options)
        else:
            self._handle_set(owner, options)
        self.stdout.write(f"time: {time.monotonic() - started:.0f} s")

    # The evaluation set ------------------------------------------------------------------------

    def _select(self, options) -> list[Case]:
        cases = evaluation.half_cases(options["half"])
        if options["quick"]:
            cases = [case for case in cases if not case.large]
        if options["only"]:
            cases = [case for case in cases if case.expected in options["only"]]
        if options["limit"] is not None:
            cases = cases[:max(options["limit"], 0)]
        fewest = min((len(case.seeds) for case in cases), default=0)
        if not 1 <= options["seeds"] <= max(fewest, 1):
            raise CommandError(f"--seeds must be between 1 and {fewest} (the seeds every case has)")
        return cases

    def _handle_set(self, owner, options) -> None:
        cases = self._select(options)
        self.stdout.write(f"{options['half']} half: {len(cases)} cases x {options['seeds']} seeds "
                          f"(split seed {evaluation.SPLIT_SEED}{'; quick' if options['quick'] else ''})")
        outcomes: list[Outcome] = []
        for case in cases:
            for seed in case.seeds[:options["seeds"]]:
                outcome = self._evaluate_set_case(owner, case, seed)
                outcomes.append(outcome)
                self.stdout.write(evaluation.format_outcome(outcome))
                self.stdout.flush()
        summaries = {}
        for half in HALVES:
            mine = [o for o in outcomes if evaluation.half_of(o.case_id) == half]
            if mine:
                summaries[half] = evaluation.summarise(mine)
                self.stdout.write("")
                for line in evaluation.format_summary(f"{half} half ({len(mine)} runs)", summaries[half]):
                    self.stdout.write(line)
        if options["json"]:
            self.stdout.write(json.dumps({"outcomes": [o.to_json() for o in outcomes],
                                          "summaries": {half: _summary_json(s) for half, s in summaries.items()}}))

    def _evaluate_set_case(self, owner, case: Case, seed: int) -> Outcome:
        trial = self._train_and_apply(owner, case.run_config(seed), f"eval {case.id} seed {seed}",
                                      apply=case.expected != HEALTHY)
        return Outcome(case_id=case.id, expected=case.expected, seed=seed, kinds=tuple(trial["kinds"]),
                       top_kind=trial["top_kind"], improved=trial["improved"], before=trial["before"],
                       after=trial["after"], status=trial["status"])

    # Find the fix ------------------------------------------------------------------------------

    def _handle_find_fix(self, owner, options) -> None:
        cases = [case for case in self._select(options) if case.expected != HEALTHY]
        self.stdout.write(f"Find the fix, {options['half']} half: {len(cases)} flawed cases x {options['seeds']} "
                          f"seeds{' (quick)' if options['quick'] else ''}; gains in points over the run")
        outcomes: list[FixOutcome] = []
        for case in cases:
            for seed in case.seeds[:options["seeds"]]:
                outcome = self._evaluate_fix(owner, case, seed)
                outcomes.append(outcome)
                self.stdout.write(format_fix_outcome(outcome))
                self.stdout.flush()
        summaries = {}
        for half in HALVES:
            mine = [o for o in outcomes if evaluation.half_of(o.case_id) == half]
            if mine:
                summaries[half] = summarise_fixes(mine)
                self.stdout.write("")
                for line in format_fix_summary(f"{half} half ({len(mine)} runs)", summaries[half]):
                    self.stdout.write(line)
        if options["json"]:
            self.stdout.write(json.dumps({"outcomes": [o.to_json() for o in outcomes]}))

    def _value(self, experiment: Experiment) -> float | None:
        return measured_value(experiment.status, experiment.best_val_accuracy)

    def _evaluate_fix(self, owner, case: Case, seed: int) -> FixOutcome:
        name = f"fix-eval {case.id} seed {seed}"
        parent = self._run(services.experiment_create(owner=owner, config=case.run_config(seed), enqueue=False,
                                                      name=name))
        candidates = fix_candidates(parent.config, list(selectors.experiment_recommendations(experiment=parent)))
        measured = []
        for number, candidate in enumerate(candidates, start=1):
            trial = self._run(services.experiment_create(owner=owner, config={**parent.config, **candidate["changes"]},
                                                         enqueue=False, name=f"{name} candidate {number}"))
            measured.append({**candidate, "trial": trial.pk, "status": trial.status,
                             "best_val_accuracy": trial.best_val_accuracy})
        verdict = fix_verdict(self._value(parent), measured)
        gains = tuple(row["gain_points"] for row in verdict["candidates"])
        if verdict["winner"] is None:
            return FixOutcome(case.id, case.expected, seed, len(candidates), gains)
        winner = verdict["candidates"][verdict["winner"]]
        check_seed = seed + CHECK_SEED_OFFSET
        base = {**parent.config, "seed": check_seed}
        again = self._run(services.experiment_create(owner=owner, config=base, enqueue=False, name=f"{name} recheck"))
        fixed = self._run(services.experiment_create(owner=owner, config={**base, **winner["changes"]}, enqueue=False,
                                                     name=f"{name} winner recheck"))
        before, after = self._value(again), self._value(fixed)
        check_gain = None if before is None or after is None else round(100 * (after - before), 2)
        return FixOutcome(case.id, case.expected, seed, len(candidates), gains, winner_kind=winner["kind"],
                          winner_gain=winner["gain_points"], check_seed=check_seed, check_gain=check_gain)

    # Shared: train a config, read its advice, apply the top change ------------------------------

    def _run(self, experiment: Experiment) -> Experiment:
        services.experiment_run(experiment_id=experiment.pk)
        experiment.refresh_from_db()
        return experiment

    def _train_and_apply(self, owner, config: dict, name: str, *, apply: bool = True) -> dict:
        parent = self._run(services.experiment_create(owner=owner, config=config, enqueue=False, name=name))
        advice = list(selectors.experiment_recommendations(experiment=parent))
        top = next((a for a in advice if a.changes), None)
        result = {"status": parent.status, "kinds": [a.kind for a in advice], "top_kind": top.kind if top else None,
                  "top_changes": top.changes if top else None, "before": parent.best_val_accuracy,
                  "after": None, "improved": None}
        if top is not None and apply:
            child = self._run(services.recommendation_apply(recommendation=top, owner=owner, enqueue=False))
            top = Recommendation.objects.get(pk=top.pk)
            result.update(after=child.best_val_accuracy if child.status != Experiment.Status.DIVERGED else None,
                          improved=top.improved)
        return result

    # The legacy suite ----------------------------------------------------------------------------

    def _handle_legacy(self, owner, options) -> None:
        suite = [case for case in SUITE if not options["only"] or case[0] in options["only"]]
        rows = []
        for expected, description, overrides in suite:
            trial = self._train_and_apply(owner, {**overrides, **SUBSET}, f"eval: {description}")
            row = {"expected": expected, "description": description, **trial, "named": expected in trial["kinds"]}
            rows.append(row)
            self.stdout.write(self._format_row(row))
        named = sum(r["named"] for r in rows)
        applied = [r for r in rows if r["improved"] is not None]
        improved = sum(bool(r["improved"]) for r in applied)
        self.stdout.write("")
        if rows:
            self.stdout.write(f"problem named: {named}/{len(rows)} ({named / len(rows):.0%}; goal >= 90%)")
        if applied:
            self.stdout.write(f"top change improved validation accuracy: {improved}/{len(applied)} "
                              f"({improved / len(applied):.0%}; goal >= 80%)")
        if options["json"]:
            self.stdout.write(json.dumps(rows))

    @staticmethod
    def _format_row(row: dict) -> str:
        def pct(value):
            return "  -  " if value is None else f"{value * 100:5.1f}"

        mark = "yes" if row["improved"] else ("n/a" if row["improved"] is None else "no")
        diagnosed = ",".join(k for k in row["kinds"] if k not in ("performance", "history")) or "-"
        return (f"{row['expected']:<13} {'OK ' if row['named'] else 'MISS'} diagnosed {diagnosed:<45.45} "
                f"val {pct(row['before'])} -> {pct(row['after'])}  improved {mark:<3}  "
                f"top: {row['top_kind']} {json.dumps(row['top_changes'])}")


def _summary_json(summary: evaluation.Summary) -> dict:
    def figure(f):
        return {"count": f.count, "total": f.total, "per_seed": {str(k): list(v) for k, v in f.per_seed.items()}}

    return {"named": figure(summary.named), "improved": figure(summary.improved),
            "false_alarms": figure(summary.false_alarms), "confusion": summary.confusion,
            "per_problem": {kind: {name: figure(f) for name, f in figures.items()}
                            for kind, figures in summary.per_problem.items()}}

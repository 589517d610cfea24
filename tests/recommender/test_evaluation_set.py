"""The recommender's evaluation set: its coverage, its fixed split, and how outcomes are scored."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from experiments.recommender import evaluation
from experiments.recommender.evaluation import (
    CASES,
    DEVELOPMENT,
    FAMILIES,
    HEALTHY,
    HELD_OUT,
    SPLIT_SEED,
    Outcome,
    half_cases,
    split_cases,
    summarise,
)
from training.config import ACTIVATIONS, OPTIMIZERS, TrainingConfig

RULES = Path(evaluation.__file__).resolve().parent.parent / "rules"
FLAWED = [case for case in CASES if case.expected != HEALTHY]
HEALTHY_CASES = [case for case in CASES if case.expected == HEALTHY]


def test_at_least_40_flawed_cases_and_8_healthy_controls():
    assert len(FLAWED) >= 40
    assert len(HEALTHY_CASES) >= 8


def test_ids_are_unique():
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_config_is_valid_on_every_seed(case):
    assert len(case.seeds) >= 2 and len(set(case.seeds)) == len(case.seeds)
    for seed in case.seeds:
        config = TrainingConfig.from_dict(case.run_config(seed))
        assert config.seed == seed


def test_every_problem_family_is_covered_by_at_least_three_cases():
    counts = Counter(case.expected for case in FLAWED)
    assert set(counts) == set(FAMILIES.values())
    assert min(counts.values()) >= 3


def test_expected_kinds_use_the_recommenders_names_where_it_has_them():
    source = "\n".join(path.read_text() for path in RULES.glob("*.py"))
    emitted = set(re.findall(r'_advice\(\s*"(\w+)"', source))
    assert {"divergence", "overfitting", "dead_units"} <= emitted  # the pattern still finds the rules
    # Only these two had no rule when the set was written (they count as misses until one exists).
    assert set(FAMILIES.values()) - {"over_regularisation", "batch_size"} <= emitted


def test_the_ranges_of_the_issue_are_covered():
    configs = [case.config for case in CASES]
    assert {c["optimizer"] for c in configs} == set(OPTIMIZERS)
    assert {c["activation"] for c in configs} == set(ACTIVATIONS)
    assert {len(c["hidden_layers"]) for c in configs} == {1, 2, 3}
    sizes = [c["train_size"] for c in configs]
    epochs = [c["epochs"] for c in configs]
    batches = [c["batch_size"] for c in configs]
    assert min(sizes) == 1000 and max(sizes) == 60000 and all(1000 <= s <= 60000 for s in sizes)
    assert min(epochs) == 2 and max(epochs) == 60 and all(2 <= e <= 60 for e in epochs)
    assert min(batches) == 16 and max(batches) == 1024 and all(16 <= b <= 1024 for b in batches)
    for optimizer in OPTIMIZERS:  # every optimizer shows several problems, not one
        assert len({c.expected for c in FLAWED if c.config["optimizer"] == optimizer}) >= 5


def test_most_cases_are_cheap_and_the_large_ones_are_marked():
    large = [case for case in CASES if case.large]
    assert large and len(large) <= len(CASES) // 10
    assert all(case.config["train_size"] > 10_000 for case in large)
    assert all(case.config["train_size"] <= 10_000 for case in CASES if not case.large)


def test_the_split_function_reproduces_the_written_constants():
    assert SPLIT_SEED == 20_250_611
    assert split_cases(CASES, seed=SPLIT_SEED) == (DEVELOPMENT, HELD_OUT)
    assert split_cases(CASES, seed=SPLIT_SEED + 1) != (DEVELOPMENT, HELD_OUT)


def test_the_halves_are_disjoint_complete_and_cover_every_problem():
    assert not set(DEVELOPMENT) & set(HELD_OUT)
    assert set(DEVELOPMENT) | set(HELD_OUT) == {case.id for case in CASES}
    every = {case.expected for case in CASES}
    for half in ("development", "held-out"):
        cases = half_cases(half)
        assert {case.expected for case in cases} == every
        assert sum(case.expected == HEALTHY for case in cases) >= 4
    assert abs(len(DEVELOPMENT) - len(HELD_OUT)) <= 1
    assert [case.id for case in half_cases("both")] == [case.id for case in CASES]
    with pytest.raises(ValueError):
        half_cases("test")


# Scoring, on a hand-made list of outcomes ----------------------------------------------------------

OUTCOMES = [
    # seed 1
    Outcome("a", "divergence", 1, ("divergence", "performance"), "divergence", True),
    Outcome("b", "overfitting", 1, ("plateau", "overfitting", "performance"), "plateau", False),
    Outcome("c", "batch_size", 1, ("performance", "success"), "success", None),
    Outcome("h1", HEALTHY, 1, ("performance", "success", "more_epochs", "history")),
    Outcome("h2", HEALTHY, 1, ("lr_too_high", "performance")),
    # seed 2
    Outcome("a", "divergence", 2, ("divergence",), "divergence", False),
    Outcome("b", "overfitting", 2, ("lr_too_low", "performance"), "lr_too_low", True),
    Outcome("c", "batch_size", 2, ("more_epochs", "performance"), "more_epochs", True),
    Outcome("h1", HEALTHY, 2, ("performance",)),
    Outcome("h2", HEALTHY, 2, ("performance", "success")),
]


def test_named_improved_and_false_alarms_are_counted_per_run_and_per_seed():
    summary = summarise(OUTCOMES)
    # named: a(1), b(1), a(2) of 6 flawed runs
    assert (summary.named.count, summary.named.total) == (3, 6)
    assert summary.named.per_seed == {1: (2, 3), 2: (1, 3)}
    assert summary.named.spread == (1 / 3, 2 / 3)
    # improved: c on seed 1 had no scored outcome and is left out
    assert (summary.improved.count, summary.improved.total) == (3, 5)
    assert summary.improved.per_seed == {1: (1, 2), 2: (2, 3)}
    # false alarms: only h2 on seed 1 (more_epochs, success, history are informational)
    assert (summary.false_alarms.count, summary.false_alarms.total) == (1, 4)
    assert summary.false_alarms.per_seed == {1: (1, 2), 2: (0, 2)}


def test_the_confusion_pairs_expected_with_the_top_diagnosed_problem():
    summary = summarise(OUTCOMES)
    assert summary.confusion == {
        "batch_size": {"none": 1, "more_epochs": 1},
        "divergence": {"divergence": 2},
        "healthy": {"more_epochs": 1, "lr_too_high": 1, "none": 2},
        "overfitting": {"plateau": 1, "lr_too_low": 1},
    }
    per = summary.per_problem["overfitting"]
    assert (per["named"].count, per["named"].total) == (1, 2)
    assert (per["improved"].count, per["improved"].total) == (1, 2)
    assert "healthy" not in summary.per_problem


def test_alarm_kinds_are_everything_but_the_informational_ones():
    assert evaluation.INFORMATIONAL_KINDS == {"success", "performance", "history", "more_epochs"}
    outcome = Outcome("h", HEALTHY, 1, ("success", "over_regularisation", "more_epochs", "dead_units"))
    assert outcome.alarms == ("over_regularisation", "dead_units")
    assert outcome.diagnosed == "over_regularisation"


def test_the_report_text_shows_counts_rates_and_the_seed_spread():
    lines = evaluation.format_summary("development half", summarise(OUTCOMES))
    text = "\n".join(lines)
    assert "problem named:        3/6 (50%; per seed 33%–67%)" in text
    assert "top change improved:  3/5 (60%; per seed 50%–67%)" in text
    assert "false alarms (healthy): 1/4 (25%; per seed 0%–50%)" in text
    assert "  divergence           -> divergence 2; named 2/2 (100%" in text
    empty = summarise([])
    assert empty.named.text() == "-" and empty.named.rate is None

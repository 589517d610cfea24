"""Pure tests of the autotune plan: rungs, promotion, the search/final budget split, the anytime curve."""

from __future__ import annotations

from experiments.search import autotune as at
from experiments.search.records import SweepSpec, TrialRecord
from experiments.search.space import parse_space
from training.config import TrainingConfig

PLAN = at.Plan(seconds=600.0)


def spec() -> SweepSpec:
    base = TrainingConfig.from_dict({}).to_dict()
    params, errors = parse_space(at.SPACE, base)
    assert not errors
    return SweepSpec(strategy="tpe", params=params, base_config=base, budget=1000, seed=1)


def trial(number, rung, value, *, lr=1e-3, status="succeeded", start=0.0, seconds=10.0):
    config = {"learning_rate": lr, **PLAN.rung_config(rung)}
    return TrialRecord(number=number, experiment_id=number, status=status, config=config, best_val_accuracy=value,
                       test_accuracy=value, epochs_done=config["epochs"], rung=rung, started_at=start,
                       finished_at=start + seconds)


def test_a_fresh_autotune_starts_new_points_at_rung_zero():
    step = at.decide(PLAN, spec(), [], elapsed=0.0)
    assert (step.kind, step.rung) == ("new", 0)
    assert PLAN.rung_config(0) == {"train_size": 5000, "epochs": 2}


def test_the_top_third_of_a_rung_is_promoted_once():
    records = [trial(i, 0, 0.80 + i / 100, lr=10 ** -i) for i in range(1, 7)]  # 6 done: top 2 promoted
    step = at.decide(PLAN, spec(), records, elapsed=60.0)
    assert (step.kind, step.rung, step.source.number) == ("promote", 1, 6)
    records.append(trial(7, 1, 0.85, lr=10 ** -6, status="running"))
    step = at.decide(PLAN, spec(), records, elapsed=60.0)
    assert (step.kind, step.source.number) == ("promote", 5)
    records.append(trial(8, 1, 0.85, lr=10 ** -5, status="running"))
    assert at.decide(PLAN, spec(), records, elapsed=60.0).kind == "new"  # 4th..6th are not in the top third


def test_the_final_follows_the_search_time_and_fits_the_time_left():
    records = [trial(1, 0, 0.80, lr=1e-3), trial(2, 1, 0.86, lr=2e-3), trial(3, 0, 0.90, lr=3e-3)]
    step = at.decide(PLAN, spec(), records, elapsed=PLAN.search_seconds + 1)
    assert step.kind == "final" and step.source.number == 2  # the best of the highest rung reached
    assert 1 <= step.epochs <= PLAN.final.epochs
    rate = at.seconds_per_image_epoch(PLAN, records)
    assert at.rung_seconds(PLAN, PLAN.final_rung, rate, epochs=step.epochs) <= PLAN.seconds - PLAN.search_seconds
    records.append(trial(4, PLAN.final_rung, None, status="running"))
    assert at.decide(PLAN, spec(), records, elapsed=PLAN.search_seconds + 2).kind == "done"


def test_running_search_trials_are_awaited_only_while_search_time_is_left():
    records = [trial(1, 0, None, status="running")]
    slow = [trial(2, 0, 0.8, seconds=PLAN.search_seconds)]  # a rung-0 trial takes the whole search time
    assert at.decide(PLAN, spec(), records + slow, elapsed=10.0).kind == "wait"
    assert at.decide(PLAN, spec(), records + slow, elapsed=PLAN.search_seconds + 1).kind == "final"


def test_minutes_must_be_a_sane_number():
    for bad in (-1, 0, 0.5, 1e9, float("nan"), float("inf"), "5", True, None):
        assert at.minutes_problem(bad)
    assert not at.minutes_problem(1) and not at.minutes_problem(15.5)


def test_plan_round_trips_through_json():
    plan = at.Plan(seconds=60, fixed={"activation": "tanh"}, rungs=(at.Rung(300, 1),), final=at.Rung(600, 2))
    assert at.Plan.from_json(plan.to_json()) == plan


def test_anytime_curve_has_one_point_per_improvement():
    records = [trial(1, 0, 0.80, start=0, seconds=5), trial(2, 0, 0.70, start=0, seconds=8),
               trial(3, 0, 0.85, start=5, seconds=10)]
    curve = at.anytime_curve(records, start=0.0)
    assert [(p["seconds"], p["best_val_accuracy"]) for p in curve] == [(5.0, 0.80), (15.0, 0.85)]


def test_suggest_gives_values_inside_the_space():
    s = spec()
    changes = at.suggest(s, [], [], number=1)
    assert set(changes) == set(at.SPACE)
    assert all(s.params[name].contains(value) for name, value in changes.items())

"""experiments.search.space: search spaces and sweep request validation (no database, no worker)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.search.records import SweepSpec
from experiments.search.space import MAX_SEED, STRATEGIES, SweepSpecError, validate_sweep
from experiments.search.study import Asker
from training.config import FIELDS, TrainingConfig

BASE = {"hidden_layers": [16], "epochs": 3, "train_size": 600}


def errors_of(**kwargs):
    with pytest.raises(SweepSpecError) as caught:
        validate_sweep(**{"base_config": BASE, **kwargs})
    return caught.value.errors


def test_a_valid_space_is_normalised_in_field_order():
    plan = validate_sweep(base_config=BASE, strategy="tpe", budget=10, seed=3, space={
        "optimizer": {"values": ["adam", "sgd"]},
        "learning_rate": {"low": 1e-4, "high": 0.1, "scale": "log"},
        "hidden_layers": {"values": [[64], [128, 64]]},
        "batch_size": {"low": 16, "high": 256},
        "dropout": {"values": ["0", 0.2]},
    })
    assert list(plan.space) == ["hidden_layers", "optimizer", "learning_rate", "batch_size", "dropout"]
    assert plan.space["learning_rate"] == {"low": 0.0001, "high": 0.1, "scale": "log", "type": "float"}
    # batch_size is an integer field whose usual scale is log
    assert plan.space["batch_size"] == {"low": 16, "high": 256, "scale": "log", "type": "int"}
    assert plan.space["dropout"] == {"values": [0.0, 0.2]}
    assert plan.space["hidden_layers"] == {"values": [[64], [128, 64]]}
    assert plan.base_config == TrainingConfig.from_dict(BASE).to_dict()
    assert (plan.budget, plan.parallelism, plan.seed, plan.pruner) == (10, 2, 3, "none")


def test_a_log_default_scale_falls_back_to_linear_when_the_range_starts_at_zero():
    plan = validate_sweep(base_config=BASE, space={"l2": {"low": 0, "high": 0.01}}, strategy="random")
    assert plan.space["l2"]["scale"] == "linear"


@pytest.mark.parametrize("space, field, fragment", [
    ({"learning_rte": {"values": [0.1]}}, "learning_rte", "Unknown field"),
    ({"optimizer": {"low": 0, "high": 1}}, "optimizer", "choice field"),
    ({"activation": {"low": 0, "high": 1}}, "activation", "choice field"),
    ({"hidden_layers": {"low": 16, "high": 256}}, "hidden_layers", "list of layer lists"),
    ({"hidden_layers": {"values": [64, 128]}}, "hidden_layers", "must be a list of layer sizes"),
    ({"hidden_layers": {"values": [[0]]}}, "hidden_layers", "Layer 1 size must be between 1 and 2048"),
    ({"learning_rate": {"low": 0.1, "high": 0.01}}, "learning_rate", "must be below high"),
    ({"learning_rate": {"low": 0.1, "high": 0.1}}, "learning_rate", "for one value use"),
    ({"learning_rate": {"low": 0, "high": 0.1}}, "learning_rate", "greater than 0"),
    ({"learning_rate": {"low": 1e-4, "high": 20}}, "learning_rate", "at most 10"),
    ({"l2": {"low": 0, "high": 0.1, "scale": "log"}}, "l2", "A log scale needs low > 0"),
    ({"batch_size": {"low": 16.5, "high": 64}}, "batch_size", "whole number"),
    ({"batch_size": {"low": 16, "high": 64, "type": "float"}}, "batch_size", 'type must be "int"'),
    ({"dropout": {"low": 0, "high": 0.5, "scale": "cubic"}}, "dropout", 'scale must be "linear" or "log"'),
    ({"dropout": {"low": "a", "high": 0.5}}, "dropout", "low must be a number"),
    ({"dropout": {"high": 0.5}}, "dropout", "low is missing"),
    ({"dropout": {"values": [0.1], "low": 0}}, "dropout", "either values or a low/high range"),
    ({"dropout": {"values": []}}, "dropout", "non-empty list"),
    ({"dropout": {"values": [0.1, 0.1]}}, "dropout", "Values repeat"),
    ({"dropout": {"values": [0.1, 2]}}, "dropout", "Value 2 (2)"),
    ({"dropout": {"step": 0.1}}, "dropout", "Unknown key"),
    ({"dropout": [0.1, 0.2]}, "dropout", "Must be an object"),
    ({"optimizer": {"values": ["adam", "lbfgs"]}}, "optimizer", "Must be one of sgd, momentum, rmsprop, adam"),
])
def test_invalid_space_entries_are_reported_per_field(space, field, fragment):
    errors = errors_of(space=space, strategy="random")
    assert fragment in " ".join(errors["space"][field])


def test_every_error_is_reported_at_once():
    errors = errors_of(space={"learning_rate": {"low": 0, "high": 1, "scale": "log"}, "optimizer": {"low": 0},
                              "momentum": {"values": [0.5]}},
                       strategy="bayes", budget=500, parallelism=0, pruner="hyperband", second_objective="memory",
                       seed=-1, base_config={"epochs": 0})
    assert set(errors) == {"space", "strategy", "budget", "parallelism", "pruner", "second_objective", "seed",
                           "base_config"}
    assert set(errors["space"]) == {"learning_rate", "optimizer"}
    assert errors["base_config"] == {"epochs": ["Value must be between 1 and 200, got 0."]}
    assert errors["budget"] == ["Must be a whole number from 1 to 200, got 500."]


def test_the_space_must_be_a_non_empty_object():
    assert errors_of(space=None)["space"] == [
        'Must be an object mapping field names to {"values": [...]} or {"low": x, "high": y}.']
    assert errors_of(space={})["space"] == ["Give at least one field to vary."]


def test_combinations_that_break_cross_field_rules_are_caught():
    # Each value is fine with the base (3 epochs, no warm-up); epochs=2 with warmup_epochs=2 is not.
    errors = errors_of(space={"epochs": {"values": [2, 4]}, "warmup_epochs": {"values": [0, 2]}}, strategy="grid")
    assert errors["space"]["warmup_epochs"] == [
        "With epochs=2, warmup_epochs=2: Warm-up (2 epochs) must be shorter than the run (2 epochs)."]


def test_grid_sweeps_need_value_lists_and_their_budget_is_the_grid():
    errors = errors_of(space={"learning_rate": {"low": 0.001, "high": 0.1}}, strategy="grid")
    assert "A grid sweep needs a list of values" in errors["space"]["learning_rate"][0]
    space = {"learning_rate": {"values": [0.01, 0.1]}, "batch_size": {"values": [32, 64, 128]}}
    assert validate_sweep(base_config=BASE, space=space, strategy="grid").budget == 6
    assert validate_sweep(base_config=BASE, space=space, strategy="grid", budget=50).budget == 6
    assert validate_sweep(base_config=BASE, space=space, strategy="grid", budget=4).budget == 4
    assert "warm start applies to" in errors_of(space=space, strategy="grid", warm_start=True)["warm_start"][0]
    huge = {name: {"values": list(range(1, 30))} for name in ("batch_size", "seed", "early_stopping_patience")}
    assert "at most 10,000" in errors_of(space=huge, strategy="grid", base_config={})["strategy"][0]


def test_defaults_budget_twenty_and_a_random_stored_seed():
    plan = validate_sweep(space={"dropout": {"low": 0.0, "high": 0.5}})
    assert (plan.strategy, plan.budget, plan.parallelism) == ("tpe", 20, 2)
    assert 0 <= plan.seed <= MAX_SEED


# --------------------------------------------------------------------------- property: never an exception

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                         st.sampled_from(["adam", "sgd", "relu", "tanh", "cosine", "log", "linear", "int"]))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=3)), max_leaves=8)
numbers = st.one_of(st.integers(min_value=-100, max_value=5000), st.floats(min_value=-1, max_value=5000),
                    st.sampled_from([0, 1e-6, 1e-4, 0.01, 0.1, 0.5, 0.9, 1, 2, 16, 64, 256, 4096, 10**20]),
                    json_scalars)
range_specs = st.fixed_dictionaries({"low": numbers, "high": numbers}, optional={
    "scale": st.sampled_from(["log", "linear", "cubic", None]), "type": st.sampled_from(["int", "float", "str"])})
value_specs = st.fixed_dictionaries({"values": st.one_of(
    st.lists(numbers, max_size=5), st.lists(st.lists(st.integers(min_value=-2, max_value=3000), max_size=4),
                                            max_size=4),
    st.lists(st.sampled_from(["adam", "sgd", "relu", "tanh", "cosine", "constant", "bogus"]), max_size=4),
    json_values)})
specs = st.one_of(range_specs, value_specs, json_values,
                  st.dictionaries(st.sampled_from(["values", "low", "high", "scale", "type", "step"]), json_values,
                                  max_size=3))
noisy_spaces = st.one_of(st.dictionaries(st.sampled_from([*FIELDS, "bogus", ""]), specs, max_size=4), json_values)


@st.composite
def plausible_spec(draw, name):
    """A spec built from the field's own limits: mostly valid, sometimes just outside."""
    spec = FIELDS[name]
    if spec.kind == "choice":
        return {"values": draw(st.lists(st.sampled_from([*spec.choices, "bogus"]), min_size=1, max_size=4))}
    if spec.kind == "int_list":
        layer = st.lists(st.integers(min_value=0, max_value=2100), min_size=1, max_size=4)
        return {"values": draw(st.lists(layer, min_size=1, max_size=3))}
    low_limit = spec.ui_minimum if spec.ui_minimum is not None else (spec.minimum or 0)
    high_limit = spec.ui_maximum if spec.ui_maximum is not None else (spec.maximum or 1)
    if spec.kind == "int":
        number = st.integers(min_value=int(low_limit) - 1, max_value=int(high_limit) + 1)
    else:
        number = st.floats(min_value=low_limit, max_value=high_limit * 1.1, allow_nan=False)
    if draw(st.booleans()):
        return {"values": draw(st.lists(number, min_size=1, max_size=4))}
    entry = {"low": draw(number), "high": draw(number)}
    if draw(st.booleans()):
        entry["scale"] = draw(st.sampled_from(["log", "linear"]))
    return entry


plausible_spaces = st.sets(st.sampled_from(list(FIELDS)), min_size=1, max_size=4).flatmap(
    lambda names: st.fixed_dictionaries({name: plausible_spec(name) for name in names}))
spaces = st.one_of(plausible_spaces, plausible_spaces, noisy_spaces)


def _is_message_list(value) -> bool:
    return isinstance(value, list) and value and all(isinstance(m, str) and m for m in value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces, strategy=st.sampled_from([*STRATEGIES, "bayes"]),
       budget=st.one_of(st.none(), st.integers(min_value=-5, max_value=300), st.floats(), st.text(max_size=3)),
       parallelism=st.one_of(st.integers(min_value=-1, max_value=10), st.booleans()),
       base=st.one_of(st.none(), st.just(BASE), st.dictionaries(st.sampled_from([*FIELDS, "x"]), json_scalars,
                                                               max_size=3)))
def test_any_request_is_either_a_valid_plan_or_a_clean_error_dict(space, strategy, budget, parallelism, base):
    try:
        plan = validate_sweep(base_config=base, space=space, strategy=strategy, budget=budget,
                              parallelism=parallelism)
    except SweepSpecError as exc:
        assert isinstance(exc.errors, dict) and exc.errors
        for key, value in exc.errors.items():
            if isinstance(value, dict):
                assert value and all(isinstance(k, str) and _is_message_list(v) for k, v in value.items()), value
            else:
                assert _is_message_list(value), (key, value)
        return
    # A valid plan: stored as JSON, re-parsed identically, and every proposal is a valid config.
    assert validate_sweep(base_config=plan.base_config, space=plan.space, strategy=plan.strategy,
                          budget=plan.budget, parallelism=plan.parallelism, seed=plan.seed).space == plan.space
    assert 1 <= plan.budget <= 200 and 1 <= plan.parallelism <= 8
    spec = SweepSpec(strategy=plan.strategy, params=plan.params, base_config=plan.base_config,
                     budget=plan.budget, seed=plan.seed)
    changes = Asker(spec, []).ask(1)
    assert set(changes) == set(plan.space)
    for name, value in changes.items():
        assert plan.params[name].contains(value), (name, value)
    TrainingConfig.from_dict({**plan.base_config, **changes})

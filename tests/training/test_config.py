"""TrainingConfig: defaults, coercion, every-error-at-once validation and the UI schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.config import (
    ACTIVATIONS,
    FIELDS,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRESETS,
    ConfigError,
    TrainingConfig,
    clean_field,
    config_schema,
    validate_config,
)


def errors_of(data: dict) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_dict(data)
    assert info.value.errors, "ConfigError raised without errors"
    return info.value.errors


def message(data: dict, name: str) -> str:
    errors = errors_of(data)
    assert set(errors) == {name}, errors
    return " ".join(errors[name])


# ---------------------------------------------------------------- defaults and round trips


def test_defaults_validate_and_equal_the_field_defaults():
    config = TrainingConfig.from_dict({})
    assert config == TrainingConfig()
    assert TrainingConfig.from_dict(None) == config
    for name, spec in FIELDS.items():
        expected = list(spec.default) if name == "hidden_layers" else spec.default
        assert config.to_dict()[name] == expected, name
    assert validate_config(TrainingConfig().to_dict(), partial=False) == {}


def test_partial_dict_is_filled_with_defaults():
    config = TrainingConfig.from_dict({"learning_rate": 0.05, "hidden_layers": [64]})
    assert config.learning_rate == 0.05
    assert config.hidden_layers == (64,)
    assert config.optimizer == FIELDS["optimizer"].default
    assert config.epochs == FIELDS["epochs"].default


def test_non_partial_requires_every_field():
    errors = errors_of_nonpartial({"learning_rate": 0.05})
    assert set(errors) == set(FIELDS) - {"learning_rate"}
    assert all("required" in " ".join(m) for m in errors.values())


def errors_of_nonpartial(data: dict) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_dict(data, partial=False)
    return info.value.errors


def test_to_dict_from_dict_round_trip():
    config = TrainingConfig.from_dict({"hidden_layers": [300, 100, 50], "optimizer": "rmsprop",
                                       "train_size": 5000, "warmup_epochs": 3, "l2": 1e-4})
    data = config.to_dict()
    assert data["hidden_layers"] == [300, 100, 50]
    assert json.loads(json.dumps(data)) == data
    assert TrainingConfig.from_dict(data) == config
    assert TrainingConfig.from_dict(json.loads(json.dumps(data)), partial=False) == config


def test_replace_returns_a_validated_copy():
    config = TrainingConfig.from_dict({"epochs": 10})
    changed = config.replace(learning_rate="0.02", hidden_layers=[32])
    assert changed.learning_rate == 0.02 and changed.hidden_layers == (32,) and changed.epochs == 10
    assert config.learning_rate == FIELDS["learning_rate"].default  # original untouched
    with pytest.raises(ConfigError) as info:
        config.replace(dropout=0.95)
    assert set(info.value.errors) == {"dropout"}


def test_layer_sizes_and_parameter_count():
    config = TrainingConfig.from_dict({"hidden_layers": [100, 50]})
    assert config.layer_sizes == (784, 100, 50, 10)
    assert config.parameter_count == 785 * 100 + 101 * 50 + 51 * 10


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate(name):
    config = TrainingConfig.from_dict(PRESETS[name])
    assert TrainingConfig.from_dict(config.to_dict()) == config


# ---------------------------------------------------------------- every error at once


def test_every_invalid_field_is_reported_at_once():
    bad = {"learning_rate": 0, "epochs": 0, "dropout": 1.5, "activation": "sigmoid",
           "hidden_layers": []}
    errors = errors_of(bad)
    assert set(errors) == set(bad)
    assert len(errors) == 5
    assert all(errors[name] and all(isinstance(m, str) and m for m in errors[name]) for name in errors)


def test_config_error_is_a_value_error_whose_message_names_the_fields():
    with pytest.raises(ValueError) as info:
        TrainingConfig.from_dict({"batch_size": 0, "seed": -1})
    assert "batch_size" in str(info.value) and "seed" in str(info.value)


def test_warmup_conflict_is_reported_alongside_other_errors():
    errors = errors_of({"learning_rate": 0, "epochs": 3, "warmup_epochs": 5})
    assert set(errors) == {"learning_rate", "warmup_epochs"}


# ---------------------------------------------------------------- bounds and messages


@pytest.mark.parametrize(("name", "value", "phrase"), [
    ("learning_rate", 0, "greater than 0"),
    ("learning_rate", -1e-3, "greater than 0"),
    ("learning_rate", 11, "at most 10"),
    ("momentum", 1.0, "between 0 and 0.99"),
    ("batch_size", 0, "between 1 and 4096"),
    ("batch_size", 5000, "between 1 and 4096"),
    ("epochs", 201, "between 1 and 200"),
    ("l2", -0.1, "at least 0"),
    ("dropout", 0.95, "between 0 and 0.9"),
    ("lr_decay", 0.4, "between 0.5 and 1"),
    ("validation_fraction", 0.01, "between 0.05 and 0.5"),
    ("train_size", 50, "between 100 and 60000"),
    ("seed", -1, "between 0 and"),
])
def test_out_of_range_values_are_rejected_naming_the_bound(name, value, phrase):
    text = message({name: value}, name)
    assert phrase in text
    assert f"{value:g}" in text


@pytest.mark.parametrize(("name", "value"), [
    ("learning_rate", 1e-9), ("learning_rate", 10), ("momentum", 0.0), ("momentum", 0.99),
    ("batch_size", 1), ("batch_size", 4096), ("epochs", 1), ("epochs", 200), ("l2", 0),
    ("dropout", 0.9), ("lr_decay", 1.0), ("validation_fraction", 0.5), ("train_size", 100),
    ("train_size", 60000), ("seed", 2**31 - 1), ("gradient_clip", 1000),
])
def test_inclusive_bounds_are_accepted(name, value):
    assert getattr(TrainingConfig.from_dict({name: value}), name) == value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "-inf"])
def test_non_finite_numbers_are_rejected(value):
    assert "finite" in message({"learning_rate": value}, "learning_rate")


@pytest.mark.parametrize(("value", "phrase"), [
    ([], "1 to 3 hidden layers"),
    ([64, 64, 64, 64], "1 to 3 hidden layers, got 4"),
    ([0], "Layer 1 size must be between 1 and 2048"),
    ([128, 4096], "Layer 2 size must be between 1 and 2048"),
    ([12.5], "Layer 1 size must be a whole number"),
    ("abc", "Layer 1 size must be a number"),
    ([True], "must be a number"),
    ([None], "must be a number"),
    ({"a": 1}, "list"),
    ("", "may not be empty"),
])
def test_hidden_layers_rejects_bad_shapes_and_sizes(value, phrase):
    assert phrase in message({"hidden_layers": value}, "hidden_layers")


def test_hidden_layers_reports_every_bad_layer():
    errors = errors_of({"hidden_layers": [0, 64, 5000]})
    text = " ".join(errors["hidden_layers"])
    assert "Layer 1" in text and "Layer 3" in text and "Layer 2" not in text


@pytest.mark.parametrize(("value", "expected"), [
    ([512, 256], (512, 256)), ((64,), (64,)), (128, (128,)), ("96", (96,)), (["32", 16.0], (32, 16)),
])
def test_hidden_layers_coerces_scalars_numeric_strings_and_whole_floats(value, expected):
    assert TrainingConfig.from_dict({"hidden_layers": value}).hidden_layers == expected


@pytest.mark.parametrize(("name", "choices"), [
    ("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS), ("lr_schedule", LR_SCHEDULES),
])
def test_enums_reject_unknown_names_and_list_the_choices(name, choices):
    text = message({name: "bogus"}, name)
    assert "bogus" in text
    for choice in choices:
        assert choice in text
    for choice in choices:
        assert getattr(TrainingConfig.from_dict({name: choice}), name) == choice


@pytest.mark.parametrize("value", ["ReLU", " relu", 1, True, ["relu"]])
def test_enums_are_exact_strings(value):
    errors_of({"activation": value})


def test_unknown_field_is_rejected_listing_known_fields():
    errors = errors_of({"learnin_rate": 0.1, "epochs": 5})
    assert set(errors) == {"learnin_rate"}
    text = " ".join(errors["learnin_rate"])
    assert "Unknown field" in text and "learning_rate" in text


@pytest.mark.parametrize("name", ["learning_rate", "epochs", "batch_size", "dropout", "seed", "train_size"])
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_accepted_as_numbers(name, value):
    assert "must be a number" in message({name: value}, name)


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("learning_rate", "0.01", 0.01), ("learning_rate", " 1e-3 ", 0.001), ("epochs", "12", 12),
    ("batch_size", "64.0", 64), ("l2", "0", 0.0), ("train_size", "2000", 2000),
])
def test_numeric_strings_are_accepted(name, text, expected):
    value = getattr(TrainingConfig.from_dict({name: text}), name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("name", "value"), [("epochs", 2.5), ("batch_size", "12.5"), ("seed", 0.1)])
def test_integer_fields_reject_fractions(name, value):
    assert "whole number" in message({name: value}, name)


@pytest.mark.parametrize("name", ["learning_rate", "epochs"])
@pytest.mark.parametrize("value", ["fast", [1], {"x": 1}])
def test_non_numbers_are_rejected(name, value):
    assert "must be a number" in message({name: value}, name)


@pytest.mark.parametrize("value", [None, ""])
def test_train_size_may_be_empty(value):
    assert TrainingConfig.from_dict({"train_size": value}).train_size is None


@pytest.mark.parametrize("name", ["learning_rate", "epochs", "activation"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_required_fields_may_not_be_empty(name, value):
    assert "may not be empty" in message({name: value}, name)


@pytest.mark.parametrize(("warmup", "epochs"), [(5, 5), (6, 5), (1, 1)])
def test_warmup_must_be_shorter_than_the_run(warmup, epochs):
    text = message({"warmup_epochs": warmup, "epochs": epochs}, "warmup_epochs")
    assert str(warmup) in text and str(epochs) in text


def test_warmup_shorter_than_run_is_accepted():
    assert TrainingConfig.from_dict({"warmup_epochs": 4, "epochs": 5}).warmup_epochs == 4
    assert TrainingConfig.from_dict({"warmup_epochs": 0, "epochs": 1}).warmup_epochs == 0


def test_clean_field_returns_value_and_messages():
    assert clean_field("learning_rate", "0.5") == (0.5, [])
    assert clean_field("hidden_layers", [8, "16"]) == ((8, 16), [])
    value, messages = clean_field("epochs", 0)
    assert value is None and len(messages) == 1 and "between 1 and 200" in messages[0]


HUGE = json.loads("1" + "0" * 400)  # a valid JSON integer that no float can hold


@pytest.mark.parametrize(("name", "value"), [
    ("epochs", HUGE), ("learning_rate", HUGE), ("hidden_layers", [HUGE]), ("seed", -HUGE),
], ids=["epochs", "learning_rate", "hidden_layers", "seed"])
def test_huge_integers_are_reported_as_config_errors(name, value):
    text = message({name: value}, name)
    assert "too large" in text
    assert "at most" in text or "between" in text


@pytest.mark.parametrize("value", [b"relu", {"relu"}])
def test_non_json_values_in_choice_fields_are_config_errors(value):
    assert "relu" in message({"activation": value}, "activation")


# ---------------------------------------------------------------- schema


def test_config_schema_is_json_serialisable_and_describes_every_field():
    schema = config_schema()
    round_tripped = json.loads(json.dumps(schema))
    assert [f["name"] for f in round_tripped["fields"]] == list(FIELDS)
    for entry in round_tripped["fields"]:
        for key in ("type", "default", "help", "label"):
            assert key in entry, (entry["name"], key)
        assert entry["help"].strip()
        assert entry["type"] in ("int", "float", "choice", "int_list")
        if entry["type"] == "choice":
            assert entry["choices"] and entry["default"] in entry["choices"]
        else:
            assert entry["minimum"] is not None, entry["name"]
    assert round_tripped["defaults"] == TrainingConfig().to_dict()
    assert set(round_tripped["presets"]) == set(PRESETS)


def test_schema_defaults_satisfy_their_own_bounds():
    for entry in config_schema()["fields"]:
        default = entry["default"]
        if default is None:
            assert entry["nullable"]
            continue
        _, messages = clean_field(entry["name"], default)
        assert messages == [], entry["name"]


# ---------------------------------------------------------------- property


FIELD_NAMES = list(FIELDS)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: JSON allows integers no float can hold
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["0.01", "12", " 3 ", "1e-3", "nan", "inf", "1e400", "", "abc", "0x10"]),
    st.sampled_from(list(ACTIVATIONS + OPTIMIZERS + LR_SCHEDULES)),
    # Not JSON, but reachable from Python callers: must still be a ConfigError.
    st.binary(max_size=3),
    st.complex_numbers(max_magnitude=1e3),
    st.fractions(max_denominator=10),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=3), inner, max_size=2)),
    max_leaves=6,
)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6))


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_from_dict_either_round_trips_or_reports_only_input_fields(data):
    try:
        config = TrainingConfig.from_dict(data)
    except ConfigError as exc:
        assert exc.errors
        assert set(exc.errors) <= set(data)
        assert all(isinstance(m, str) and m for msgs in exc.errors.values() for m in msgs)
    else:
        again = TrainingConfig.from_dict(config.to_dict(), partial=False)
        assert again == config
        assert json.loads(json.dumps(config.to_dict(), allow_nan=False)) == config.to_dict()

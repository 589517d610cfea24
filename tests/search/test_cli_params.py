"""The `manage.py sweep --param NAME=SPEC` syntax: what it parses to, and that its spaces validate."""

from __future__ import annotations

import math

import pytest

from experiments.management.commands.sweep import ParamError, parse_cli_param, parse_cli_params
from experiments.search.space import validate_sweep

BASE = {"hidden_layers": [16], "epochs": 3, "train_size": 600}


@pytest.mark.parametrize("text, expected", [
    ("learning_rate=1e-4:1e-1:log", ("learning_rate", {"low": 0.0001, "high": 0.1, "scale": "log"})),
    ("dropout=0:0.5", ("dropout", {"low": 0, "high": 0.5})),
    ("batch_size=16:512:log", ("batch_size", {"low": 16, "high": 512, "scale": "log", "type": "int"})),
    ("warmup_epochs=0:3:int", ("warmup_epochs", {"low": 0, "high": 3, "type": "int"})),
    ("hidden_layers=[64],[128],[256,128]", ("hidden_layers", {"values": [[64], [128], [256, 128]]})),
    ("optimizer=adam,sgd", ("optimizer", {"values": ["adam", "sgd"]})),
    ("dropout=0,0.2, 0.4", ("dropout", {"values": [0, 0.2, 0.4]})),
    ("train_size=1000,none", ("train_size", {"values": [1000, None]})),
    ("learning-rate=0.1", ("learning_rate", {"values": [0.1]})),
])
def test_cli_params_are_parsed(text, expected):
    assert parse_cli_param(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("learning_rate", "expected NAME=SPEC"),
    ("lr=0.1:1", "unknown field 'lr'"),
    ("learning_rate=", "nothing after"),
    ("learning_rate=a:1", "low 'a' is not a number"),
    ("learning_rate=0.1:1:cubic", "unknown range modifier"),
    ("learning_rate=0.1:1:log:linear", "contradicts"),
    ("learning_rate=:1", "a range is LOW:HIGH"),
    ("hidden_layers=[64],[12", "layer lists must look like"),
])
def test_cli_param_errors_say_what_is_wrong(text, fragment):
    with pytest.raises(ParamError, match=fragment.replace("[", r"\[")):
        parse_cli_param(text)


def test_a_param_given_twice_is_an_error():
    with pytest.raises(ParamError, match="given twice"):
        parse_cli_params(["dropout=0:0.5", "dropout=0.1,0.2"])


def test_cli_ranges_survive_validation():
    space = parse_cli_params(["learning_rate=1e-4:1e-1:log", "hidden_layers=[64],[128],[256,128]",
                          "optimizer=adam,sgd", "batch_size=32:256:log"])
    plan = validate_sweep(base_config=BASE, space=space, strategy="tpe", budget=24)
    assert math.isclose(plan.space["learning_rate"]["low"], 1e-4)
    assert plan.space["batch_size"]["type"] == "int"

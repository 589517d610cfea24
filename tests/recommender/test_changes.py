"""Specification of changes.py: proposed changes are clamped, stripped of no-ops and validated."""

from __future__ import annotations

from experiments.recommender.changes import valid_changes
from tests.recommender.synthetic_runs import config


def test_valid_changes_clamps_drops_no_ops_and_validates():
    cfg = config(warmup_epochs=5)
    assert valid_changes(cfg, {"dropout": 1.5}) == {"dropout": 0.9}
    assert valid_changes(cfg, {"dropout": cfg["dropout"], "bogus": 1}) == {}
    assert valid_changes(cfg, {"learning_rate": 0.0}) == {}
    assert valid_changes(cfg, {"hidden_layers": [256, 128]}) == {}
    assert valid_changes(cfg, {"hidden_layers": [4096, 0]}) == {"hidden_layers": [2048, 1]}
    assert valid_changes(cfg, {"hidden_layers": [1, 2, 3, 4]}) == {}
    assert valid_changes(cfg, {"epochs": 4, "l2": 1e-4}) == {"l2": 1e-4}  # warm-up 5 needs > 5 epochs
    assert valid_changes(cfg, {"epochs": 25.4, "activation": "gelu"}) == {"epochs": 25}
    assert valid_changes(cfg, {"train_size": None}) == {}
    assert valid_changes(config(train_size=1000), {"train_size": None}) == {"train_size": None}
    assert valid_changes({**cfg, "unknown": 1}, {"l2": 1e-4}) == {}  # the base itself is invalid

"""Specification of rules/while_training.py: a critical live finding becomes advice after the run,
so a run stopped early by the live diagnosis still gets something to apply."""

from __future__ import annotations

from dataclasses import replace

import pytest

from experiments.recommender import analyze

from .synthetic_runs import make_run, of_kind


def stopped_run(finding: dict, **config):
    run = make_run(train_loss=[2.30, 2.30], val_loss=[2.30, 2.30], train_acc=[0.10, 0.10], val_acc=[0.10, 0.10],
                   epochs=20, message=f"stopped at epoch {finding['epoch']}: {finding['message']}", **config)
    return replace(run, diagnoses=(finding,))


def not_learning(changes: dict) -> dict:
    return {"epoch": 2, "kind": "not_learning", "severity": "critical", "title": "Not learning",
            "message": "not learning — val 10.0 % after 2 epochs, near chance; raise the learning rate",
            "changes": changes, "evidence": {}}


def test_a_run_stopped_after_two_epochs_gets_the_findings_fix_as_its_top_advice():
    run = stopped_run(not_learning({"learning_rate": 0.0001}), optimizer="sgd", learning_rate=1e-5)
    analysis = analyze(run)
    top = analysis.recommendations[0]
    assert top.kind == "lr_too_low" and top.priority == "high"
    assert top.changes == {"learning_rate": 0.0001}
    assert "Recognised while the run trained, at epoch 2: not learning" in top.rationale
    assert "The run was stopped there" in top.rationale
    assert top.evidence["live_finding"]["kind"] == "not_learning"


@pytest.mark.parametrize(("changes", "kind"), [
    ({"learning_rate": 0.05}, "lr_too_high"), ({"dropout": 0.2}, "over_regularisation"),
    ({"hidden_layers": [128]}, "underfitting")])
def test_the_not_learning_fix_names_what_held_the_run_back(changes, kind):
    run = stopped_run(not_learning(changes), learning_rate=0.5, dropout=0.8, hidden_layers=[8])
    assert analyze(run).recommendations[0].kind == kind


def test_warnings_stay_on_the_live_panel_only():
    finding = {**not_learning({"learning_rate": 0.0001}), "severity": "warning"}
    run = stopped_run(finding, optimizer="sgd", learning_rate=1e-5)
    assert not of_kind(analyze(run), "lr_too_low")


def test_a_problem_the_curve_rules_already_named_is_not_repeated():
    # A long run whose curves show the slow rate: lr_too_low comes from the curve rule, once.
    run = make_run(train_loss=[2.2 - 0.01 * i for i in range(10)], val_loss=[2.2 - 0.01 * i for i in range(10)],
                   train_acc=[0.2 + 0.005 * i for i in range(10)], val_acc=[0.2 + 0.005 * i for i in range(10)],
                   optimizer="sgd", learning_rate=1e-5, epochs=10)
    run = replace(run, diagnoses=(not_learning({"learning_rate": 0.0001}),))
    found = of_kind(analyze(run), "lr_too_low")
    assert len(found) == 1 and "live_finding" not in found[0].evidence


def test_malformed_stored_findings_are_ignored():
    run = replace(stopped_run(not_learning({"learning_rate": 0.0001}), optimizer="sgd", learning_rate=1e-5),
                  diagnoses=("garbage", {"severity": "critical", "kind": "unknown"}, {"severity": "critical"}))
    assert analyze(run).kinds() == ["performance"]

"""Specification of history.py: what the user's other runs say, as associations, never causes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.recommender import THRESHOLDS, RunSummary, analyze
from tests.recommender.synthetic_runs import BASE, config, healthy_converged, make_run, of_kind, one
from training.config import TrainingConfig


def history_runs():
    accuracies = {1: ("adam", 0.880), 2: ("adam", 0.885), 3: ("adam", 0.893),
                  4: ("sgd", 0.830), 5: ("sgd", 0.840), 6: ("sgd", 0.845)}
    runs = []
    for run_id, (optimizer, accuracy) in accuracies.items():
        lr = 0.001 if optimizer == "adam" else 0.05
        runs.append(RunSummary(config=config(optimizer=optimizer, learning_rate=lr, seed=run_id),
                               status="succeeded", epochs=[], best_val_accuracy=accuracy, run_id=run_id))
    return runs


def test_history_points_to_the_best_run_with_counts():
    run = make_run(**healthy_converged(), optimizer="sgd", learning_rate=0.05, run_id=10,
                   best_val_accuracy=0.84, test_accuracy=0.835)
    advice = one(analyze(run, history_runs()), "history")
    assert "optimizer=adam: 88.6% mean over 3 runs vs sgd: 83.9% over 4 runs" in advice.rationale
    assert "went with" in advice.rationale and "not proven causes" in advice.rationale
    assert "best run is #3 (89.3%" in advice.rationale
    assert advice.evidence["best_run_id"] == 3
    assert advice.changes == {"learning_rate": 0.001, "optimizer": "adam"}  # never the seed
    assert advice.priority == "medium"


def test_history_when_this_run_is_the_best():
    run = make_run(**healthy_converged(), run_id=10, best_val_accuracy=0.90)
    advice = one(analyze(run, history_runs()), "history")
    assert advice.changes == {} and "your best so far" in advice.rationale


def test_history_needs_three_other_finished_runs():
    run = make_run(**healthy_converged(), optimizer="sgd", learning_rate=0.05, run_id=10)
    assert not of_kind(analyze(run, history_runs()[:2]), "history")
    others = history_runs()[:2] + [RunSummary(config=config(), status="cancelled", epochs=[],
                                              best_val_accuracy=0.9, run_id=7)]
    assert not of_kind(analyze(run, others), "history")  # a cancelled run does not count


def test_history_claims_no_direction_on_single_runs():
    runs = history_runs()[2:5]  # adam 0.893, sgd 0.830, sgd 0.840: adam has one run only
    run = make_run(**healthy_converged(), optimizer="sgd", learning_rate=0.05, run_id=10, best_val_accuracy=0.84)
    advice = one(analyze(run, runs), "history")
    assert "no setting stands out" in advice.rationale
    assert advice.priority == "low"


_history_config = st.fixed_dictionaries({
    "optimizer": st.sampled_from(["adam", "sgd", "momentum"]),
    "learning_rate": st.sampled_from([0.001, 0.01, 0.05]),
    "hidden_layers": st.sampled_from([[256, 128], [64], [512, 256, 128]]),
    "dropout": st.sampled_from([0.0, 0.2]),
    "epochs": st.sampled_from([3, 10, 30]),
    "warmup_epochs": st.sampled_from([0, 2]),
    "train_size": st.sampled_from([None, 10000]),
    "seed": st.integers(0, 3),
}).map(lambda overrides: config(**overrides))


@settings(max_examples=80, deadline=None)
@given(configs=st.lists(_history_config, min_size=4, max_size=9),
       accuracies=st.lists(st.floats(0.5, 0.92), min_size=9, max_size=9))
def test_history_changes_move_toward_the_best_run_and_validate(configs, accuracies):
    *others, current = configs
    history = [RunSummary(config=cfg, status="succeeded", epochs=[], best_val_accuracy=accuracies[i], run_id=i + 1)
               for i, cfg in enumerate(others)]
    run = make_run(**healthy_converged(5), run_id=99, best_val_accuracy=accuracies[-1],
                   **{k: v for k, v in current.items() if k in BASE or k in ("warmup_epochs", "train_size", "seed")})
    advice = one(analyze(run, history), "history")
    best = max(history, key=lambda h: h.best_val_accuracy)
    assert len(advice.changes) <= THRESHOLDS["history_max_changes"]
    if advice.changes:
        TrainingConfig.from_dict({**run.config, **advice.changes})
        assert advice.evidence["best_run_id"] == best.run_id
        for name, value in advice.changes.items():
            assert name != "seed" and value == best.config[name] and value != run.config[name]
    assert "went with" in advice.rationale or "stands out" in advice.rationale

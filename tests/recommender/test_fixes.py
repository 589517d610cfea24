"""Find the fix, the pure part: which candidates are tried, and how their measurements are judged."""

from __future__ import annotations

from experiments.recommender.changes import valid_changes
from experiments.recommender.fixes import (
    describe_changes,
    fix_candidates,
    fix_recommendation,
    fix_verdict,
)
from experiments.recommender.types import Advice
from training.config import TrainingConfig

CONFIG = TrainingConfig.from_dict({"optimizer": "sgd", "learning_rate": 0.1, "hidden_layers": [64], "epochs": 5,
                                   "train_size": 2000, "seed": 7, "dropout": 0.0, "lr_schedule": "constant"}
                                  ).to_dict()


def advice(kind, changes, priority="high", title=None):
    return Advice(kind=kind, priority=priority, title=title or kind, rationale="", changes=changes, confidence=0.8)


def test_top_next_variant_and_combined_are_tried_in_that_order():
    recs = [advice("lr_too_high", {"learning_rate": 0.01}), advice("more_epochs", {"epochs": 10}),
            advice("performance", {}, priority="low"), advice("success", {"epochs": 20}, priority="low")]
    candidates = fix_candidates(CONFIG, recs)
    assert [c["changes"] for c in candidates] == [
        {"learning_rate": 0.01},  # the top problem's own change (/10)
        {"epochs": 10},  # the next distinct advice
        {"learning_rate": 0.0333},  # the top change, weaker (/3)
        {"learning_rate": 0.01, "epochs": 10},  # both: they touch different fields
    ]
    assert candidates[0]["kind"] == "lr_too_high" and candidates[3]["kind"] == "lr_too_high+more_epochs"
    assert "weaker" in candidates[2]["title"]


def test_a_threefold_rate_change_gets_a_tenfold_variant_and_dicts_work_too():
    recs = [{"kind": "lr_too_low", "changes": {"learning_rate": 0.3}, "priority": "high", "title": "raise"}]
    candidates = fix_candidates(CONFIG, recs)
    assert [c["changes"] for c in candidates] == [{"learning_rate": 0.3}, {"learning_rate": 1.0}]
    assert "stronger" in candidates[1]["title"]


def test_information_cards_no_ops_and_the_frozen_fields_are_never_candidates():
    recs = [advice("performance", {"epochs": 9}), advice("history", {"hidden_layers": [128]}),
            advice("verified_fix", {"epochs": 7}), advice("verified_none", {}),
            advice("overfitting", {"learning_rate": 0.1, "seed": 3, "train_size": 60000,
                                   "validation_fraction": 0.3})]
    assert fix_candidates(CONFIG, recs) == []  # the only fix is a no-op once the frozen fields go


def test_every_candidate_is_valid_distinct_and_at_most_four():
    recs = [advice("lr_too_high", {"learning_rate": 0.03}), advice("overfitting", {"l2": 1e-4, "dropout": 0.2}),
            advice("plateau", {"lr_schedule": "cosine"}), advice("dead_units", {"activation": "leaky_relu"}),
            advice("instability", {"learning_rate": 0.03})]
    candidates = fix_candidates(CONFIG, recs)
    assert 2 <= len(candidates) <= 4
    keys = [tuple(sorted(c["changes"].items(), key=str)) for c in candidates]
    assert len(set(keys)) == len(keys)
    for candidate in candidates:
        assert candidate["changes"] and valid_changes(CONFIG, candidate["changes"]) == candidate["changes"]
        assert not set(candidate["changes"]) & {"seed", "train_size", "validation_fraction"}
        TrainingConfig.from_dict({**CONFIG, **candidate["changes"]})


def test_a_single_categorical_change_is_one_candidate():
    assert len(fix_candidates(CONFIG, [advice("dead_units", {"activation": "leaky_relu"})])) == 1


def test_the_verdict_picks_the_largest_gain_and_ties_go_to_fewer_changes():
    measured = [
        {"kind": "a", "title": "a", "changes": {"learning_rate": 0.01, "epochs": 10}, "trial": 1,
         "status": "succeeded", "best_val_accuracy": 0.85},
        {"kind": "b", "title": "b", "changes": {"learning_rate": 0.01}, "trial": 2, "status": "succeeded",
         "best_val_accuracy": 0.85},
        {"kind": "c", "title": "c", "changes": {"epochs": 10}, "trial": 3, "status": "diverged",
         "best_val_accuracy": None},
        {"kind": "d", "title": "d", "changes": {"dropout": 0.2}, "trial": 4, "status": "cancelled",
         "best_val_accuracy": 0.9},
    ]
    verdict = fix_verdict(0.80, measured)
    assert [c["gain_points"] for c in verdict["candidates"]] == [5.0, 5.0, -80.0, None]
    assert verdict["winner"] == 1 and verdict["helped"] == 2 and verdict["measured"] == 3
    card = fix_recommendation(CONFIG, verdict)
    assert card["kind"] == "verified_fix" and card["priority"] == "high"
    assert card["changes"] == {"learning_rate": 0.01}
    assert card["title"] == "Verified: lower the learning rate to 0.01 (+5.0 points measured)"
    assert "diverged" in card["rationale"] and "+5.0 points (85.0 %)" in card["rationale"]


def test_nothing_helped_is_an_information_card_with_every_gain():
    measured = [{"kind": "a", "title": "a", "changes": {"learning_rate": 0.01}, "trial": 1,
                 "status": "succeeded", "best_val_accuracy": 0.836},
                {"kind": "b", "title": "b", "changes": {"epochs": 10}, "trial": 2, "status": "succeeded",
                 "best_val_accuracy": 0.841}]
    verdict = fix_verdict(0.841, measured)
    assert verdict["winner"] is None and verdict["helped"] == 0
    card = fix_recommendation(CONFIG, verdict)
    assert card["kind"] == "verified_none" and card["changes"] == {}
    assert card["title"] == "Tried 2 changes; none beat this run's 84.1 %"
    assert "-0.5 points" in card["rationale"] and "+0.0 points" in card["rationale"]


def test_a_diverged_parent_counts_as_zero():
    verdict = fix_verdict(0.0, [{"kind": "divergence", "title": "t", "changes": {"learning_rate": 0.01},
                                 "trial": 1, "status": "succeeded", "best_val_accuracy": 0.7}])
    assert verdict["winner"] == 0 and verdict["candidates"][0]["gain_points"] == 70.0


def test_describe_changes_says_what_moves_where():
    text = describe_changes(CONFIG, {"learning_rate": 0.01, "epochs": 10, "activation": "tanh",
                                     "hidden_layers": [128]})
    assert text == ("lower the learning rate to 0.01 and raise the epochs to 10 and set the activation to tanh "
                    "and set the hidden layers to [128]")

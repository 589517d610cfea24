"""Learning from the lab: the measured help rate of each kind of advice ranks advice of equal
priority once the kind has enough outcomes, and every card cites the lab's record."""

import numpy as np

from experiments.recommender import LabRecord, analyze
from experiments.recommender.lab import MIN_OUTCOMES_FOR_RANKING

from .synthetic_runs import make_run


def smothered_run():
    """A [32] net with dropout 0.6, learning slowly: over_regularisation (confidence 0.85) and
    lr_too_low (0.75) are both high-priority problems."""
    e = np.arange(15)
    return make_run(train_loss=list(1.2 - 0.02 * e), val_loss=list(1.2 - 0.02 * e),
                    train_acc=list(0.55 + 0.005 * e), val_acc=list(0.55 + 0.005 * e),
                    dropout=0.6, hidden_layers=[32])


def top_two(analysis):
    return [advice.kind for advice in analysis.recommendations[:2]]


def test_without_lab_evidence_the_rules_confidence_ranks():
    assert top_two(analyze(smothered_run())) == ["over_regularisation", "lr_too_low"]


def test_a_kind_that_rarely_helped_in_the_lab_falls_below_one_that_did():
    n = MIN_OUTCOMES_FOR_RANKING
    lab = LabRecord({"over_regularisation": (n, 2), "lr_too_low": (n, n - 1)})
    assert top_two(analyze(smothered_run(), lab=lab)) == ["lr_too_low", "over_regularisation"]


def test_fewer_outcomes_than_the_minimum_do_not_rank():
    n = MIN_OUTCOMES_FOR_RANKING - 1
    lab = LabRecord({"over_regularisation": (n, 0), "lr_too_low": (n, n)})
    assert top_two(analyze(smothered_run(), lab=lab)) == ["over_regularisation", "lr_too_low"]


def test_lab_evidence_never_lifts_advice_above_a_higher_priority():
    n = 50
    lab = LabRecord({"more_epochs": (n, n), "over_regularisation": (n, 0), "lr_too_low": (n, 0)})
    kinds = [advice.kind for advice in analyze(smothered_run(), lab=lab).recommendations]
    assert kinds.index("more_epochs") > max(kinds.index("over_regularisation"), kinds.index("lr_too_low"))


def test_every_card_cites_the_lab_record_in_its_evidence_and_rationale():
    lab = LabRecord({"lr_too_low": (4, 3)})
    analysis = analyze(smothered_run(), lab=lab)
    advice = next(a for a in analysis.recommendations if a.kind == "lr_too_low")
    assert advice.evidence["lab"] == {"evaluated": 4, "helped": 3, "help_rate": 0.75, "used_for_ranking": False}
    assert "applied and measured 4 times; it helped 3 (75 %), too few to rank by" in advice.rationale
    untried = next(a for a in analysis.recommendations if a.kind == "over_regularisation")
    assert untried.evidence["lab"]["evaluated"] == 0
    assert "In this lab" not in untried.rationale
    performance = next(a for a in analysis.recommendations if a.kind == "performance")
    assert "lab" not in performance.evidence


def test_smoothed_rate_is_never_certain_from_few_runs():
    record = LabRecord({"plateau": (10, 10)}).of("plateau")
    assert record.help_rate == 1.0 and record.smoothed_rate == 11 / 12

"""`manage.py evaluate_recommender`: one tiny case of the evaluation set, end to end."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from experiments.models import Experiment, Recommendation
from experiments.recommender.evaluation import DEVELOPMENT, half_cases


def run_command(*args) -> str:
    stdout = io.StringIO()
    call_command("evaluate_recommender", *args, stdout=stdout)
    return stdout.getvalue()


def test_one_development_case_is_trained_applied_and_scored(direct_delivery):
    case = half_cases("development")[0]
    assert case.id in DEVELOPMENT and not case.large
    output = run_command("--half", "development", "--limit", "1", "--seeds", "1", "--quick", "--json")

    parent = Experiment.objects.get(name=f"eval {case.id} seed {case.seeds[0]}")
    assert parent.config["seed"] == case.seeds[0]
    assert parent.config["learning_rate"] == case.config["learning_rate"]
    child = Experiment.objects.get(parent=parent)  # the top recommendation was applied and run
    advice = Recommendation.objects.get(outcome_experiment=child)
    assert advice.improved is not None

    report = json.loads(output.strip().splitlines()[-2])  # the JSON line, then the time
    [outcome] = report["outcomes"]
    assert outcome["case_id"] == case.id and outcome["expected"] == case.expected
    assert outcome["improved"] == advice.improved and outcome["top_kind"] == advice.kind
    named = report["summaries"]["development"]["named"]
    assert named["total"] == 1 and named["count"] == int(outcome["named"])
    assert "held-out" not in report["summaries"]
    assert "== development half (1 runs)" in output and "problem named:" in output


def test_more_seeds_than_the_cases_have_is_refused(direct_delivery):
    with pytest.raises(CommandError, match="--seeds"):
        run_command("--limit", "1", "--seeds", "9")
    assert not Experiment.objects.exists()

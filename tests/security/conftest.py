"""Fixtures of the security suite: two users' objects and the API's operations from its schema."""

from __future__ import annotations

import re

import pytest

from experiments.models import Experiment, Recommendation
from training.config import TrainingConfig

MARKER = "alice-private-run-7f3a"  # appears only in alice's data


def make_run(owner, **fields) -> Experiment:
    return Experiment.objects.create(owner=owner, name=MARKER, config=TrainingConfig.from_dict({}).to_dict(),
                                     **fields)


def api_token(user) -> str:
    """A new API token (the secret) for `user`, for "Authorization: Token <token>"."""
    from experiments.services import tokens

    return tokens.token_create(user=user)[1]


def alice_token_id(user) -> str:
    from experiments import selectors
    from experiments.services import tokens

    return selectors.token_id(tokens.token_create(user=user)[0])


@pytest.fixture
def alice_objects(user):
    """One object of each kind a URL can name, owned by alice (the `user` fixture)."""
    finished = make_run(user, status=Experiment.Status.SUCCEEDED)
    recommendation = Recommendation.objects.create(
        experiment=finished, kind="lr_up", priority="high", title=MARKER, rationale="why", changes={"epochs": 4})
    ids = {"experiment_id": finished.pk, "recommendation_id": recommendation.pk,
           "token_id": alice_token_id(user)}
    try:
        from experiments.models import Sweep
    except ImportError:  # before the sweeps feature
        return ids
    sweep = Sweep.objects.create(owner=user, name=MARKER, base_config=finished.config, budget=2,
                                 space={"learning_rate": {"values": [0.001, 0.01]}})
    finished.sweep, finished.trial_number = sweep, 1  # a trial as the coordinator makes them: numbered
    finished.save(update_fields=["sweep", "trial_number"])
    ids["sweep_id"] = sweep.pk
    return ids


def api_operations(client) -> list[tuple[str, str]]:
    """(method, path template) of every operation in the live OpenAPI schema."""
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    operations = []
    for path, item in response.json()["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                operations.append((method, path))
    return sorted(operations)


def fill(path: str, ids: dict[str, int]) -> str:
    def value(match):
        name = match.group(1)
        if name not in ids:
            pytest.fail(f"{path}: no test object for path parameter {{{name}}}; add one to alice_objects "
                        "in tests/security/conftest.py so this endpoint's isolation is tested")
        return str(ids[name])

    return re.sub(r"\{(\w+)\}", value, path)


@pytest.fixture(autouse=True)
def forget_throttle_counters():
    """Throttle counters live in Redis for a minute: drop ours, so no other test inherits a 429."""
    yield
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)
    pattern = cache.make_key("throttle_*")
    keys = list(client.scan_iter(match=pattern, count=500))
    if keys:
        client.delete(*keys)

"""Session-authenticated writes need the CSRF token; token-authenticated scripts do not."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from experiments.models import Experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_session_post_without_the_csrf_token_is_refused(browser):
    response = browser.post("/api/experiments/", json.dumps({"config": {"epochs": 1}}),
                            content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Experiment.objects.count() == 0


def test_session_post_with_the_csrf_token_is_accepted(browser):
    browser.get("/")  # the page sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post("/api/experiments/", json.dumps({"config": {"epochs": 1}}),
                            content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content
    assert Experiment.objects.count() == 1  # queued; on_commit never fires here, so nothing is enqueued


@pytest.mark.parametrize("action", ["cancel", "rerun"])
def test_every_session_write_checks_csrf(browser, user, action):
    from tests.security.conftest import make_run

    run = make_run(user)
    assert browser.post(f"/api/experiments/{run.pk}/{action}/").status_code == 403
    assert browser.delete(f"/api/experiments/{run.pk}/").status_code == 403
    assert Experiment.objects.filter(pk=run.pk, status=Experiment.Status.QUEUED).count() == 1


def test_token_clients_need_no_csrf_token(user):
    from tests.security.conftest import api_token

    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/experiments/", json.dumps({"config": {"epochs": 1}}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    assert response.status_code == 201

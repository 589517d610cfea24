"""The staff lab status page (/lab/, DOM_CONTRACT.md "Lab status") against the real Daphne, Redis and
a Celery worker training a real run: the worker card shows the run's progress as it trains, and
the run's status change reaches the page."""

from __future__ import annotations

import os
import re
import socket

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from experiments import services
from experiments.models import Experiment
from experiments.services.workers import worker_heartbeat
from tests.browser.conftest import LONG_RUN, RUN_TIMEOUT_MS, SCREENSHOTS, login
from tests.conftest import wait_for_status


@pytest.mark.browser
def test_staff_see_a_running_run_s_progress_on_its_worker(celery_worker, staff_user, user, page, settings):
    # LONG_RUN alone trains its 40 small epochs in a few seconds, faster than the page's 5 s re-read:
    # slowed to ~1.5 s an epoch it is still running whenever the page looks (it is cancelled below).
    settings.TUNER_BATCH_DELAY_SECONDS = 0.02
    # The in-thread test worker trains in this process: report it the way a worker's main process does.
    node = f"browser@{socket.gethostname()}"
    worker_heartbeat(nodename=node, hostname=socket.gethostname(), pid=os.getpid(), pids=[os.getpid()],
                     concurrency=1, started_at=timezone.now())
    run = services.experiment_create(owner=user, config=LONG_RUN, name="long one")

    login(page, "staff", "staff-password-1", "/lab/")
    expect(page.locator(".site-nav a[aria-current=page]")).to_have_text("Lab")
    expect(page.locator("#lab-connection")).to_have_attribute("data-state", "live")
    card = page.locator(f"article.lab-worker[data-nodename='{node}']")
    expect(card).to_have_class(re.compile(r"\blab-worker-online\b"))
    expect(card.locator(".lab-worker-meta")).to_contain_text("concurrency 1")
    item = card.locator(f"li.lab-run[data-run-id='{run.pk}']")
    expect(item).to_contain_text(f"#{run.pk} long one", timeout=RUN_TIMEOUT_MS)
    # Progress moves on while it trains (re-read every few seconds).
    expect(item.locator(".lab-progress-text")).to_have_text(re.compile(r"epoch [2-9]\d?/40 · \d+%"),
                                                            timeout=RUN_TIMEOUT_MS)
    bar = item.locator("[role=progressbar]")
    assert int(bar.get_attribute("aria-valuenow")) >= 5
    expect(page.locator("#lab-summary")).to_contain_text("1 of 1 worker online")
    expect(page.locator(".lab-state[data-status=running] dd")).to_have_text("1")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab-status.png"), full_page=True)

    services.experiment_cancel(experiment=Experiment.objects.get(pk=run.pk))
    wait_for_status(run, Experiment.Status.CANCELLED)
    expect(page.locator(".lab-state[data-status=cancelled] dd")).to_have_text("1")
    expect(item).to_have_count(0)
    expect(card).to_contain_text("idle")


@pytest.mark.browser
def test_the_lab_page_is_staff_only(user, page, console):
    console.expect_failed_request(403, "/lab/")
    login(page, user.username, "alice-password-1", "/")
    expect(page.locator(".site-nav a", has_text="Lab")).to_have_count(0)
    response = page.goto("/lab/")
    assert response.status == 403

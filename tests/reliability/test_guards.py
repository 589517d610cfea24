"""Cheap guards: no hard kills of tasks in app code, the broker start-up check, reconciler locking."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from experiments import broker
from tests.reliability import ROOT


def test_app_code_never_terminates_tasks():
    """revoke(terminate=True) kills the process mid-write; cancellation goes through the DB flag."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for directory in ("experiments", "tuner_site", "training")
        for path in sorted((ROOT / directory).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "terminate=True" in line.replace(" ", "")
    ]
    assert offenders == []


def conf(visibility, limit):
    options = {} if visibility is None else {"visibility_timeout": visibility}
    return SimpleNamespace(broker_transport_options=options, task_time_limit=limit)


@pytest.mark.parametrize("visibility,limit", [(3600, 3600), (100, 3600), (None, 7200)])
def test_a_visibility_timeout_not_above_the_time_limit_refuses_to_start(visibility, limit):
    from tuner_site.celery import UnsafeBrokerSettings, check_visibility_timeout

    with pytest.raises(UnsafeBrokerSettings, match="visibility_timeout"):
        check_visibility_timeout(conf(visibility, limit))


def test_the_configured_visibility_timeout_passes_the_start_up_check():
    from tuner_site.celery import app, check_visibility_timeout

    check_visibility_timeout(conf(7200, 3600))
    check_visibility_timeout(app.conf)


def test_the_worker_start_up_hook_exits_with_the_message():
    from experiments import worker_hooks
    from tuner_site.celery import app

    conf = app.conf
    saved = conf.broker_transport_options
    conf.broker_transport_options = {"visibility_timeout": 10}
    try:
        with pytest.raises(SystemExit, match="Refusing to start"):
            worker_hooks.refuse_unsafe_broker_settings()
    finally:
        conf.broker_transport_options = saved
    worker_hooks.refuse_unsafe_broker_settings()  # the real settings pass


def test_the_reconciler_runs_on_a_beat_schedule():
    from tuner_site.celery import app

    entry = app.conf.beat_schedule["reconcile-runs"]
    assert entry["task"] == "experiments.reconcile_runs" and entry["schedule"] == 60
    app.loader.import_default_modules()  # what a worker or beat does at start: autodiscovers the tasks
    assert "experiments.reconcile_runs" in app.tasks
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is True


def test_a_second_reconciler_backs_off_while_one_holds_the_lock(transactional_db, settings):
    from experiments import services

    lock = broker.reconcile_lock(broker.redis_client(url=settings.CELERY_BROKER_URL), timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert services.runs_reconcile()["locked"] is True
    finally:
        lock.release()
    assert services.runs_reconcile()["locked"] is False


def test_queued_runs_still_in_the_broker_are_left_alone(transactional_db, user, quick_config):
    from experiments import services
    from tests.conftest import _purge_test_queue

    _purge_test_queue()
    experiment = services.experiment_create(owner=user, config=quick_config)  # enqueued on commit
    assert experiment.task_id in broker.broker_task_ids()
    report = services.runs_reconcile(queued_min_age_seconds=0)
    assert report["requeued_queued"] == []
    _purge_test_queue()  # Redis lost it
    assert services.runs_reconcile(queued_min_age_seconds=0)["requeued_queued"] == [experiment.pk]
    assert experiment.task_id in broker.broker_task_ids()
    _purge_test_queue()

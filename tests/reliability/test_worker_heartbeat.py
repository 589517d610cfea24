"""Worker heartbeats with real `celery worker` subprocesses: a worker appears on the lab status
with its concurrency and the run it trains, shows offline once SIGKILLed, and is removed when it
stops cleanly (issue 14)."""

from __future__ import annotations

import signal

import pytest

from experiments import selectors_lab, services
from experiments.models import Experiment, WorkerHeartbeat
from tests.conftest import wait_for
from tests.reliability import CONFIG, wait_for_epoch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BEAT = "0.5"  # seconds between heartbeats: offline after 1.5 s


@pytest.fixture
def fast_beats(settings):
    settings.TUNER_WORKER_HEARTBEAT_SECONDS = float(BEAT)


def worker_entry(nodename_part: str, *, online: bool | None = None):
    for worker in selectors_lab.lab_status()["workers"]:
        if nodename_part in worker["nodename"] and (online is None or worker["online"] is online):
            return worker
    return None


def test_a_worker_is_online_with_its_run_and_offline_once_killed(workers, user, fast_beats):
    worker = workers(pool="prefork", env={"TUNER_WORKER_HEARTBEAT_SECONDS": BEAT})
    worker.wait_ready()
    node = wait_for(lambda: worker_entry("rel-", online=True), timeout=30, message="the worker's heartbeat")
    assert node["concurrency"] == 1 and node["pid"] == worker.pid
    assert len(node["pids"]) == 2  # the main process and its one pool child
    assert node["current_runs"] == []

    experiment = services.experiment_create(owner=user, config=CONFIG)
    wait_for_epoch(experiment, 2, worker)
    node = worker_entry("rel-", online=True)
    [run] = node["current_runs"]
    assert run["id"] == experiment.pk and run["epochs"] == CONFIG["epochs"]
    assert run["epochs_done"] >= 2 and 0 < run["progress"] < 1
    assert run["worker_host"].split(":")[1] in {str(pid) for pid in node["pids"] if pid != worker.pid}

    worker.kill(signal.SIGKILL)
    worker.wait_exit(10)
    gone = wait_for(lambda: worker_entry("rel-", online=False), timeout=10, message="the worker to go offline")
    assert gone["seconds_since_seen"] >= selectors_lab.offline_after_seconds()  # rounded to 0.1 s
    assert [r["id"] for r in gone["current_runs"]] == [experiment.pk]  # its orphaned run, still shown
    assert selectors_lab.lab_status()["workers_online"] == 0
    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.RUNNING


def test_a_worker_that_stops_cleanly_removes_its_heartbeat(workers, fast_beats):
    worker = workers(env={"TUNER_WORKER_HEARTBEAT_SECONDS": BEAT})
    worker.wait_ready()
    node = wait_for(lambda: worker_entry("rel-", online=True), timeout=30, message="the worker's heartbeat")
    assert node["pids"] == [worker.pid]  # solo pool: the main process trains
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait_exit(30) == 0, worker.output()[-3000:]
    assert not WorkerHeartbeat.objects.filter(nodename=node["nodename"]).exists()

"""The staff lab status: the selector on real rows, the API's permissions and query checks, the
staff websocket, and the run-status push (issue 14)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework.test import APIClient

from experiments import live, selectors_lab
from experiments.consumers import CLOSE_UNAUTHENTICATED
from experiments.lab_consumers import CLOSE_NOT_STAFF
from experiments.models import Experiment, WorkerHeartbeat
from experiments.services.workers import worker_gone, worker_heartbeat
from tests.experiments.test_consumers import expect_closed, make_run, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def beat(nodename: str, *, host: str = "lab-host", pid: int = 100, pids=(101, 102), concurrency: int = 2,
         age: float = 0.0) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(nodename=nodename, hostname=host, pid=pid, pids=list(pids),
                                          concurrency=concurrency, started_at=now - timedelta(minutes=5),
                                          last_seen=now - timedelta(seconds=age))


@pytest.fixture
def lab(settings, user, other_user):
    """Two workers (one silent for too long), runs in every state, two failures, stored bytes."""
    settings.TUNER_WORKER_HEARTBEAT_SECONDS = 10  # offline after 30 s
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = 1000
    beat("tuner@alive", host="alive-host", pid=10, pids=[11, 12], concurrency=2, age=5)
    beat("tuner@dead", host="dead-host", pid=20, pids=[21], concurrency=1, age=31)
    now = timezone.now()
    runs = {
        "on_alive": make_run(user, {"epochs": 10}, name="training", status="running", epochs_done=4,
                             worker_host="alive-host:12", started_at=now, heartbeat_at=now),
        "on_dead": make_run(other_user, {"epochs": 4}, status="running", epochs_done=1, worker_host="dead-host:21",
                            started_at=now),
        "stray": make_run(user, {"epochs": 5}, status="running", worker_host="elsewhere:7", started_at=now),
        "queued": make_run(user, status="queued"),
        "ok": make_run(user, status="succeeded", finished_at=now, weights_bytes=600),
        "failed": make_run(other_user, status="failed", finished_at=now - timedelta(hours=1),
                           error_message="gave up after 3 attempts (the worker kept dying)", weights_bytes=50,
                           checkpoint_bytes=25),
        "diverged": make_run(user, status="diverged", finished_at=now - timedelta(minutes=5),
                             message="loss became NaN at epoch 2"),
        "old_failure": make_run(user, status="failed", finished_at=now - timedelta(hours=30),
                                error_message="long ago"),
        "cancelled": make_run(user, status="cancelled", finished_at=now),
    }
    return runs


def test_workers_are_online_by_heartbeat_age_with_the_runs_their_processes_train(lab):
    status = selectors_lab.lab_status()

    assert status["offline_after_seconds"] == 30
    assert [(w["nodename"], w["online"]) for w in status["workers"]] == [("tuner@alive", True), ("tuner@dead", False)]
    assert status["workers_online"] == 1
    alive, dead = status["workers"]
    assert (alive["hostname"], alive["concurrency"], alive["pids"]) == ("alive-host", 2, [11, 12])
    assert 4 <= alive["seconds_since_seen"] < 30 and dead["seconds_since_seen"] >= 31
    [run] = alive["current_runs"]
    assert (run["id"], run["owner"], run["epochs_done"], run["epochs"], run["progress"]) == (
        lab["on_alive"].pk, "alice", 4, 10, 0.4)
    assert [r["id"] for r in dead["current_runs"]] == [lab["on_dead"].pk]  # shown, under an offline worker
    assert [r["id"] for r in status["unattributed_runs"]] == [lab["stray"].pk]


def test_runs_per_state_queue_failures_and_storage(lab):
    status = selectors_lab.lab_status()

    assert status["runs_by_state"] == {"queued": 1, "running": 3, "succeeded": 1, "failed": 2, "diverged": 1,
                                       "cancelled": 1, "pruned": 0}
    assert status["queue"]["queued_runs"] == 1
    assert isinstance(status["queue"]["broker_length"], int)  # the real Redis answers
    assert status["health"]["redis"] is True and status["health"]["database"] is True
    # Newest first, within 24 h, with the reason stored on the run (error message, else message).
    assert [(f["id"], f["status"], f["reason"]) for f in status["recent_failures"]] == [
        (lab["diverged"].pk, "diverged", "loss became NaN at epoch 2"),
        (lab["failed"].pk, "failed", "gave up after 3 attempts (the worker kept dying)")]
    assert [f["id"] for f in selectors_lab.lab_status(failure_hours=48)["recent_failures"]][-1] == \
        lab["old_failure"].pk
    assert len(selectors_lab.lab_status(failures=1)["recent_failures"]) == 1
    storage = status["storage"]
    assert storage["limit_bytes"] == 1000 and storage["total_bytes"] == 675
    assert [(u["user"], u["storage_bytes"], u["run_count"], u["fraction_of_limit"]) for u in storage["users"]] == [
        ("alice", 600, 7, 0.6), ("bob", 75, 2, 0.075)]


def test_an_empty_lab(settings):
    status = selectors_lab.lab_status()
    assert status["workers"] == [] and status["workers_online"] == 0 and status["recent_failures"] == []
    assert set(status["runs_by_state"].values()) == {0}
    assert status["storage"]["users"] == [] and status["storage"]["total_bytes"] == 0


def test_heartbeat_service_upserts_forgets_long_dead_workers_and_removes_on_shutdown(settings):
    started = timezone.now()
    worker_heartbeat(nodename="w@a", hostname="a", pid=1, pids=[1, 3, 2], concurrency=2,
                                      started_at=started)
    beat("w@ancient", age=2 * 86400)
    row = worker_heartbeat(nodename="w@a", hostname="a", pid=1, pids=[1, 4], concurrency=2,
                                            started_at=timezone.now())
    assert row.pids == [1, 4] and row.started_at == started  # started_at kept from the first beat
    assert list(WorkerHeartbeat.objects.values_list("nodename", flat=True)) == ["w@a"]
    worker_gone(nodename="w@a")
    assert not WorkerHeartbeat.objects.exists()


# --------------------------------------------------------------------------- the API


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_the_api_is_staff_only(user, staff_user):
    assert client_for(None).get("/api/lab/status/").status_code == 401
    for query in ("", "?failures=5"):
        response = client_for(user).get(f"/api/lab/status/{query}")
        assert response.status_code == 403, response.content
        assert "workers" not in response.json()
    session = APIClient()
    session.login(username="alice", password="alice-password-1")
    assert session.get("/api/lab/status/").status_code == 403
    assert client_for(staff_user).get("/api/lab/status/").status_code == 200


def test_the_api_returns_the_selector_document(lab, staff_user):
    response = client_for(staff_user).get("/api/lab/status/", {"failures": 1, "hours": 48, "format": "json"})
    assert response.status_code == 200
    body = response.json()
    assert body["workers_online"] == 1 and body["workers"][0]["current_runs"][0]["progress"] == 0.4
    assert [f["id"] for f in body["recent_failures"]] == [lab["diverged"].pk]
    assert body["failure_hours"] == 48


@pytest.mark.parametrize("query", [
    "failures=abc", "failures=0", "failures=-1", "failures=101", "failures=1e3", "hours=0", "hours=100000",
    "hours=nan", "hours=", "failures=%00", "workers=1", "failures=1&failures=x", "x" * 3000 + "=1"])
def test_garbage_query_parameters_are_a_400(staff_user, query):
    response = client_for(staff_user).get(f"/api/lab/status/?{query}")
    assert response.status_code == 400, (query, response.status_code)
    assert isinstance(response.json(), dict)


def test_garbage_from_non_staff_is_still_a_403(user):
    assert client_for(user).get("/api/lab/status/?failures=abc").status_code == 403


# --------------------------------------------------------------------------- the websocket push


def test_only_staff_may_open_the_lab_socket(user):
    async def body():
        await expect_closed(await open_socket("/ws/lab/", AnonymousUser()), CLOSE_UNAUTHENTICATED)
        await expect_closed(await open_socket("/ws/lab/", user), CLOSE_NOT_STAFF)

    async_to_sync(body)()


def test_a_run_status_change_is_pushed_to_staff_on_the_lab_socket(staff_user, user):
    run = make_run(user, status="running")

    async def body():
        socket = await open_socket("/ws/lab/", staff_user)
        assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
        run.status = Experiment.Status.SUCCEEDED
        await database_sync_to_async(live.publish_finished)(run)
        events = [await socket.receive_json_from(timeout=5)]
        assert await socket.receive_nothing(timeout=0.3)  # one nudge per status change, not per event
        await socket.disconnect()
        return events

    assert async_to_sync(body)() == [{"type": "lab_changed", "reason": "run_status", "experiment": run.pk,
                                      "status": "succeeded"}]

"""The sweep websocket (ws/sweeps/<id>/) on the real Redis channel layer: access, the snapshot (= the REST
detail), numbered events from the services where the facts happen, resync, and hostile clients.

Trials are trained for real by calling the worker's task body (`direct_delivery`), in a thread
(`database_sync_to_async`) while the test's socket listens.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from experiments import events, live_sweeps, services
from experiments.broker import redis_client
from experiments.consumers import (
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    MAX_CLIENT_MESSAGE_BYTES,
    MESSAGE_BURST,
)
from experiments.models import EpochMetric, Experiment, Sweep
from tests.experiments.test_consumers import expect_closed, open_socket, receive_until
from training.trainer import METRIC_FIELDS

pytestmark = pytest.mark.django_db(transaction=True)

Status = Experiment.Status
# Tiny real trainings (a fraction of a second each).
BASE = {"hidden_layers": [16], "epochs": 2, "train_size": 600, "batch_size": 64, "lr_schedule": "constant",
        "dropout": 0.0}
GRID = {"learning_rate": {"values": [0.003, 0.01]}}
TRIAL_KEYS = {"id", "trial_number", "status", "params", "best_val_accuracy", "test_accuracy", "epochs_done",
              "seconds", "parameters", "pruned", "message"}


def make_sweep(owner, **options) -> Sweep:
    """A grid sweep over two rates; its first trials are queued (nothing is delivered: direct_delivery)."""
    return services.sweep_create(owner=owner, base_config=BASE, **{
        "space": GRID, "strategy": "grid", "parallelism": 1, "seed": 1, **options})


def trials(sweep) -> list[Experiment]:
    return list(Experiment.objects.filter(sweep=sweep).order_by("trial_number"))


def path(sweep_id: int) -> str:
    return f"/ws/sweeps/{sweep_id}/"


def rest_detail(user, sweep_id: int) -> dict:
    client = Client()
    client.force_login(user)
    response = client.get(f"/api/sweeps/{sweep_id}/")
    assert response.status_code == 200
    return response.json()


def run_trials_until_done(sweep) -> None:
    """Play the workers: train the active trials (and the ones their ends create) until none is left."""
    while queued := list(Experiment.objects.filter(sweep=sweep, status__in=Experiment.ACTIVE_STATUSES)
                         .order_by("trial_number")):
        for experiment in queued:
            services.experiment_run(experiment_id=experiment.pk)


# --------------------------------------------------------------------------- access


def test_owner_and_staff_get_a_snapshot_others_and_anonymous_are_refused(direct_delivery, user, other_user,
                                                                          staff_user):
    sweep = make_sweep(user)

    async def body():
        got = []
        for who in (user, staff_user):
            socket = await open_socket(path(sweep.pk), who)
            got.append(await socket.receive_json_from(timeout=5))
            assert await socket.receive_nothing()
            await socket.disconnect()
        for who, sweep_id in ((other_user, sweep.pk), (other_user, sweep.pk + 1000), (user, sweep.pk + 1000)):
            socket = await open_socket(path(sweep_id), who)
            await expect_closed(socket, CLOSE_NOT_FOUND)
        socket = await open_socket(path(sweep.pk), AnonymousUser())
        await expect_closed(socket, CLOSE_UNAUTHENTICATED)
        return got

    owner_view, staff_view = async_to_sync(body)()
    assert owner_view["type"] == staff_view["type"] == "snapshot"
    assert owner_view["sweep"]["id"] == sweep.pk and owner_view["sweep"]["status"] == "running"
    assert owner_view["sweep"] == staff_view["sweep"]


def test_the_snapshot_is_exactly_the_rest_detail(direct_delivery, user):
    sweep = make_sweep(user, parallelism=2)
    first, second = trials(sweep)
    # One trial done (with epochs), one pruned: best, best-so-far and counts are not empty.
    for epoch, val in ((1, 0.61), (2, 0.7)):
        EpochMetric.objects.create(experiment=first, epoch=epoch, **{
            name: (val if name == "val_accuracy" else 0.5) for name in METRIC_FIELDS})
    Experiment.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED, best_val_accuracy=0.7, best_epoch=2,
                                                  epochs_done=2, test_accuracy=0.69, finished_at=timezone.now())
    Experiment.objects.filter(pk=second.pk).update(status=Status.PRUNED, epochs_done=1, best_val_accuracy=0.2,
                                                   message="pruned at epoch 1: val 20.0 % < median 61.0 %",
                                                   finished_at=timezone.now())
    services.sweep_fill(sweep_id=sweep.pk)
    events.publish_sweep(sweep.pk, lambda: [{"type": "sweep_status", "note": "before the socket"}])

    async def body():
        socket = await open_socket(path(sweep.pk), user)
        snapshot = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return snapshot

    snapshot = async_to_sync(body)()
    rest = rest_detail(user, sweep.pk)
    assert snapshot["sweep"] == rest
    assert list(snapshot["sweep"]) == list(rest)  # the same fields, in the same order
    assert snapshot["seq"] == events.current_sweep_seq(sweep.pk) > 0
    assert rest["status"] == "finished" and rest["best_trial"] == first.pk and rest["best_value"] == 0.7
    assert rest["best_so_far"] == [{"trial_number": 1, "value": 0.7}]
    assert set(rest["trials"][0]) == TRIAL_KEYS
    assert rest["trials"][1]["pruned"] and rest["trials"][1]["message"].startswith("pruned at epoch 1")


# --------------------------------------------------------------------------- a real sweep, live


def test_a_watcher_sees_every_fact_of_a_real_sweep_in_order(direct_delivery, user):
    sweep = make_sweep(user)  # 2 trials, one at a time

    async def body():
        socket = await open_socket(path(sweep.pk), user)
        snapshot = await socket.receive_json_from(timeout=5)
        await database_sync_to_async(run_trials_until_done)(sweep)
        received = await receive_until(socket, lambda m: m["type"] == "sweep_finished")
        assert await socket.receive_nothing(timeout=0.3)
        await socket.send_json_to({"type": "resync"})
        final = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return snapshot, received, final

    snapshot, received, final = async_to_sync(body)()
    first, second = trials(sweep)
    assert [t["status"] for t in snapshot["sweep"]["trials"]] == ["queued"]

    seqs = [m["seq"] for m in received]
    assert seqs == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(received)))  # no gap, in order
    assert all(m["sweep"] == sweep.pk for m in received)

    def facts(trial):
        return [(m["type"], m["trial"]["status"]) for m in received if m.get("trial", {}).get("id") == trial.pk]

    assert facts(first) == [("trial_started", "running"), ("trial_epoch", "running"), ("trial_epoch", "running"),
                            ("trial_ended", first.status)]
    assert facts(second) == [("trial_started", "queued"), ("trial_started", "running"),
                             ("trial_epoch", "running"), ("trial_epoch", "running"), ("trial_ended", second.status)]
    epochs = [m for m in received if m["type"] == "trial_epoch" and m["trial"]["id"] == first.pk]
    assert [(m["epoch"], m["trial"]["epochs_done"]) for m in epochs] == [(1, 1), (2, 2)]
    stored = dict(EpochMetric.objects.filter(experiment=first).values_list("epoch", "val_accuracy"))
    assert [m["val_accuracy"] for m in epochs] == [stored[1], stored[2]]
    ended = next(m for m in received if m["type"] == "trial_ended" and m["trial"]["id"] == first.pk)
    assert ended["reason"] == ended["trial"]["message"]
    assert set(ended["trial"]) == TRIAL_KEYS and ended["trial"]["best_val_accuracy"] == first.best_val_accuracy

    sweep.refresh_from_db()
    best = [m for m in received if m["type"] == "best_changed"]
    assert best and best[-1]["best_trial"] == sweep.best_trial_id
    assert set(best[0]) == {"type", "sweep", "seq", "best_trial", "best_value", "best_so_far"}
    kinds = [m["type"] for m in received]
    assert kinds.index("best_changed") > kinds.index("trial_ended")  # the best changes when a trial ends
    # The last event carries the finished sweep, every field of the detail but its trials.
    done = received[-1]
    rest = rest_detail(user, sweep.pk)
    assert {k: v for k, v in done.items() if k not in ("type", "sweep", "seq")} == {
        k: v for k, v in rest.items() if k != "trials"}
    assert done["status"] == "finished" and done["counts"]["total"] == 2
    assert final["type"] == "snapshot" and final["seq"] == done["seq"] and final["sweep"] == rest


def test_cancel_extend_and_retry_each_announce_their_fact(direct_delivery, user, settings):
    settings.TUNER_MAX_ATTEMPTS = 1
    sweep = make_sweep(user, strategy="random", space={"learning_rate": {"low": 1e-3, "high": 1e-2}}, budget=1)
    (trial,) = trials(sweep)

    async def body():
        socket = await open_socket(path(sweep.pk), user)
        await socket.receive_json_from(timeout=5)
        got = {}
        # A trial whose deliveries keep dying ends failed: trial_ended, and the sweep finishes.
        await database_sync_to_async(services.experiment_claim)(experiment_id=trial.pk)
        await database_sync_to_async(services.experiment_run)(experiment_id=trial.pk)
        got["failed"] = await receive_until(socket, lambda m: m["type"] == "sweep_finished")
        row = await database_sync_to_async(Sweep.objects.get)(pk=sweep.pk)
        await database_sync_to_async(services.sweep_trial_retry)(sweep=row, experiment=trial)
        got["retry"] = await receive_until(socket, lambda m: m["type"].startswith("sweep_"))
        row = await database_sync_to_async(Sweep.objects.get)(pk=sweep.pk)
        await database_sync_to_async(services.sweep_extend)(sweep=row, budget=3)
        got["extend"] = await receive_until(socket, lambda m: m["type"].startswith("sweep_"))
        await database_sync_to_async(services.sweep_cancel)(sweep=row)
        got["cancel"] = await receive_until(socket, lambda m: m["type"] == "sweep_finished")
        await socket.disconnect()
        return got

    got = async_to_sync(body)()
    ended = [m for m in got["failed"] if m["type"] == "trial_ended"]
    assert [(m["trial"]["id"], m["trial"]["status"]) for m in ended] == [(trial.pk, "failed")]
    assert ended[0]["reason"].startswith("gave up after 1 attempts")
    assert got["failed"][-1]["status"] == "finished"

    assert [(m["type"], m.get("trial", {}).get("status")) for m in got["retry"]] == [
        ("trial_started", "queued"), ("sweep_status", None)]
    assert got["retry"][-1]["status"] == "running"

    extend = got["extend"]
    assert extend[-1]["type"] == "sweep_status" and extend[-1]["budget"] == 3
    assert [m["trial"]["trial_number"] for m in extend if m["type"] == "trial_started"] == []  # parallelism 1

    cancel = got["cancel"]
    assert [(m["type"], m["trial"]["status"]) for m in cancel if "trial" in m] == [("trial_ended", "cancelled")]
    assert cancel[-1]["status"] == "cancelled" and cancel[-1]["message"].startswith("cancelled: 1 queued")


# --------------------------------------------------------------------------- protocol


def test_resync_after_a_gap_sends_a_fresh_snapshot_with_the_current_seq(direct_delivery, user):
    sweep = make_sweep(user)

    async def body():
        socket = await open_socket(path(sweep.pk), user)
        snapshot = await socket.receive_json_from(timeout=5)
        # An event the channel layer dropped: its seq was taken, it never arrived.
        await database_sync_to_async(redis_client().incr)(events._key("sweep-seq", sweep.pk))
        await database_sync_to_async(Experiment.objects.filter(sweep=sweep).update)(epochs_done=1)
        await database_sync_to_async(events.publish_sweep)(sweep.pk, lambda: [{"type": "sweep_status"}])
        after_gap = await socket.receive_json_from(timeout=5)
        await socket.send_json_to({"type": "resync"})
        fresh = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return snapshot, after_gap, fresh

    snapshot, after_gap, fresh = async_to_sync(body)()
    assert after_gap["seq"] == snapshot["seq"] + 2  # the client sees the gap...
    assert fresh["type"] == "snapshot" and fresh["seq"] == after_gap["seq"]  # ...and catches up
    assert fresh["sweep"]["trials"][0]["epochs_done"] == 1


def test_hostile_and_repeated_client_messages_get_errors_and_never_close_the_socket(direct_delivery, user):
    sweep = make_sweep(user)

    async def body():
        socket = await open_socket(path(sweep.pk), user)
        await socket.receive_json_from(timeout=5)
        replies = []
        for bad in ("not json {", json.dumps([1, 2]), json.dumps({"no": "type"}), json.dumps({"type": 7}),
                    json.dumps({"type": "subscribe", "sweep": sweep.pk + 1}),
                    json.dumps({"type": "ping", "pad": "x" * MAX_CLIENT_MESSAGE_BYTES}),
                    "[" * 40 + "]" * 40, '{"type": "ping", "x": NaN}'):
            await socket.send_to(text_data=bad)
            replies.append(await socket.receive_json_from())
        await socket.send_to(bytes_data=b"\x00" * 10)
        replies.append(await socket.receive_json_from())
        # Resyncs past the budget (3 per 10 s): snapshots, then an error.
        for _ in range(4):
            await socket.send_json_to({"type": "resync"})
            replies.append(await socket.receive_json_from(timeout=5))
        # A flood past the message budget: the rest are dropped with one error.
        for _ in range(MESSAGE_BURST + 5):
            await socket.send_json_to({"type": "ping"})
        flood = []
        while not await socket.receive_nothing(timeout=0.5):
            flood.append(await socket.receive_json_from())
        still_there = await open_socket(path(sweep.pk), user)  # the server is fine
        second = await still_there.receive_json_from(timeout=5)
        await still_there.disconnect()
        await socket.disconnect()
        return replies, flood, second

    replies, flood, second = async_to_sync(body)()
    errors = replies[:9]
    assert [r["type"] for r in errors] == ["error"] * 9, errors
    assert "Invalid JSON" in errors[0]["message"]
    assert "subscribe" in errors[4]["message"] and "resync" in errors[4]["message"]
    assert "too large" in errors[5]["message"]
    assert "Binary" in errors[8]["message"]
    assert [r["type"] for r in replies[9:12]] == ["snapshot"] * 3
    assert replies[12]["type"] == "error" and replies[12]["message"].startswith("too many resyncs")
    pongs = [m for m in flood if m["type"] == "pong"]
    flood_errors = [m for m in flood if m["type"] == "error"]
    assert 0 < len(pongs) < MESSAGE_BURST + 5 and len(flood_errors) == 1
    assert flood_errors[0]["message"].startswith("too many messages")
    assert second["type"] == "snapshot"


def test_a_deleted_sweep_closes_its_socket_on_resync(direct_delivery, user):
    sweep = make_sweep(user)

    async def body():
        socket = await open_socket(path(sweep.pk), user)
        await socket.receive_json_from(timeout=5)
        await database_sync_to_async(Experiment.objects.filter(sweep=sweep).delete)()
        await database_sync_to_async(Sweep.objects.filter(pk=sweep.pk).delete)()
        await socket.send_json_to({"type": "resync"})
        error = await socket.receive_json_from(timeout=5)
        await expect_closed(socket, CLOSE_NOT_FOUND)
        return error

    assert async_to_sync(body)() == {"type": "error", "message": "This sweep no longer exists."}


def test_a_run_outside_sweeps_publishes_no_sweep_events(direct_delivery, user):
    sweep = make_sweep(user)
    before = events.current_sweep_seq(sweep.pk)
    run = services.experiment_create(owner=user, config=BASE)
    services.experiment_run(experiment_id=run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    # Its end lets the owner's waiting sweeps try to fill (this one has a trial queued: a sweep_status).
    assert events.current_sweep_seq(sweep.pk) - before <= 1
    assert live_sweeps.snapshot(user=user, sweep_id=sweep.pk)["seq"] == events.current_sweep_seq(sweep.pk)

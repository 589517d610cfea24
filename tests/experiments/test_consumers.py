"""Websockets on the real Redis channel layer: access, snapshots, the client protocol, live events.

pytest-asyncio is not installed: each test is sync and runs its async body with
`async_to_sync`. Database reads in the consumers run through `database_sync_to_async`,
so every test here uses a transactional database (committed rows, visible to any thread).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from experiments import events, live, services
from experiments.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, MAX_CLIENT_MESSAGE_BYTES
from experiments.models import EpochMetric, Experiment, Recommendation
from experiments.routing import websocket_urlpatterns
from experiments.tasks import run_experiment
from training.config import TrainingConfig
from training.trainer import METRIC_FIELDS

pytestmark = pytest.mark.django_db(transaction=True)

METRIC_KEYS = set(METRIC_FIELDS)


def make_run(owner, config=None, **fields) -> Experiment:
    """A run row written straight to the database: nothing is enqueued."""
    return Experiment.objects.create(owner=owner, config=TrainingConfig.from_dict(config or {}).to_dict(),
                                     **fields)


def add_metric(experiment, epoch: int) -> EpochMetric:
    values = {name: round(0.1 * epoch + index / 100, 4) for index, name in enumerate(METRIC_FIELDS)}
    return EpochMetric.objects.create(experiment=experiment, epoch=epoch, **values)


async def open_socket(path: str, user) -> WebsocketCommunicator:
    """Connect to `path` as `user` (the scope AuthMiddlewareStack would build)."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


def first_message(path: str, user) -> dict:
    """The first message a socket at `path` receives (the snapshot), then disconnect."""

    async def body():
        socket = await open_socket(path, user)
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return message

    return async_to_sync(body)()


async def expect_closed(communicator: WebsocketCommunicator, code: int) -> None:
    # Refusals accept first, then close, so that browsers see the code.
    message = await communicator.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": code}
    await communicator.disconnect(code=code)  # what the server sends back once the socket is closed


async def receive_until(communicator, predicate, timeout: float = 60.0) -> list[dict]:
    """Every JSON message up to and including the first for which `predicate` is true."""
    received = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; received {[m.get('type') for m in received]}"
        message = await communicator.receive_json_from(timeout=remaining)
        received.append(message)
        if predicate(message):
            return received


# --------------------------------------------------------------------------- access


def test_owner_gets_a_snapshot_of_a_queued_run(user, quick_config):
    experiment = make_run(user, quick_config, name="queued one")

    async def body():
        socket = await open_socket(f"/ws/experiments/{experiment.pk}/", user)
        snapshot = await socket.receive_json_from(timeout=5)
        assert await socket.receive_nothing()
        await socket.disconnect()
        return snapshot

    snapshot = async_to_sync(body)()
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 0
    assert snapshot["metrics"] == [] and snapshot["recommendations"] == []
    state = snapshot["experiment"]
    assert state["id"] == experiment.pk
    assert state["name"] == "queued one"
    assert state["status"] == "queued"
    assert state["config"] == experiment.config
    assert state["config"]["epochs"] == quick_config["epochs"]
    assert state["epochs_done"] == 0
    assert state["best_val_accuracy"] is None and state["test_accuracy"] is None


def test_another_users_run_and_a_missing_run_are_refused_alike(user, other_user):
    experiment = make_run(user)
    missing_id = experiment.pk + 1000

    async def body():
        for who, run_id in ((other_user, experiment.pk), (other_user, missing_id), (user, missing_id)):
            socket = await open_socket(f"/ws/experiments/{run_id}/", who)
            await expect_closed(socket, CLOSE_NOT_FOUND)

    async_to_sync(body)()


def test_anonymous_users_are_refused_on_both_endpoints(user):
    experiment = make_run(user)

    async def body():
        for path in (f"/ws/experiments/{experiment.pk}/", "/ws/experiments/"):
            socket = await open_socket(path, AnonymousUser())
            await expect_closed(socket, CLOSE_UNAUTHENTICATED)

    async_to_sync(body)()


def test_staff_may_watch_any_run(user, staff_user):
    experiment = make_run(user)

    async def body():
        socket = await open_socket(f"/ws/experiments/{experiment.pk}/", staff_user)
        snapshot = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        missing = await open_socket(f"/ws/experiments/{experiment.pk + 1000}/", staff_user)
        await expect_closed(missing, CLOSE_NOT_FOUND)
        return snapshot

    snapshot = async_to_sync(body)()
    assert snapshot["type"] == "snapshot"
    assert snapshot["experiment"]["id"] == experiment.pk


# --------------------------------------------------------------------------- snapshot and protocol


def test_a_mid_run_connect_gets_the_stored_metrics_and_only_newer_events(user):
    experiment = make_run(user, {"epochs": 5}, status=Experiment.Status.RUNNING, epochs_done=2,
                          best_val_accuracy=0.5, best_epoch=2)
    stored = [add_metric(experiment, 1), add_metric(experiment, 2)]
    # Events the client missed: published before it connected.
    events.publish(experiment.pk, user.pk, {"type": "log", "level": "info", "message": "before"})
    last_missed = events.publish(experiment.pk, user.pk, {"type": "progress", "epoch": 3, "epochs": 5,
                                                          "batch": 1, "batches": 10})

    async def body():
        socket = await open_socket(f"/ws/experiments/{experiment.pk}/", user)
        snapshot = await socket.receive_json_from(timeout=5)
        later = await database_sync_to_async(events.publish)(
            experiment.pk, user.pk, {"type": "log", "level": "info", "message": "after"})
        forwarded = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return snapshot, later, forwarded

    snapshot, later, forwarded = async_to_sync(body)()
    assert snapshot["seq"] == last_missed["seq"]
    assert snapshot["experiment"]["status"] == "running"
    assert snapshot["experiment"]["epochs_done"] == 2
    assert snapshot["metrics"] == [live.metric_payload(m) for m in stored]
    assert set(snapshot["metrics"][0]) == {"epoch"} | METRIC_KEYS
    # Forwarded unchanged, and newer than the snapshot.
    assert forwarded == later
    assert forwarded["seq"] > snapshot["seq"]


def test_a_finished_runs_snapshot_has_its_results_and_recommendations(user):
    experiment = make_run(user, {"epochs": 1}, status=Experiment.Status.SUCCEEDED, epochs_done=1,
                          best_val_accuracy=0.8, best_epoch=1, test_accuracy=0.79, test_loss=0.6,
                          performance_category="good", analysis={"verdict": "fine"})
    add_metric(experiment, 1)
    advice = Recommendation.objects.create(experiment=experiment, kind="more_epochs", priority="high",
                                           title="Train longer", rationale="still improving",
                                           changes={"epochs": 20})

    snapshot = first_message(f"/ws/experiments/{experiment.pk}/", user)
    state = snapshot["experiment"]
    assert (state["status"], state["test_accuracy"], state["test_loss"]) == ("succeeded", 0.79, 0.6)
    assert (state["performance_category"], state["analysis"]) == ("good", {"verdict": "fine"})
    assert snapshot["recommendations"] == [live.recommendation_payload(advice)]
    assert snapshot["recommendations"][0]["changes"] == {"epochs": 20}


def test_the_snapshot_carries_the_same_run_object_as_the_rest_detail(user):
    experiment = make_run(user, {"epochs": 2}, status=Experiment.Status.FAILED, epochs_done=1,
                          error_message="boom", message="")
    add_metric(experiment, 1)
    Recommendation.objects.create(experiment=experiment, kind="divergence", priority="critical",
                                  title="Lower the rate", rationale="nan", changes={"learning_rate": 0.001})
    client = Client()
    client.force_login(user)
    rest = client.get(f"/api/experiments/{experiment.pk}/").json()

    snapshot = first_message(f"/ws/experiments/{experiment.pk}/", user)
    state = snapshot["experiment"]
    assert list(state) == list(rest)  # the same fields, in the same order
    # Links are absolute over REST (built from the request) and paths over the socket.
    assert {key: value for key, value in state.items() if key != "links"} == {
        key: value for key, value in rest.items() if key != "links"}
    assert rest["links"]["csv"].endswith(state["links"]["csv"])
    assert state["error_message"] == "boom" and "error" not in state
    assert snapshot["metrics"] == state["metrics"] and snapshot["recommendations"] == state["recommendations"]


def test_ping_resync_and_bad_messages_keep_the_socket_open(user):
    experiment = make_run(user)

    async def body():
        socket = await open_socket(f"/ws/experiments/{experiment.pk}/", user)
        await socket.receive_json_from(timeout=5)  # the snapshot
        replies = []
        await socket.send_json_to({"type": "ping"})
        replies.append(await socket.receive_json_from())
        for bad in ("not json {", json.dumps([1, 2]), json.dumps({"no": "type"}),
                    json.dumps({"type": "shutdown"}),
                    json.dumps({"type": "ping", "pad": "x" * MAX_CLIENT_MESSAGE_BYTES})):
            await socket.send_to(text_data=bad)
            replies.append(await socket.receive_json_from())
        await socket.send_to(bytes_data=b"\x00\x01")
        replies.append(await socket.receive_json_from())
        await database_sync_to_async(add_metric)(experiment, 1)
        await socket.send_json_to({"type": "resync"})
        replies.append(await socket.receive_json_from())
        await socket.send_json_to({"type": "ping"})
        replies.append(await socket.receive_json_from())
        await socket.disconnect()
        return replies

    replies = async_to_sync(body)()
    assert replies[0] == {"type": "pong"}
    errors = replies[1:7]
    assert [r["type"] for r in errors] == ["error"] * 6
    assert "Invalid JSON" in errors[0]["message"]
    assert "shutdown" in errors[3]["message"] and "ping" in errors[3]["message"]
    assert "too large" in errors[4]["message"]
    assert "Binary" in errors[5]["message"]
    assert replies[7]["type"] == "snapshot"
    assert [m["epoch"] for m in replies[7]["metrics"]] == [1]
    assert replies[8] == {"type": "pong"}


def test_the_socket_leaves_the_group_on_disconnect(user):
    experiment = make_run(user)

    async def body():
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        socket = await open_socket(f"/ws/experiments/{experiment.pk}/", user)
        await socket.receive_json_from(timeout=5)
        key = layer._group_key(events.run_group(experiment.pk))
        connection = layer.connection(layer.consistent_hash(events.run_group(experiment.pk)))
        members_while_open = await connection.zcard(key)
        await socket.disconnect()
        return members_while_open, await connection.zcard(key)

    assert async_to_sync(body)() == (1, 0)


# --------------------------------------------------------------------------- the user's status stream


def test_the_status_stream_carries_only_the_users_own_runs(user, other_user):
    mine, theirs = make_run(user, name="mine"), make_run(other_user, name="theirs")

    async def body():
        alice = await open_socket("/ws/experiments/", user)
        bob = await open_socket("/ws/experiments/", other_user)
        await database_sync_to_async(services.experiment_cancel)(experiment=theirs)
        await database_sync_to_async(services.experiment_cancel)(experiment=mine)
        alice_got = await alice.receive_json_from(timeout=5)
        bob_got = await bob.receive_json_from(timeout=5)
        assert await alice.receive_nothing(timeout=0.3)
        assert await bob.receive_nothing(timeout=0.3)
        await alice.send_json_to({"type": "ping"})
        assert await alice.receive_json_from() == {"type": "pong"}
        await alice.disconnect()
        await bob.disconnect()
        return alice_got, bob_got

    alice_got, bob_got = async_to_sync(body)()
    assert (alice_got["type"], alice_got["experiment"], alice_got["status"]) == ("status", mine.pk, "cancelled")
    assert (bob_got["type"], bob_got["experiment"], bob_got["status"]) == ("status", theirs.pk, "cancelled")


# --------------------------------------------------------------------------- a real run, live


def test_a_subscriber_sees_a_real_run_from_start_to_finish(celery_worker, user, quick_config):
    experiment = make_run(user, quick_config)

    async def body():
        run_socket = await open_socket(f"/ws/experiments/{experiment.pk}/", user)
        status_socket = await open_socket("/ws/experiments/", user)
        snapshot = await run_socket.receive_json_from(timeout=5)
        await database_sync_to_async(run_experiment.apply_async)(args=[experiment.pk])  # subscribed first: nothing can be missed
        received = await receive_until(run_socket, lambda m: m["type"] == "finished")
        statuses = await receive_until(status_socket, lambda m: m.get("status") == "succeeded")
        await run_socket.send_json_to({"type": "resync"})
        final = await receive_until(run_socket, lambda m: m["type"] == "snapshot", timeout=5)
        await run_socket.disconnect()
        await status_socket.disconnect()
        return snapshot, received, statuses, final[-1]

    snapshot, received, statuses, final = async_to_sync(body)()
    assert snapshot["seq"] == 0 and snapshot["experiment"]["status"] == "queued"

    assert all(m["experiment"] == experiment.pk for m in received)
    seqs = [m["seq"] for m in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > snapshot["seq"]
    kinds = [m["type"] for m in received]
    assert kinds[0] == "status" and received[0]["status"] == "running"
    assert "progress" in kinds

    epoch_events = [m for m in received if m["type"] == "epoch"]
    assert [m["epoch"] for m in epoch_events] == [1, 2, 3]
    assert all(METRIC_KEYS <= set(m) and m["epochs"] == 3 for m in epoch_events)
    stored = [live.metric_payload(m) for m in EpochMetric.objects.filter(experiment=experiment)]
    assert [{key: m[key] for key in ("epoch", *METRIC_KEYS)} for m in epoch_events] == stored

    finished = received[-1]
    experiment.refresh_from_db()
    assert finished["status"] == "succeeded" == experiment.status
    assert finished["test_accuracy"] == experiment.test_accuracy
    assert finished["best_val_accuracy"] == experiment.best_val_accuracy

    assert [m["status"] for m in statuses] == ["running", "succeeded"]
    assert {m["seq"] for m in statuses} <= set(seqs)  # the same events, same numbers

    assert final["seq"] >= finished["seq"]
    assert final["metrics"] == stored
    assert final["experiment"]["status"] == "succeeded"
    assert final["experiment"]["test_accuracy"] == experiment.test_accuracy


# --------------------------------------------------------------------------- the full ASGI stack


def _session_headers(username: str, password: str, origin: bytes) -> list[tuple[bytes, bytes]]:
    client = Client()
    assert client.login(username=username, password=password)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"cookie", cookie.encode()), (b"origin", origin), (b"host", b"localhost")]


def test_the_asgi_application_authenticates_by_session_cookie(user, other_user):
    from tuner_site.asgi import application

    experiment = make_run(user)
    path = f"/ws/experiments/{experiment.pk}/"

    async def connect(headers):
        socket = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await socket.connect(timeout=5)
        return socket, connected, code

    alice = _session_headers("alice", "alice-password-1", b"http://localhost")
    bob = _session_headers("bob", "bob-password-1", b"http://localhost")

    async def body():
        socket, connected, _ = await connect(alice)
        assert connected
        snapshot = await socket.receive_json_from(timeout=5)
        await socket.disconnect()

        stranger, connected, _ = await connect(bob)
        assert connected
        await expect_closed(stranger, CLOSE_NOT_FOUND)

        anonymous, connected, _ = await connect([(b"origin", b"http://localhost")])
        assert connected
        await expect_closed(anonymous, CLOSE_UNAUTHENTICATED)
        return snapshot

    snapshot = async_to_sync(body)()
    assert snapshot["type"] == "snapshot" and snapshot["experiment"]["id"] == experiment.pk


def test_the_asgi_application_refuses_a_foreign_origin(user):
    from tuner_site.asgi import application

    experiment = make_run(user)

    foreign_origin = _session_headers("alice", "alice-password-1", b"https://evil.example")
    no_origin = [header for header in foreign_origin if header[0] != b"origin"]

    async def body():
        results = []
        for headers in (foreign_origin, no_origin):
            socket = WebsocketCommunicator(application, f"/ws/experiments/{experiment.pk}/", headers=headers)
            results.append(await socket.connect(timeout=5))
        return results

    foreign, missing = async_to_sync(body)()
    assert foreign[0] is False  # closed before the handshake: Daphne answers HTTP 403
    assert missing[0] is False


# --------------------------------------------------------------------------- idle sockets

IDLE_SECONDS = 6  # longer than channels_redis's 5 s blocking pop (and redis-py 8's default read timeout)


def _idle_socket_still_forwards_events(user) -> None:
    experiment = make_run(user)

    async def body():
        socket = await open_socket(f"/ws/experiments/{experiment.pk}/", user)
        await socket.receive_json_from(timeout=5)
        await asyncio.sleep(IDLE_SECONDS)  # a queued run: nothing happens for a while
        sent = await database_sync_to_async(events.publish)(
            experiment.pk, user.pk, {"type": "log", "level": "info", "message": "still there?"})
        try:
            assert await socket.receive_json_from(timeout=5) == sent
        finally:
            await socket.disconnect()

    async_to_sync(body)()


def test_an_idle_socket_keeps_forwarding_events(user):
    # Regression: redis-py 8's default 5 s read timeout killed idle consumers (channels_redis#422).
    _idle_socket_still_forwards_events(user)

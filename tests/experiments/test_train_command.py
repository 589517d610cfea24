"""`manage.py train`: queue a run from the shell and follow it live, against the real worker."""

from __future__ import annotations

import io
import json
import os
import signal

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from django.core.management import CommandError, call_command

from experiments import events
from experiments.management.commands import train
from experiments.models import Experiment
from tests.conftest import wait_for_status

QUICK_FLAGS = ("--hidden-layers", "32", "--epochs", "2", "--train-size", "1000")


def run_train(*args):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("train", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def test_follow_shows_every_epoch_and_the_result(celery_worker, user):
    stdout, _ = run_train(*QUICK_FLAGS, "--follow", "--user", "alice", "--name", "from the shell")

    experiment = Experiment.objects.get(owner=user)
    assert experiment.status == Experiment.Status.SUCCEEDED
    assert experiment.name == "from the shell"
    assert experiment.config["hidden_layers"] == [32] and experiment.config["epochs"] == 2
    assert f"Queued run #{experiment.pk} for alice" in stdout
    assert "epoch   1  loss" in stdout and "epoch   2  loss" in stdout
    assert stdout.count("epoch   2  loss") == 1  # snapshot and events overlap, lines do not
    assert f"Run #{experiment.pk}: succeeded" in stdout
    assert f"test accuracy:     {experiment.test_accuracy:.4f}" in stdout
    assert f"best val accuracy: {experiment.best_val_accuracy:.4f}" in stdout


def test_follow_with_json_prints_one_json_line_on_stdout(celery_worker, user):
    stdout, stderr = run_train(*QUICK_FLAGS, "--follow", "--json", "--quiet", "--user", "alice")

    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    experiment = Experiment.objects.get(owner=user)
    assert result["id"] == experiment.pk
    assert result["status"] == "succeeded"
    assert result["test_accuracy"] == experiment.test_accuracy
    assert result["config"] == experiment.config
    assert "test accuracy" in stderr and "epoch   2  loss" in stderr


def test_lost_events_are_recovered_from_the_database(celery_worker, user, monkeypatch):
    publish = events.publish

    def lossy_publish(experiment_id, owner_id, event, **kwargs):
        if event["type"] in ("epoch", "finished"):
            events.next_seq(experiment_id)  # numbered, never delivered: a gap
            return None
        return publish(experiment_id, owner_id, event, **kwargs)

    monkeypatch.setattr(events, "publish", lossy_publish)
    stdout, _ = run_train(*QUICK_FLAGS, "--follow", "--quiet", "--user", "alice")

    assert "epoch   1  loss" in stdout and "epoch   2  loss" in stdout
    assert "succeeded" in stdout and "test accuracy" in stdout


def test_a_failing_channel_layer_receive_is_retried(celery_worker, user, monkeypatch):
    receive = RedisChannelLayer.receive
    calls = []

    async def flaky_receive(layer, channel):
        calls.append(channel)
        if len(calls) == 1:  # what redis-py 8 does to an idle BZPOPMIN (see tuner_site/settings.py)
            raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379")
        return await receive(layer, channel)

    monkeypatch.setattr(RedisChannelLayer, "receive", flaky_receive)
    stdout, _ = run_train(*QUICK_FLAGS, "--follow", "--quiet", "--user", "alice")

    assert "live events interrupted: TimeoutError" in stdout
    assert "epoch   2  loss" in stdout and "test accuracy" in stdout
    assert len(calls) > 2  # it kept receiving events after the failure


def test_ctrl_c_stops_following_but_not_the_run(celery_worker, user, monkeypatch, settings):
    # ~0.75 s an epoch: the run is still training when the Ctrl-C lands (unslowed, its 4 tiny
    # epochs could all be reported before the follow saw the cancellation).
    settings.TUNER_BATCH_DELAY_SECONDS = 0.05
    show_epoch = train._RunView._epoch

    def interrupted_after_first_epoch(view, metrics):
        show_epoch(view, metrics)
        os.kill(os.getpid(), signal.SIGINT)  # asyncio.run turns it into cancelling the follow

    monkeypatch.setattr(train._RunView, "_epoch", interrupted_after_first_epoch)
    stdout, _ = run_train("--hidden-layers", "32", "--epochs", "4", "--train-size", "1000",
                          "--follow", "--quiet", "--user", "alice")

    experiment = Experiment.objects.get(owner=user)
    assert f"Stopped following. Run #{experiment.pk} continues in the background" in stdout
    assert "test accuracy" not in stdout
    wait_for_status(experiment, Experiment.Status.SUCCEEDED)
    assert not experiment.cancel_requested


# --------------------------------------------------------------------------- without a worker
# The `db` fixture wraps each test in a transaction that is rolled back, so the run's
# on-commit enqueue never happens: nothing reaches the queue.


def test_without_follow_the_only_superuser_owns_the_queued_run(db, staff_user):
    stdout, _ = run_train("--epochs", "2", "--name", "nightly", "--json")

    result = json.loads(stdout.strip().splitlines()[-1])
    experiment = Experiment.objects.get(pk=result["id"])
    assert experiment.owner == staff_user
    assert result["status"] == "queued" == experiment.status
    assert experiment.config["epochs"] == 2


def test_invalid_flags_exit_2_listing_every_field_error(db, user):
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("train", "--epochs", "0", "--learning-rate", "-1", "--activation", "sigmoid",
                     "--hidden-layers", "32", "wide", "--train-size", "5", "--user", "alice",
                     stdout=io.StringIO(), stderr=stderr)

    assert exited.value.code == 2
    output = stderr.getvalue()
    assert "invalid configuration" in output
    for flag in ("--epochs", "--learning-rate", "--activation", "--hidden-layers", "--train-size"):
        assert f"  {flag}: " in output
    assert "sigmoid" in output and "'wide'" in output
    assert not Experiment.objects.exists()


def test_an_unknown_user_is_an_error(db, user):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run_train("--epochs", "1", "--user", "nobody")
    assert not Experiment.objects.exists()


def test_without_user_and_without_a_single_superuser_is_an_error(db, user):
    with pytest.raises(CommandError, match="--user NAME"):
        run_train("--epochs", "1")


def test_quota_exceeded_is_a_clear_error(db, user, settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 0
    with pytest.raises(CommandError, match=r"limit 0") as raised:
        run_train("--epochs", "1", "--user", "alice")
    assert raised.value.returncode == 1
    assert not Experiment.objects.exists()

"""Run files in the artifact storage: a checkpoint lives only while its run may still train, the final
weights stay; every user's stored bytes are capped (TUNER_MAX_STORAGE_BYTES_PER_USER); `prune_artifacts`
cleans up. The storage tests run on both backends: the filesystem and an S3-compatible server (moto's
standalone server, a real HTTP endpoint in its own process)."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
from django.core.management import call_command

from experiments import services, storage
from experiments.models import Experiment, Sweep
from experiments.services import artifacts
from tests.conftest import wait_for, wait_for_status
from tests.s3server import MotoServer, s3_storages_entry
from training.config import TrainingConfig

Status = Experiment.Status

# Runs of a sweep in these tests: tiny real trainings.
BASE = {"hidden_layers": [16], "epochs": 2, "train_size": 600, "batch_size": 64, "lr_schedule": "constant",
        "dropout": 0.0, "learning_rate": 0.003}
LR_RANGE = {"learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"}}


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, settings, tmp_path):
    """The artifact storage of one test: a fresh directory, or a fresh bucket on the moto server."""
    if request.param == "filesystem":
        settings.TUNER_ARTIFACT_DIR = tmp_path / "artifacts"
        entry = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                 "OPTIONS": {"location": str(settings.TUNER_ARTIFACT_DIR)}}
    else:
        server = request.getfixturevalue("moto_server")
        entry = s3_storages_entry(server.endpoint, server.create_bucket())
    settings.STORAGES = {**settings.STORAGES, "artifacts": entry}
    assert storage.artifact_storage().__class__.__name__ == (
        "FileSystemStorage" if request.param == "filesystem" else "S3Storage")
    return request.param


def checkpoint_name(experiment: Experiment | int) -> str:
    return services.artifact_path("checkpoints", getattr(experiment, "pk", experiment))


def exists(name: str) -> bool:
    return storage.stat(name) is not None


class checkpoint_file:  # noqa: N801 - reads like the Path it replaced
    """A run's checkpoint in the artifact storage, with the two questions the tests ask."""

    def __init__(self, experiment: Experiment | int):
        self.name = checkpoint_name(experiment)

    def exists(self) -> bool:
        return exists(self.name)

    def size(self) -> int:
        return storage.size(self.name)


def stop_at(monkeypatch, *, epoch: int, action) -> dict:
    """Call `action(monitor)` at the second batch of `epoch`; the returned dict tells whether a
    checkpoint was on disk at that moment (so the test knows one existed before the run ended)."""
    seen: dict = {}
    original = services.RunMonitor.on_batch

    def on_batch(self, current_epoch, batch, batches):
        if current_epoch == epoch and batch == 2 and not seen:
            seen["checkpoint_existed"] = checkpoint_file(self.experiment_id).exists()
            action(self)
        return original(self, current_epoch, batch, batches)

    monkeypatch.setattr(services.RunMonitor, "on_batch", on_batch)
    return seen


class SimulatedCrash(BaseException):
    """A worker process dying: not an Exception, so nothing catches it."""


def crash(monitor):
    raise SimulatedCrash()


def fail(monitor):
    raise RuntimeError("the disk caught fire")


def request_cancel(monitor):
    Experiment.objects.filter(pk=monitor.experiment_id).update(cancel_requested=True)


# --------------------------------------------------------------------------- a run's end


def test_a_run_trained_by_the_worker_keeps_its_weights_and_loses_its_checkpoint(backend, celery_worker, user,
                                                                               quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config)
    wait_for_status(experiment, Status.SUCCEEDED)
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).weights_bytes > 0, message="weights size recorded")
    experiment.refresh_from_db()
    assert experiment.weights_path == f"weights/experiment-{experiment.pk}.npz"
    assert experiment.weights_bytes == storage.size(experiment.weights_path) > 0
    assert experiment.checkpoint_path and not exists(experiment.checkpoint_path)
    assert experiment.checkpoint_bytes == 0


@pytest.mark.parametrize("action, status", [(fail, Status.FAILED), (request_cancel, Status.CANCELLED)])
def test_a_run_that_ends_early_loses_its_checkpoint_too(backend, direct_delivery, user, quick_config, monkeypatch, settings,
                                                        action, status):
    settings.TUNER_CANCEL_POLL_SECONDS = 0  # the cancel is seen at the next batch, not after the run is done
    experiment = services.experiment_create(owner=user, config=quick_config)
    seen = stop_at(monkeypatch, epoch=2, action=action)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == status and seen["checkpoint_existed"]
    assert not checkpoint_file(experiment).exists()
    assert (experiment.checkpoint_bytes, experiment.weights_bytes, experiment.weights_path) == (0, 0, "")


def test_a_diverged_run_loses_its_checkpoint(backend, direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config={**quick_config, "optimizer": "sgd",
                                                                "learning_rate": 10.0})
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.DIVERGED
    assert not checkpoint_file(experiment).exists() and experiment.checkpoint_bytes == 0


def test_a_run_given_up_after_its_attempts_loses_its_checkpoint(backend, direct_delivery, user, quick_config, monkeypatch,
                                                                settings):
    experiment = services.experiment_create(owner=user, config=quick_config)
    stop_at(monkeypatch, epoch=2, action=crash)
    with pytest.raises(SimulatedCrash):
        services.experiment_run(experiment_id=experiment.pk)
    assert checkpoint_file(experiment).exists()
    settings.TUNER_MAX_ATTEMPTS = 1
    services.experiment_run(experiment_id=experiment.pk)  # the next delivery gives up
    experiment.refresh_from_db()
    assert experiment.status == Status.FAILED and "gave up" in experiment.error_message
    assert not checkpoint_file(experiment).exists() and experiment.checkpoint_bytes == 0


def test_a_handed_back_run_keeps_its_checkpoint_with_its_size_and_resumes_from_it(
        backend, direct_delivery, user, quick_config, monkeypatch):
    experiment = services.experiment_create(owner=user, config={**quick_config, "epochs": 4})
    stop_at(monkeypatch, epoch=3, action=lambda monitor: services.request_worker_stop())
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.QUEUED and experiment.epochs_done == 2
    checkpoint = checkpoint_file(experiment)
    assert checkpoint.exists()
    # Recorded after each epoch: the size of the checkpoint on disk then (epoch 1's, when epoch 2 was
    # stored); a later one only adds its epoch's metrics to the history it carries.
    assert 0.98 * checkpoint.size() < experiment.checkpoint_bytes <= checkpoint.size()
    monkeypatch.undo()

    services.experiment_run(experiment_id=experiment.pk)  # the hand-back's new delivery
    experiment.refresh_from_db()
    assert experiment.status == Status.SUCCEEDED and experiment.epochs_done == 4
    assert not checkpoint.exists() and experiment.checkpoint_bytes == 0
    assert experiment.weights_bytes == storage.size(experiment.weights_path)


def test_on_run_ended_is_idempotent_and_leaves_active_runs_alone(backend, direct_delivery, user, quick_config):
    experiment = services.experiment_create(owner=user, config=quick_config)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    before = (experiment.checkpoint_bytes, experiment.weights_bytes)
    artifacts.on_run_ended(experiment)  # the reconciler finishing what it thinks is pending
    artifacts.on_run_ended(experiment)
    experiment.refresh_from_db()
    assert (experiment.checkpoint_bytes, experiment.weights_bytes) == before and before[1] > 0

    queued = services.experiment_create(owner=user, config=quick_config)
    stale = checkpoint_name(queued)
    storage.save_bytes(stale, b"x" * 100)
    Experiment.objects.filter(pk=queued.pk).update(checkpoint_path=stale, checkpoint_bytes=100)
    queued.refresh_from_db()
    artifacts.on_run_ended(queued)  # a late call for a run that was queued again (a retried trial)
    queued.refresh_from_db()
    assert exists(stale) and queued.checkpoint_bytes == 100


# --------------------------------------------------------------------------- the storage limit


def weights_of(config: dict) -> int:
    return TrainingConfig.from_dict(config).parameter_count * 4


def test_creating_a_run_at_the_storage_limit_is_refused_with_409_and_says_why(
        db, api_client, user, other_user, settings, quick_config):
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = 10 * 2**20
    stored = services.experiment_create(owner=user, config=quick_config)
    theirs = services.experiment_create(owner=other_user, config=quick_config)
    Experiment.objects.filter(pk=theirs.pk).update(weights_bytes=50 * 2**20)  # other users' runs do not count
    Experiment.objects.filter(pk=stored.pk).update(weights_bytes=6 * 2**20, checkpoint_bytes=4 * 2**20 - 1)
    assert api_client.post("/api/experiments/", {"config": quick_config}, format="json").status_code == 201

    Experiment.objects.filter(pk=stored.pk).update(checkpoint_bytes=4 * 2**20)
    response = api_client.post("/api/experiments/", {"config": quick_config}, format="json")
    assert response.status_code == 409, response.json()
    detail = response.json()["detail"]
    assert "10.0 MiB" in detail and "limit" in detail and "delete runs you no longer need" in detail.lower()
    with pytest.raises(services.StorageLimitExceeded):
        services.experiment_rerun(experiment=stored, owner=user)


def test_a_run_whose_weights_alone_exceed_the_limit_is_refused(db, api_client, settings):
    config = {"hidden_layers": [2048, 2048, 2048], "epochs": 1, "train_size": 100}
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = weights_of(config) - 1
    response = api_client.post("/api/experiments/", {"config": config}, format="json")
    assert response.status_code == 409
    assert "parameters" in response.json()["detail"] and "smaller network" in response.json()["detail"]
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = weights_of(config)
    assert api_client.post("/api/experiments/", {"config": config}, format="json").status_code == 201


def test_a_limit_of_zero_means_unlimited(db, user, settings, quick_config):
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = 0
    stored = services.experiment_create(owner=user, config=quick_config)
    Experiment.objects.filter(pk=stored.pk).update(weights_bytes=2**50)
    services.experiment_create(owner=user, config={"hidden_layers": [2048, 2048, 2048]})


def test_a_sweep_whose_next_trial_would_exceed_the_limit_stops_with_the_message(direct_delivery, user, settings):
    # Room for the first trial's weights estimate, but its stored file (a few hundred bytes of
    # npz headers more) reaches the limit: the second trial is refused and the sweep stops.
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = weights_of(BASE)
    sweep = services.sweep_create(owner=user, base_config=BASE, space=LR_RANGE, strategy="random", budget=3,
                                  parallelism=1, seed=1)
    (first,) = Experiment.objects.filter(sweep=sweep)
    services.experiment_run(experiment_id=first.pk)
    sweep.refresh_from_db()
    assert list(Experiment.objects.filter(sweep=sweep).values_list("trial_number", "status")) == [
        (1, Status.SUCCEEDED)]
    assert sweep.status == Sweep.Status.FINISHED
    assert sweep.message.startswith("stopped after 1 of 3 trials") and "delete runs" in sweep.message.lower()

    with pytest.raises(services.StorageLimitExceeded):  # a new sweep is refused up front
        services.sweep_create(owner=user, base_config=BASE, space=LR_RANGE, strategy="random", budget=2)


# --------------------------------------------------------------------------- prune_artifacts


def write(name: str, size: int, *, age_seconds: float = 0) -> str:
    """A file `name` in the artifact storage (backdated by `age_seconds`: the filesystem only)."""
    storage.save_bytes(name, os.urandom(size))
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(storage.artifact_storage().path(name), (then, then))
    return name


def test_prune_artifacts_deletes_orphans_ended_runs_checkpoints_and_old_temporaries(backend, db, user, settings,
                                                                                   quick_config):
    finished = services.experiment_create(owner=user, config=quick_config)
    running = services.experiment_create(owner=user, config=quick_config)
    gone = services.experiment_create(owner=user, config=quick_config)
    files = {
        "finished weights": write(f"weights/experiment-{finished.pk}.npz", 3000),
        "finished checkpoint": write(f"checkpoints/experiment-{finished.pk}.npz", 5000),
        "running checkpoint": write(f"checkpoints/experiment-{running.pk}.npz", 7000),
        "orphan weights": write(f"weights/experiment-{gone.pk}.npz", 11000),
        "orphan checkpoint": write(f"checkpoints/experiment-{gone.pk}.npz", 13000),
        "dataset cache": write("cache/fashion-mnist-123-train-images.npy", 23000),
        "unknown file": write("weights/notes.txt", 29),
    }
    doomed = ["finished checkpoint", "orphan weights", "orphan checkpoint"]
    freed = 5000 + 11000 + 13000
    if backend == "filesystem":  # only a local write-then-rename leaves temporaries (S3: one PUT)
        files["old temporary"] = write(f"weights/experiment-{running.pk}.ab12.tmp.npz", 17000, age_seconds=7200)
        files["fresh temporary"] = write(f"checkpoints/experiment-{running.pk}.npz.cd34.tmp.npz", 19000)
        doomed.append("old temporary")
        freed += 17000
    # A row written before the storage API holds an absolute path under TUNER_ARTIFACT_DIR.
    legacy = str(settings.TUNER_ARTIFACT_DIR / files["finished weights"]) if backend == "filesystem" else None
    Experiment.objects.filter(pk=finished.pk).update(
        status=Status.SUCCEEDED, weights_path=legacy or files["finished weights"], weights_bytes=1,
        checkpoint_path=files["finished checkpoint"], checkpoint_bytes=5000)
    Experiment.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, checkpoint_path=files["running checkpoint"], checkpoint_bytes=0)
    Experiment.objects.filter(pk=gone.pk).delete()

    out = io.StringIO()
    call_command("prune_artifacts", "--dry-run", stdout=out)
    assert all(exists(name) for name in files.values())
    for name in doomed:
        assert files[name] in out.getvalue()
    assert f"would free {freed:,} bytes" in out.getvalue()
    assert Experiment.objects.get(pk=finished.pk).weights_bytes == 1  # nothing written either

    out = io.StringIO()
    call_command("prune_artifacts", stdout=out)
    assert {label for label, name in files.items() if not exists(name)} == set(doomed)
    assert f"freed {freed:,} bytes" in out.getvalue()
    finished.refresh_from_db()
    running.refresh_from_db()
    assert (finished.weights_bytes, finished.checkpoint_bytes) == (3000, 0)
    assert (running.weights_bytes, running.checkpoint_bytes) == (0, 7000)

    out = io.StringIO()
    call_command("prune_artifacts", stdout=out)  # a second pass finds nothing left to do
    assert "freed 0 bytes" in out.getvalue() and "0 run(s) corrected" in out.getvalue()


def test_prune_artifacts_keeps_the_checkpoint_of_a_run_handed_back_to_the_queue(backend, db, user, quick_config):
    queued = services.experiment_create(owner=user, config=quick_config)
    checkpoint = write(f"checkpoints/experiment-{queued.pk}.npz", 4000)
    Experiment.objects.filter(pk=queued.pk).update(checkpoint_path=checkpoint, epochs_done=2)
    call_command("prune_artifacts", stdout=io.StringIO())
    assert exists(checkpoint)
    assert Experiment.objects.get(pk=queued.pk).checkpoint_bytes == 4000


# --------------------------------------------------------------------------- the storage itself


def test_a_checkpoint_is_replaced_whole_and_a_failed_write_keeps_the_previous_one(backend, monkeypatch):
    name = "checkpoints/experiment-999001.npz"
    checkpoint = storage.StorageCheckpoint(name)
    assert checkpoint.load() is None
    checkpoint.save(b"first" * 1000)
    checkpoint.save(b"second" * 2000)
    assert checkpoint.load() == b"second" * 2000 and storage.size(name) == 12000

    # A writer dying mid-upload: the first half of the bytes reaches the server/disk, then it fails.
    if backend == "filesystem":
        real_fsync = os.fsync

        def dying_fsync(fd):
            real_fsync(fd)
            raise OSError("disk gone mid-write")

        monkeypatch.setattr(os, "fsync", dying_fsync)
    else:
        import botocore.awsrequest

        def dying_send(self, *args, **kwargs):
            raise ConnectionError("connection lost mid-upload")

        monkeypatch.setattr(botocore.awsrequest.AWSConnection, "send", dying_send, raising=False)
        monkeypatch.setattr(botocore.awsrequest.AWSHTTPConnection, "send", dying_send)
    with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises
        checkpoint.save(b"torn" * 5000)
    monkeypatch.undo()
    assert checkpoint.load() == b"second" * 2000  # the latest complete checkpoint, never a torn one
    assert storage.list_files("checkpoints") == [name]  # no temporary left behind either


def test_a_run_resumes_from_the_latest_complete_checkpoint_in_the_storage(backend, direct_delivery, user,
                                                                         quick_config, monkeypatch):
    """Crash during epoch 3 of 4: the next delivery loads epoch 2's checkpoint from the storage, trains
    epochs 3-4 only, and ends with the numbers of an uninterrupted run."""
    config = {**quick_config, "epochs": 4}
    reference = services.experiment_create(owner=user, config=config)
    services.experiment_run(experiment_id=reference.pk)
    reference.refresh_from_db()

    experiment = services.experiment_create(owner=user, config=config)
    stop_at(monkeypatch, epoch=3, action=crash)
    with pytest.raises(SimulatedCrash):
        services.experiment_run(experiment_id=experiment.pk)
    monkeypatch.undo()
    saved = storage.read_bytes(checkpoint_name(experiment))
    with np.load(io.BytesIO(saved)) as stored:
        assert '"epoch": 2' in str(stored["meta"])

    trained: list[int] = []
    original = services.RunMonitor.on_epoch
    monkeypatch.setattr(services.RunMonitor, "on_epoch",
                        lambda self, metrics: (trained.append(metrics.epoch), original(self, metrics))[1])
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == Status.SUCCEEDED and trained == [3, 4]
    assert experiment.test_accuracy == reference.test_accuracy
    assert storage.read_bytes(experiment.weights_path) == storage.read_bytes(reference.weights_path)
    assert not exists(checkpoint_name(experiment))


def test_legacy_absolute_paths_map_to_storage_names(settings, tmp_path):
    settings.TUNER_ARTIFACT_DIR = tmp_path / "artifacts"
    assert storage.name_of(str(tmp_path / "artifacts" / "weights" / "experiment-3.npz")) == "weights/experiment-3.npz"
    assert storage.name_of("weights/experiment-3.npz") == "weights/experiment-3.npz"
    assert storage.name_of(str(tmp_path / "elsewhere.npz")) == "" and storage.name_of("") == ""


def test_stored_weights_are_about_the_estimate(backend, direct_delivery, user):
    experiment = services.experiment_create(owner=user, config=BASE)
    services.experiment_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    with np.load(io.BytesIO(storage.read_bytes(experiment.weights_path))) as stored:
        arrays = sum(stored[name].nbytes for name in stored.files if name != "class_names")
    assert arrays == weights_of(BASE)
    assert weights_of(BASE) < experiment.weights_bytes < weights_of(BASE) + 4096

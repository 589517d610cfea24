"""A worker on a second host with no shared disk: a Celery worker in its own network namespace
(tests/reliability/netns.py), with its own empty var and artifact directories, reaching PostgreSQL,
Redis and an S3-compatible server (moto's standalone server) only over a veth link. It trains runs
(checkpoints and weights in the bucket), is SIGKILLed mid-run, a worker on this host resumes the run
from the bucket's checkpoint, and the web side serves weights, predictions and misclassified images
of both runs from the bucket."""

from __future__ import annotations

import io
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from experiments import inference, services, storage
from experiments.models import EpochMetric, Experiment
from tests.conftest import wait_for, wait_for_status
from tests.reliability import CONFIG, epochs_of, is_postgres, wait_for_epoch
from tests.reliability.netns import NetnsUnavailable, RemoteHost
from tests.s3server import s3_environment, s3_storages_entry
from tests.s3server import stored_checkpoint_epoch as checkpoint_epoch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KILL_AFTER_EPOCH = 2


@pytest.fixture
def remote_host(settings):
    """The namespace, its veth link, forwarders to PostgreSQL and Redis, and moto on the link; the
    artifact storage of this process (the web side) pointed at moto's bucket."""
    if not is_postgres():
        pytest.skip("the namespaced worker reaches the database over TCP: needs PostgreSQL, not SQLite")
    db = settings.DATABASES["default"]
    redis = urlparse(settings.REDIS_URL)
    try:
        host = RemoteHost(postgres=(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)),
                          redis=(redis.hostname or "127.0.0.1", redis.port or 6379)).__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces unavailable: {exc}")
    try:
        bucket = host.moto.create_bucket()
        settings.STORAGES = {**settings.STORAGES, "artifacts": s3_storages_entry(host.moto.endpoint, bucket)}
        host.bucket = bucket
        inference.clear_caches()
        yield host
    finally:
        inference.clear_caches()
        host.close()


def test_a_worker_on_another_host_trains_from_the_bucket_and_its_runs_resume_here(remote_host, workers, user,
                                                                                settings):
    started = time.monotonic()
    db = settings.DATABASES["default"]
    remote_dir = Path(tempfile.mkdtemp(prefix="tuner-remote-host-"))
    remote_env = {
        # The three settings of a worker on another machine: database, Redis, storage.
        "DATABASE_URL": remote_host.database_url(db.get("USER") or "postgres", db.get("PASSWORD") or "", db["NAME"]),
        "REDIS_URL": remote_host.redis_url(int(urlparse(settings.REDIS_URL).path.lstrip("/") or 0)),
        **s3_environment(remote_host.moto.endpoint, remote_host.bucket),
        # Its own empty var and artifact directories (the host's are not on that machine).
        "TUNER_VAR_DIR": str(remote_dir / "var"), "TUNER_ARTIFACT_DIR": str(remote_dir / "artifacts"),
        "TUNER_CACHE_DIR": str(remote_dir / "var" / "cache"),
        "TUNER_RECONCILE_INTERVAL_SECONDS": "3600",
    }
    # From inside, this host's loopback servers are out of reach; the forwarded ones are not.
    assert not remote_host.can_connect_from_inside("127.0.0.1", int(db.get("PORT") or 5432))
    assert remote_host.can_connect_from_inside(remote_host.host_address, remote_host.postgres.port)
    remote = workers(env=remote_env, prefix=remote_host.worker_prefix)
    remote.wait_ready()

    first = services.experiment_create(owner=user, config={**CONFIG, "epochs": 3})
    second = services.experiment_create(owner=user, config=CONFIG)  # 8 epochs
    wait_for_status(first, Experiment.Status.SUCCEEDED, timeout=120)
    wait_for_epoch(second, KILL_AFTER_EPOCH, remote)
    wait_for(lambda: checkpoint_epoch(second.pk) >= KILL_AFTER_EPOCH, 30, message="the checkpoint in the bucket")
    remote.kill(signal.SIGKILL)
    remote.wait_exit(10)
    killed_at = time.monotonic()
    second.refresh_from_db()
    resume_epoch = checkpoint_epoch(second.pk)
    assert second.status == Experiment.Status.RUNNING and KILL_AFTER_EPOCH <= resume_epoch < 8
    assert f":{remote.pid}" in second.worker_host and f":{remote.pid}" in first.worker_host
    before = dict(EpochMetric.objects.filter(experiment=second).values_list("epoch", "seconds"))

    # Nothing reached a disk: not the namespaced host's, not this one's.
    assert not [p for p in remote_dir.rglob("*.npz")], "the remote worker wrote run files to its own disk"
    assert not list(Path(settings.TUNER_ARTIFACT_DIR).glob(f"*/experiment-{second.pk}.npz"))

    host_worker = workers(env=s3_environment(remote_host.moto.endpoint, remote_host.bucket))
    host_worker.wait_ready()
    Experiment.objects.filter(pk=second.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(seconds=5))
    assert services.runs_reconcile(stale_after_seconds=1)["requeued_stale"] == [second.pk]
    wait_for_status(second, Experiment.Status.SUCCEEDED, timeout=120)
    finished_at = time.monotonic()

    # Resumed, not restarted: the epochs up to the bucket's checkpoint were never trained again.
    assert second.attempts == 2 and f":{host_worker.pid}" in second.worker_host
    assert epochs_of(second) == list(range(1, 9))
    after = dict(EpochMetric.objects.filter(experiment=second).values_list("epoch", "seconds"))
    retrained = [epoch for epoch in after if before.get(epoch) != after[epoch]]
    assert retrained == list(range(resume_epoch + 1, 9))
    assert checkpoint_epoch(second.pk) == 0  # the checkpoint went when the run ended

    # The web side serves both runs from the bucket.
    client = APIClient()
    client.force_authenticate(user)
    for run in (first, second):
        run.refresh_from_db()
        assert run.weights_path == f"weights/experiment-{run.pk}.npz" and run.weights_bytes > 0
        response = client.get(f"/api/experiments/{run.pk}/weights/")
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        assert body == storage.read_bytes(run.weights_path)
        assert np.load(io.BytesIO(body))["W0"].shape == (784, 32)
        prediction = client.post(f"/api/experiments/{run.pk}/predict/", {"test_index": 7}, format="json")
        assert prediction.status_code == 200, prediction.content
        assert abs(sum(prediction.json()["probabilities"]) - 1) < 1e-4
        misclassified = client.get(f"/api/experiments/{run.pk}/misclassified/?limit=5")
        assert misclassified.status_code == 200, misclassified.content
        assert misclassified.json()["total"] > 0
        assert client.get(f"/api/experiments/{run.pk}/filters/").status_code == 200
    assert not [p for p in remote_dir.rglob("*.npz")]
    print(f"\nnamespaced worker: run #{first.pk} trained there (3 epochs); run #{second.pk} killed after epoch "
          f"{max(before)} stored (bucket checkpoint: epoch {resume_epoch}), resumed here from epoch "
          f"{resume_epoch + 1}, finished 8 epochs {finished_at - killed_at:.1f} s after the kill; "
          f"whole scenario {time.monotonic() - started:.1f} s")

"""A worker on a second host with no shared disk, measured (see README "Deployment").

    .venv/bin/python bench/remote_worker.py [--rounds 3]      # as root (ip netns)

Its own stack: a scratch PostgreSQL database (on the server DATABASE_URL names; SQLite cannot be
reached over the network), a redis-server of its own, and a network namespace joined by a veth pair
(tests/reliability/netns.py) with TCP forwarders to both and moto's S3 server on the link. Per
round: a Celery worker in the namespace (its own empty var and artifact directories; only
DATABASE_URL, REDIS_URL and the storage settings point outside) takes an 8-epoch run, is SIGKILLed
after epoch 2, a worker on this host resumes it from the bucket's checkpoint; then the web side
(Django's test client) downloads the weights and asks for a prediction, from the bucket. Prints
the epochs stored before the kill, the checkpoint epoch, the epochs trained again, and the times.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from scratch_db import create_database, drop_database  # noqa: E402

from tests.reliability import PrivateRedis, Worker  # noqa: E402
from tests.reliability.netns import NetnsUnavailable, RemoteHost  # noqa: E402
from tests.s3server import s3_environment  # noqa: E402
from tests.s3server import stored_checkpoint_epoch as checkpoint_epoch  # noqa: E402

RUN_ID = f"tuner-remote-{uuid.uuid4().hex[:8]}"
CONFIG = {"hidden_layers": [32], "epochs": 8, "train_size": 3000, "batch_size": 64,
          "lr_schedule": "constant", "dropout": 0.0, "learning_rate": 0.003}
BATCH_DELAY = 0.02  # ~42 batches: an epoch lasts about a second
KILL_AFTER = 2


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not admin_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server (the namespaced worker reaches it over TCP)")
    database = RUN_ID.replace("-", "_")
    database_url = create_database(admin_url, database)
    redis = PrivateRedis().start()
    var_dir = Path(tempfile.mkdtemp(prefix="tuner-remote-bench-"))
    host = None
    workers: list[Worker] = []
    try:
        pg = database_url.split("@", 1)[1].split("/", 1)[0]
        pg_host, _, pg_port = pg.partition(":")
        try:
            host = RemoteHost(postgres=(pg_host, int(pg_port or 5432)), redis=("127.0.0.1", redis.port)).__enter__()
        except NetnsUnavailable as exc:
            raise SystemExit(f"network namespaces unavailable: {exc}") from None
        bucket = host.moto.create_bucket()
        storage_env = s3_environment(host.moto.endpoint, bucket)
        common = {"TUNER_QUEUE": RUN_ID, "TUNER_CHANNEL_PREFIX": RUN_ID, "DJANGO_SETTINGS_MODULE": "tuner_site.settings",
                  "DJANGO_ENV": "development", "TUNER_RECONCILE_INTERVAL_SECONDS": "3600"}
        os.environ.update({**common, **storage_env, "DATABASE_URL": database_url, "REDIS_URL": redis.url,
                           "TUNER_VAR_DIR": str(var_dir / "web")})
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        from django.contrib.auth import get_user_model
        from django.test import Client
        from django.utils import timezone

        from experiments import services, storage
        from experiments.models import EpochMetric, Experiment

        owner = get_user_model().objects.create_user("bench")
        client = Client()
        client.force_login(owner)
        user = database_url.partition("://")[2].partition("@")[0]
        remote_url = host.database_url(user.split(":")[0], user.partition(":")[2], database)

        print(f"namespace {host.name}: worker side {host.ns_address}, host side {host.host_address}; "
              f"moto {host.moto.endpoint}; {args.rounds} round(s) of an 8-epoch run, SIGKILL after epoch {KILL_AFTER}")
        print(f"{'round':>5} {'stored@kill':>11} {'ckpt epoch':>10} {'retrained':>12} {'kill->resumed epoch':>20} "
              f"{'kill->done':>10} {'weights GET':>11} {'predict':>8}")
        def play(round_number: int) -> None:
            remote_dir = var_dir / f"remote-{round_number}"
            remote = Worker(batch_delay=BATCH_DELAY, prefix=host.worker_prefix, env={
                **common, **storage_env, "DATABASE_URL": remote_url, "REDIS_URL": host.redis_url(0),
                "TUNER_VAR_DIR": str(remote_dir / "var"), "TUNER_ARTIFACT_DIR": str(remote_dir / "artifacts"),
                "TUNER_CACHE_DIR": str(remote_dir / "var" / "cache")})
            workers.append(remote)
            remote.wait_ready()
            run = services.experiment_create(owner=owner, config=CONFIG)
            wait(lambda: checkpoint_epoch(run.pk) >= KILL_AFTER, 120, "the remote worker's checkpoint")
            remote.kill(signal.SIGKILL)
            remote.wait_exit(10)
            killed = time.monotonic()
            stored_at_kill = Experiment.objects.get(pk=run.pk).epochs_done
            resume_epoch = checkpoint_epoch(run.pk)
            before = dict(EpochMetric.objects.filter(experiment=run).values_list("epoch", "seconds"))
            local = Worker(batch_delay=BATCH_DELAY, env={**common, **storage_env, "DATABASE_URL": database_url,
                                                         "REDIS_URL": redis.url, "TUNER_VAR_DIR": str(var_dir / "web")})
            workers.append(local)
            local.wait_ready()
            Experiment.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(seconds=5))
            services.runs_reconcile(stale_after_seconds=1)
            wait(lambda: EpochMetric.objects.filter(experiment=run, epoch=resume_epoch + 1).exclude(
                seconds=before.get(resume_epoch + 1, -1)).exists(), 120, "the first resumed epoch")
            first_resumed = time.monotonic() - killed
            wait(lambda: Experiment.objects.get(pk=run.pk).status in Experiment.FINISHED_STATUSES, 120, "the run's end")
            done = time.monotonic() - killed
            run.refresh_from_db()
            assert run.status == Experiment.Status.SUCCEEDED, run.error_message
            after = dict(EpochMetric.objects.filter(experiment=run).values_list("epoch", "seconds"))
            retrained = [e for e in sorted(after) if before.get(e) != after[e]]
            started = time.perf_counter()
            response = client.get(f"/api/experiments/{run.pk}/weights/")
            body = b"".join(response.streaming_content)
            weights_ms = 1000 * (time.perf_counter() - started)
            assert response.status_code == 200 and body == storage.read_bytes(run.weights_path)
            started = time.perf_counter()
            prediction = client.post(f"/api/experiments/{run.pk}/predict/", {"test_index": 7},
                                     content_type="application/json")
            predict_ms = 1000 * (time.perf_counter() - started)
            assert prediction.status_code == 200, prediction.content
            assert not list(remote_dir.rglob("*.npz")), "the remote worker wrote run files to its own disk"
            print(f"{round_number:>5} {stored_at_kill:>11} {resume_epoch:>10} {f'{retrained[0]}-{retrained[-1]}':>12} "
                  f"{first_resumed:>19.1f}s {done:>9.1f}s {weights_ms:>9.0f}ms {predict_ms:>6.0f}ms")
            local.stop()

        for round_number in range(1, args.rounds + 1):
            play(round_number)
    finally:
        for worker in workers:
            worker.stop()
        if host is not None:
            host.close()
        redis.close()
        drop_database(admin_url, database)


if __name__ == "__main__":
    main()

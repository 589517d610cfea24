"""Reliability tests: real worker subprocesses killed, stopped and restarted; a private Redis.

The helpers here start and stop only their own processes (Celery workers, one redis-server
on a spare port), never the shared Redis or database servers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The worker subprocess: Django set up, then the ordinary `celery` command line. A delay per
# mini-batch (TUNER_BATCH_DELAY_SECONDS) makes epochs last long enough to interrupt at a known point.
WORKER_MAIN = """
import os, sys, time
import django
django.setup()
from celery.bin.celery import main
sys.argv = ["celery", "-A", "tuner_site", *sys.argv[1:]]
sys.exit(main())
"""


def worker_database_url() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def is_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")


class Worker:
    """One `celery worker -P solo -c 1` subprocess (or `pool="prefork"`, as deployed) on the test
    queue, with its log in a file. `prefix` runs it under another command (`ip netns exec NAME`: the
    worker of another host, tests/reliability/netns.py)."""

    def __init__(self, *, batch_delay: float = 0.0, env: dict[str, str] | None = None, pool: str = "solo",
                 prefix: list[str] | None = None):
        self.log = Path(tempfile.mkstemp(prefix="tuner-worker-", suffix=".log")[1])
        full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_settings",
                    "DATABASE_URL": worker_database_url(), "PYTHONUNBUFFERED": "1",
                    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "TUNER_BATCH_DELAY_SECONDS": str(batch_delay), **(env or {})}
        queue = full_env["TUNER_QUEUE"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*(prefix or []), sys.executable, "-c", WORKER_MAIN, "worker", "-P", pool, "-c", "1", "-Q", queue,
                 "-l", "INFO", "--hostname", f"rel-{uuid.uuid4().hex[:8]}@%h", "--without-mingle",
                 "--without-gossip"],
                cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> Worker:
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start (exit {self.proc.poll()}):\n{self.output()[-4000:]}")
            time.sleep(0.1)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own on a spare loopback port, in memory only (restart = data lost)."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tuner-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import redis

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning", "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
                client.ping()
                client.close()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ~40 batches per epoch; with the workers' 20 ms per batch, an epoch lasts about a second.
CONFIG = {"hidden_layers": [32], "epochs": 8, "train_size": 3000, "batch_size": 64,
          "lr_schedule": "constant", "dropout": 0.0, "learning_rate": 0.003}
BATCH_DELAY = 0.02


def epochs_of(experiment) -> list[int]:
    from experiments.models import EpochMetric

    return list(EpochMetric.objects.filter(experiment=experiment).order_by("epoch")
                .values_list("epoch", flat=True))


def wait_for_epoch(experiment, epoch: int, worker: Worker, timeout: float = 90) -> None:
    """Wait until `experiment` stored `epoch`; fail with the worker's log if it died or took too long."""
    import pytest

    from experiments.models import EpochMetric, Experiment

    deadline = time.monotonic() + timeout
    while not EpochMetric.objects.filter(experiment=experiment, epoch=epoch).exists():
        if time.monotonic() > deadline or worker.proc.poll() is not None:
            row = Experiment.objects.filter(pk=experiment.pk).values().first()
            pytest.fail(f"no epoch {epoch} of #{experiment.pk} ({row}); worker log:\n{worker.output()[-4000:]}")
        time.sleep(0.02)

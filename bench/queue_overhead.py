"""What the queue, the database and the live events cost a training run.

Prints figures; asserts nothing. Runs against its own stack: a temporary var dir
(SQLite; or, when DATABASE_URL is set, a temporary database created on that server
and dropped afterwards), Redis database 12 with its own queue name and channel
prefix, and a Celery worker subprocess (concurrency 1, OPENBLAS_NUM_THREADS=2; this
process trains with 2 BLAS threads too, so the comparisons are like for like).

    .venv/bin/python bench/queue_overhead.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/queue_overhead.py

(a) latency: create a run (train_size 1000, 1 epoch) on a warm worker and time the first
    EpochMetric row and the first "epoch" event seen by a channel-layer subscriber
    (what the websocket consumer receives); median of 5.
(b) per-epoch overhead of persisting + publishing: the default network (784-256-128-10),
    5 epochs on the full data, trained directly with training.trainer.fit and through
    the worker; plus each callback timed in this process on a claimed run row.
(c) event latency: 200 synthetic events sent with events.publish, received by an
    asyncio subscriber on the run's group; p50/p95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS = "2"
REDIS_URL = "redis://127.0.0.1:6379/12"
RUN_ID = f"bench-{os.getpid()}"
# One 54 000-sample epoch of the default network plus validation on an idle 2-core machine
# (bench/train_speed.py: 0.62 s for 60 000 samples).
IDLE_EPOCH_SECONDS = 0.6

# Before NumPy is imported (by Django's app loading): the same BLAS threads as the worker.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = THREADS
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scratch_db import create_database, drop_database  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def pct(fraction: float) -> str:
    return f"{fraction * 100:+.2f} %" if fraction < 0 else f"{fraction * 100:.2f} %"


# --------------------------------------------------------------------------- the stack


class Stack:
    """Environment, database and worker of this benchmark; everything undone by close()."""

    def __init__(self) -> None:
        self.var_dir = Path(tempfile.mkdtemp(prefix="tuner-bench-"))
        self.worker: subprocess.Popen | None = None
        self.worker_log = self.var_dir / "worker.log"
        self.pg_admin_url: str | None = None
        self.pg_database: str | None = None
        os.environ.update(TUNER_VAR_DIR=str(self.var_dir), REDIS_URL=REDIS_URL, TUNER_QUEUE=RUN_ID,
                          TUNER_CHANNEL_PREFIX=RUN_ID, DJANGO_SETTINGS_MODULE="tuner_site.settings",
                          DJANGO_ENV="development", TUNER_MAX_ACTIVE_RUNS_PER_USER="1000")
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith(("postgres://", "postgresql://")):
            self._create_pg_database(url)

    def _create_pg_database(self, url: str) -> None:
        name = RUN_ID.replace("-", "_")
        os.environ["DATABASE_URL"] = create_database(url, name)
        self.pg_admin_url, self.pg_database = url, name

    def setup_django(self) -> None:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)

    def start_worker(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = open(self.worker_log, "wb")  # noqa: SIM115 - closed with the worker
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tuner_site", "worker", "-l", "INFO", "-c", "1", "-Q", RUN_ID,
             "--hostname", f"{RUN_ID}@%h", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while b" ready." not in self.worker_log.read_bytes():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{self.worker_log.read_text()[-3000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGQUIT)  # cold: nothing of ours is worth waiting for
            try:
                self.worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = [*client.scan_iter(f"{RUN_ID}*"), *client.scan_iter(f"_kombu.binding*.{RUN_ID}")]
            if keys:
                client.delete(*keys)
        except Exception as exc:  # noqa: BLE001
            print(f"(could not clean Redis: {exc})")
        if self.pg_database:
            drop_database(self.pg_admin_url, self.pg_database)
        shutil.rmtree(self.var_dir, ignore_errors=True)


class Subscriber:
    """A channel-layer consumer on its own asyncio loop: what a websocket consumer receives."""

    def __init__(self) -> None:
        from channels_redis.core import RedisChannelLayer
        from django.conf import settings

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="subscriber", daemon=True)
        self.thread.start()
        config = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"])
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that channels_redis
        # blocks in BZPOPMIN on an idle channel: the read can time out first and the receive
        # raises TimeoutError. The settings give a host dict without that timeout; should they
        # ever give a bare URL again, this subscriber still gets a longer one.
        self.patched_timeout = any(isinstance(host, str) for host in config["hosts"])
        config["hosts"] = [{"address": host, "socket_timeout": 30} if isinstance(host, str) else host
                           for host in config["hosts"]]
        self.layer = RedisChannelLayer(**config)
        self.timeouts = 0
        self.channel = self.call(self.layer.new_channel())
        self.received: list[tuple[float, float, dict]] = []  # (perf_counter, time.time(), event)
        self.condition = threading.Condition()
        self.task = asyncio.run_coroutine_threadsafe(self._receive_forever(), self.loop)

    def call(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def subscribe(self, experiment_id: int) -> None:
        from experiments import events

        self.call(self.layer.group_add(events.run_group(experiment_id), self.channel))

    async def _receive_forever(self) -> None:
        import redis

        while True:
            try:
                message = await self.layer.receive(self.channel)
            except redis.TimeoutError:
                self.timeouts += 1
                continue
            now, wall = time.perf_counter(), time.time()
            with self.condition:
                self.received.append((now, wall, message.get("event", {})))
                self.condition.notify_all()

    def first(self, experiment_id: int, kind: str) -> float | None:
        with self.condition:
            return next((when for when, _, event in self.received
                         if event.get("experiment") == experiment_id and event.get("type") == kind), None)

    def wait_count(self, experiment_id: int, kind: str, count: int, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                found = [(w, event) for _, w, event in self.received
                         if event.get("experiment") == experiment_id and event.get("type") == kind]
                if len(found) >= count or time.monotonic() > deadline:
                    return found
                self.condition.wait(0.1)

    def close(self) -> None:
        self.task.cancel()
        try:
            self.call(self.layer.close_pools(), timeout=5)
        except Exception:  # noqa: BLE001, S110
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


def wait_finished(experiment, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        experiment.refresh_from_db()
        if not experiment.is_active:
            if experiment.status != "succeeded":
                raise SystemExit(f"run #{experiment.pk} ended {experiment.status}: {experiment.error_message}")
            return experiment
        time.sleep(0.05)
    raise SystemExit(f"run #{experiment.pk} did not finish within {timeout} s")


# --------------------------------------------------------------------------- (a) first epoch


def measure_first_epoch(user, subscriber: Subscriber, repeats: int) -> tuple[list[float], list[float]]:
    from django.db import transaction

    from experiments import services
    from experiments.models import EpochMetric

    config = {"train_size": 1000, "epochs": 1}
    row_times, event_times = [], []
    for i in range(repeats):
        started = time.perf_counter()
        # Subscribe inside the transaction: the task is only sent when it commits, so the
        # subscriber cannot miss an event (a browser subscribes after the POST answers).
        with transaction.atomic():
            run = services.experiment_create(owner=user, config=config, name=f"latency {i}")
            subscriber.subscribe(run.pk)
        row_at = event_at = None
        deadline = time.monotonic() + 60
        while (row_at is None or event_at is None) and time.monotonic() < deadline:
            if row_at is None and EpochMetric.objects.filter(experiment_id=run.pk).exists():
                row_at = time.perf_counter()
            if event_at is None:
                event_at = subscriber.first(run.pk, "epoch")
            time.sleep(0.002)
        if row_at is None or event_at is None:
            raise SystemExit(f"run #{run.pk}: no first epoch within 60 s")
        row_times.append(row_at - started)
        event_times.append(event_at - started)
        wait_finished(run)
    return row_times, event_times


# --------------------------------------------------------------------------- (b) overhead


def measure_direct(config_dict: dict) -> list[float]:
    from training.config import TrainingConfig
    from training.data import load_fashion_mnist, prepare_dataset
    from training.trainer import fit

    config = TrainingConfig.from_dict(config_dict)
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction,
                           seed=config.seed, train_size=config.train_size)
    result = fit(config, data)  # no callbacks, no checkpoint: the trainer alone
    return [m.seconds for m in result.history]


def measure_worker(user, config_dict: dict) -> tuple[list[float], list[float]]:
    """(per-epoch `seconds`, epoch-to-epoch cycle from the rows' recorded_at) of a worker run."""
    from experiments import services
    from experiments.models import EpochMetric

    run = wait_finished(services.experiment_create(owner=user, config=config_dict, name="overhead"))
    rows = list(EpochMetric.objects.filter(experiment=run).order_by("epoch").values_list("seconds", "recorded_at"))
    seconds = [s for s, _ in rows]
    cycles = [(b - a).total_seconds() for (_, a), (_, b) in zip(rows, rows[1:], strict=False)]
    return seconds, cycles


def measure_callbacks(user, epochs: int = 60) -> dict[str, list[float]]:
    """Each worker callback timed in this process on a claimed run row (not enqueued)."""
    from experiments import services
    from experiments.models import Experiment
    from training.config import TrainingConfig
    from training.trainer import EpochMetrics

    run = Experiment.objects.create(owner=user, name="callbacks", task_id=uuid.uuid4().hex,
                                    config=TrainingConfig.from_dict({"epochs": 200}).to_dict())
    lease = services.experiment_claim(experiment_id=run.pk, worker_host="bench")
    run.refresh_from_db()
    monitor = services.RunMonitor(run, lease)
    timings: dict[str, list[float]] = {"record_epoch": [], "cancel_poll": [], "progress_event": []}
    for epoch in range(1, epochs + 1):
        metrics = EpochMetrics(epoch=epoch, train_loss=0.5, train_accuracy=0.8, val_loss=0.5,
                               val_accuracy=0.8 + epoch / 1000, learning_rate=0.001, seconds=0.6,
                               samples_per_second=90000.0, gradient_norm=1.0, gradient_norm_max=2.0,
                               dead_unit_fraction=0.0)
        start = time.perf_counter()
        monitor.on_epoch(metrics)  # = services.experiment_record_epoch under the lease
        timings["record_epoch"].append(time.perf_counter() - start)

        monitor._next_poll = 0.0  # force the database poll that should_stop() does every 0.2 s
        start = time.perf_counter()
        monitor.should_stop()
        timings["cancel_poll"].append(time.perf_counter() - start)

        monitor._next_progress = 0.0  # force the progress event on_batch() sends every 0.5 s
        start = time.perf_counter()
        monitor.on_batch(epoch, 1, 422)
        timings["progress_event"].append(time.perf_counter() - start)
    return {name: values[5:] for name, values in timings.items()}  # drop the warm-up calls


# --------------------------------------------------------------------------- (c) event latency


def measure_event_latency(user, subscriber: Subscriber, count: int, spacing: float) -> tuple[list, list]:
    from experiments import events
    from experiments.models import Experiment

    run = Experiment.objects.create(owner=user, name="events", config={}, status="succeeded")
    subscriber.subscribe(run.pk)
    publish_seconds = []

    def sender():
        for i in range(count):
            start = time.perf_counter()
            events.publish(run.pk, user.pk, {"type": "bench", "i": i, "sent": time.time()})
            publish_seconds.append(time.perf_counter() - start)
            time.sleep(spacing)

    thread = threading.Thread(target=sender, name="publisher")
    thread.start()
    thread.join()
    received = subscriber.wait_count(run.pk, "bench", count, timeout=30)
    latencies = [wall - event["sent"] for wall, event in received]
    if len(received) < count:
        print(f"(only {len(received)} of {count} events arrived)")
    return latencies, publish_seconds


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs for the first-epoch latency (default 5)")
    parser.add_argument("--events", type=int, default=200, help="synthetic events for (c) (default 200)")
    parser.add_argument("--overhead-rounds", type=int, default=2,
                        help="direct/worker rounds of the 5-epoch comparison (default 2)")
    args = parser.parse_args()

    stack = Stack()
    subscriber = None
    try:
        stack.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from experiments import services

        db = settings.DATABASES["default"]
        print(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}; redis {REDIS_URL}; queue {RUN_ID}; "
              f"BLAS threads {THREADS}; cancel poll every {settings.TUNER_CANCEL_POLL_SECONDS} s; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        stack.start_worker()
        subscriber = Subscriber()

        # Warm-up: the worker imports, loads the dataset and caches the 1000-sample split.
        wait_finished(services.experiment_create(owner=user, config={"train_size": 1000, "epochs": 1},
                                                 name="warm-up"))

        print("\n(a) create -> first epoch, train_size 1000, 1 epoch, warm worker")
        row_times, event_times = measure_first_epoch(user, subscriber, args.repeats)
        print("    first EpochMetric row:  " + ", ".join(f"{t * 1000:.0f}" for t in row_times) + " ms")
        print("    first 'epoch' event:    " + ", ".join(f"{t * 1000:.0f}" for t in event_times) + " ms")

        print("\n(b) default network 784-256-128-10, 5 epochs, full data (54 000 training samples)")
        config = {"epochs": 5}
        direct, worker_seconds, worker_cycles = [], [], []
        for round_ in range(args.overhead_rounds):
            d = measure_direct(config)
            ws, wc = measure_worker(user, config)
            print(f"    round {round_ + 1}: direct epochs " + " ".join(f"{s:.3f}" for s in d)
                  + " s | worker epochs " + " ".join(f"{s:.3f}" for s in ws) + " s")
            direct += d[1:]  # the first epoch of a process warms caches: compared without it
            worker_seconds += ws[1:]
            worker_cycles += wc
        # Other processes share the cores: the fastest epochs are the least disturbed ones,
        # so the measured comparison uses minima; the medians are shown for context.
        direct_epoch, direct_min = statistics.median(direct), min(direct)
        worker_epoch, worker_min = statistics.median(worker_seconds), min(worker_seconds)
        worker_cycle = min(worker_cycles)
        callbacks = measure_callbacks(user)
        record = statistics.median(callbacks["record_epoch"])
        poll = statistics.median(callbacks["cancel_poll"])
        progress = statistics.median(callbacks["progress_event"])
        # What the worker adds to training, from the callbacks' own cost: a cancel poll every
        # TUNER_CANCEL_POLL_SECONDS and a progress event every 0.5 s (a share of training time,
        # whatever the epoch length), plus once per epoch the record and the last-batch event.
        continuous = poll / settings.TUNER_CANCEL_POLL_SECONDS + progress / 0.5
        per_epoch = record + progress
        # The per-epoch part weighs more on a short epoch: judged on the fastest epoch seen or
        # the idle-machine figure, whichever is shorter (busy cores make epochs look long).
        reference = min(direct_min, IDLE_EPOCH_SECONDS)
        overhead = per_epoch / reference + continuous
        print(f"    trainer alone:            epoch min {direct_min:.3f} s, median {direct_epoch:.3f} s")
        print(f"    through the worker:       epoch min {worker_min:.3f} s ({pct(worker_min / direct_min - 1)}), "
              f"median {worker_epoch:.3f} s; epoch-to-epoch min {worker_cycle:.3f} s "
              f"({pct(worker_cycle / direct_min - 1)}; adds on_epoch and the checkpoint write)")
        spread = max(direct) / direct_min
        if spread > 1.3:
            print(f"    !! the trainer's own epochs vary {spread:.1f}x: other processes are using the cores "
                  f"(load average {os.getloadavg()[0]:.2f}); the epoch comparisons above are not meaningful")
        print(f"    on_epoch = experiment_record_epoch: p50 {ms(record)}, "
              f"p95 {ms(percentile(callbacks['record_epoch'], 95))} (once per epoch)")
        print(f"    should_stop database poll:  p50 {ms(poll)} every {settings.TUNER_CANCEL_POLL_SECONDS} s "
              f"= {pct(poll / settings.TUNER_CANCEL_POLL_SECONDS)} of training time")
        print(f"    on_batch progress event:    p50 {ms(progress)} every 0.5 s and at each epoch's end "
              f"= {pct(progress / 0.5)} of training time")
        print(f"    persisting + publishing: {ms(per_epoch)} per epoch + {pct(continuous)} of training time "
              f"= {pct(overhead)} of a {reference:.2f} s epoch")

        print(f"\n(c) events.publish -> channel-layer subscriber, {args.events} events 10 ms apart")
        latencies, publishes = measure_event_latency(user, subscriber, args.events, spacing=0.01)
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        print(f"    latency p50 {ms(p50)}, p95 {ms(p95)}, max {ms(max(latencies))}; "
              f"publish call p50 {ms(percentile(publishes, 50))}, p95 {ms(percentile(publishes, 95))}")

        first_epoch = statistics.median(event_times)
        rows = [
            (f"first epoch event after create (median of {len(event_times)})", f"{first_epoch:.3f} s",
             "< 1 s", first_epoch < 1),
            ("first EpochMetric row after create (median)", f"{statistics.median(row_times):.3f} s", "< 1 s",
             statistics.median(row_times) < 1),
            (f"persisting + publishing, % of a {reference:.2f} s epoch", pct(overhead), "< 2 %",
             overhead < 0.02),
            ("  cross-check: worker epoch-to-epoch vs trainer", pct(worker_cycle / direct_min - 1), "(noisy)", None),
            ("event latency p50 / p95", f"{p50 * 1000:.1f} / {p95 * 1000:.1f} ms", "p95 < 50 ms", p95 < 0.05),
        ]
        width = max(len(r[0]) for r in rows)
        if subscriber.patched_timeout or subscriber.timeouts:
            print(f"\nnote: the settings give Redis as a bare URL (redis-py's 5 s read timeout races "
                  f"channels_redis's 5 s BZPOPMIN); this subscriber used 30 s. Receive timeouts: "
                  f"{subscriber.timeouts}")
        print(f"load average now {os.getloadavg()[0]:.2f}")
        print(f"\n{'measure':<{width}}  {'figure':>16}  {'goal':<13} met")
        print(f"{'-' * width}  {'-' * 16}  {'-' * 13} ---")
        for name, figure, goal, met in rows:
            print(f"{name:<{width}}  {figure:>16}  {goal:<13} {'' if met is None else ('yes' if met else 'NO')}")
    finally:
        if subscriber is not None:
            subscriber.close()
        stack.close()


if __name__ == "__main__":
    main()

"""Chaos: a fault matrix. Every cell injects one fault at one moment and checks that every run
reaches a final state, exactly once, with every epoch stored once.

    faults  : worker SIGKILL | worker SIGTERM x3 | Redis restart without persistence |
              PostgreSQL backends terminated | web (Daphne) restart
    moments : mid-epoch | at the final commit | during a sweep refill

Per cell it prints: runs stuck (not final within one reconcile interval plus their training
time plus a margin), lost (created, never trained), failed, and epochs duplicated or missing.
Goal: 0 / 0 / 0 / 0 in every cell.

Everything is the project's own and real: a temporary PostgreSQL database (or SQLite), a
redis-server of its own on a spare port (restarted without persistence), Celery workers
(prefork, 1 process) and Daphne as subprocesses. Runs are created through the web API. Nothing
reconciles by hand: the workers' own periodic reconcile (every RECONCILE seconds here) heals.
Fault moments come from the workers' fault points (TUNER_FAULT_PAUSES: the worker logs
"fault point <name> reached" and pauses there while the fault is injected).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/chaos.py
    .venv/bin/python bench/chaos.py --faults worker_sigkill,redis_restart --moments mid_epoch
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from scratch_db import create_database, drop_database  # noqa: E402

from tests.reliability import PrivateRedis, free_port  # noqa: E402

RUN_ID = f"tuner-chaos-{uuid.uuid4().hex[:8]}"
RECONCILE = 3.0  # seconds between the workers' reconciles
STALE = 6.0  # a running run whose heartbeat is older is taken for abandoned
MARGIN = 20.0  # on top of one reconcile interval, the stale limit and the runs' own training time
CONFIG = {"hidden_layers": [32], "epochs": 5, "train_size": 3000, "batch_size": 64,
          "lr_schedule": "constant", "dropout": 0.0, "learning_rate": 0.003}
BATCH_DELAY = 0.01  # ~47 batches: an epoch lasts about 0.6 s
SPACE = {"learning_rate": {"low": 1e-3, "high": 1e-2, "scale": "log"}}
SWEEP_BUDGET = 3
FAULTS = ("worker_sigkill", "worker_sigterm_x3", "redis_restart", "pg_terminate", "web_restart")
MOMENTS = ("mid_epoch", "final_commit", "sweep_refill")
PAUSE = 2.0  # seconds a worker waits at a fault point


class Lab:
    """The stack of one bench run; close() undoes everything."""

    def __init__(self) -> None:
        self.var_dir = Path(tempfile.mkdtemp(prefix="tuner-chaos-"))
        self.redis = PrivateRedis().start()
        self.pg_admin_url = self.pg_database = None
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith(("postgres://", "postgresql://")):
            self.pg_admin_url, self.pg_database = url, RUN_ID.replace("-", "_")
            url = create_database(url, self.pg_database)
        else:
            url = f"sqlite:///{self.var_dir / 'db.sqlite3'}"
        self.env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": self.redis.url, "TUNER_QUEUE": RUN_ID,
                    "TUNER_CHANNEL_PREFIX": RUN_ID, "TUNER_VAR_DIR": str(self.var_dir),
                    "DJANGO_SETTINGS_MODULE": "tuner_site.settings", "DJANGO_ENV": "development",
                    "TUNER_MAX_ACTIVE_RUNS_PER_USER": "50", "TUNER_RECONCILE_INTERVAL_SECONDS": str(RECONCILE),
                    "TUNER_HEARTBEAT_SECONDS": "1", "TUNER_HEARTBEAT_STALE_SECONDS": str(STALE),
                    "TUNER_BATCH_DELAY_SECONDS": str(BATCH_DELAY), "TUNER_DB_RETRIES": "4",
                    "TUNER_THROTTLE_RUN_CREATE": "1000/min", "TUNER_THROTTLE_SWEEP_WRITE": "1000/min",
                    "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        os.environ.update({key: self.env[key] for key in (
            "DATABASE_URL", "REDIS_URL", "TUNER_QUEUE", "TUNER_CHANNEL_PREFIX", "TUNER_VAR_DIR",
            "DJANGO_SETTINGS_MODULE", "DJANGO_ENV")})
        self.workers: list[tuple[subprocess.Popen, Path]] = []
        self.web: subprocess.Popen | None = None
        self.web_port = free_port()

    def setup_django(self) -> None:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)

    # -- processes

    def start_worker(self, *, pauses: str = "") -> tuple[subprocess.Popen, Path]:
        log = self.var_dir / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tuner_site", "worker", "-l", "INFO", "-c", "1",
                 "-Q", RUN_ID, "--hostname", f"{RUN_ID}-{len(self.workers)}@%h", "--without-mingle",
                 "--without-gossip"],
                cwd=ROOT, env={**self.env, "TUNER_FAULT_PAUSES": pauses}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.workers.append((proc, log))
        return proc, log

    def current_worker(self) -> tuple[subprocess.Popen, Path]:
        return next((proc, log) for proc, log in reversed(self.workers) if proc.poll() is None)

    def stop_workers(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def start_web(self) -> None:
        log = self.var_dir / "web.log"
        with open(log, "ab") as out:
            self.web = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_port), "tuner_site.asgi:application"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers (503 while a probe fails is still an answer)
            except OSError:
                if self.web.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"web did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.1)

    def stop_web(self) -> None:
        if self.web is not None and self.web.poll() is None:
            self.web.send_signal(signal.SIGTERM)
            self.web.wait(timeout=15)

    def api(self, method: str, path: str, token: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def token(self, username: str, password: str) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/auth/token/", method="POST",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["token"]

    def close(self) -> None:
        self.stop_workers()
        self.stop_web()
        self.redis.close()
        if self.pg_database:
            drop_database(self.pg_admin_url, self.pg_database)
        shutil.rmtree(self.var_dir, ignore_errors=True)


# --------------------------------------------------------------------------- faults


def inject(lab: Lab, fault: str, *, pauses: str) -> None:
    if fault == "worker_sigkill":
        proc, _ = lab.current_worker()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        lab.start_worker(pauses=pauses)
    elif fault == "worker_sigterm":
        proc, log = lab.current_worker()
        proc.send_signal(signal.SIGTERM)  # a deploy: warm shutdown
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        lab.start_worker(pauses=pauses)
    elif fault == "redis_restart":
        lab.redis.stop()
        lab.redis.start()
    elif fault == "pg_terminate":
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    elif fault == "web_restart":
        lab.stop_web()
        lab.start_web()
    else:
        raise ValueError(fault)


def wait_for_log(lab: Lab, text: str, since: dict[Path, int], timeout: float, done=lambda: False) -> bool:
    """Until a worker's log shows `text` after the offsets in `since` (False if `done()` first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        for _, log in lab.workers:
            if text.encode() in log.read_bytes()[since.get(log, 0):]:
                return True
        time.sleep(0.02)
    return False


def log_offsets(lab: Lab) -> dict[Path, int]:
    return {log: log.stat().st_size for _, log in lab.workers}


def run_cell(lab: Lab, fault: str, moment: str, token: str, user) -> dict:
    from experiments.models import EpochMetric, Experiment, Sweep

    pauses = {"final_commit": f"final_commit={PAUSE}", "sweep_refill": f"sweep_refill={PAUSE}"}.get(moment, "")
    lab.stop_workers()
    lab.start_worker(pauses=pauses)
    started = time.monotonic()
    sweep_id = None
    if moment == "sweep_refill":
        sweep_id = lab.api("POST", "/api/sweeps/", token, {
            "base_config": CONFIG, "space": SPACE, "strategy": "random", "budget": SWEEP_BUDGET,
            "parallelism": 1, "seed": 1})["id"]
        expected_runs = SWEEP_BUDGET
    else:
        run_ids = [lab.api("POST", "/api/experiments/", token, {"config": CONFIG, "name": f"{fault} {moment}"})["id"]]
        expected_runs = 1
    if sweep_id is not None:
        def runs():
            return Experiment.objects.filter(sweep_id=sweep_id)
    else:
        def runs():
            return Experiment.objects.filter(pk__in=run_ids)

    def finished() -> bool:
        sweep_done = sweep_id is None or Sweep.objects.get(pk=sweep_id).status not in Sweep.ACTIVE_STATUSES
        return (sweep_done and runs().count() >= expected_runs
                and all(run.status not in Experiment.ACTIVE_STATUSES for run in runs()))

    repeats = 3 if fault == "worker_sigterm_x3" else 1
    injected = 0
    for repeat in range(repeats):
        since = log_offsets(lab)
        if moment == "mid_epoch":
            target = Experiment.objects.filter(pk=run_ids[0])
            deadline = time.monotonic() + 60
            while not EpochMetric.objects.filter(experiment__in=target, epoch__gte=repeat + 1).exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            time.sleep(0.2)  # inside the next epoch
        elif not wait_for_log(lab, f"fault point {moment} reached", since, timeout=60, done=finished):
            break  # the work ended before the next fault point (e.g. the run's only final commit)
        inject(lab, "worker_sigterm" if fault == "worker_sigterm_x3" else fault, pauses=pauses)
        injected += 1

    bound = RECONCILE + STALE + MARGIN + CONFIG["epochs"] * 1.5 * expected_runs
    deadline = started + bound
    while time.monotonic() < deadline and not finished():
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    rows = list(runs())
    stuck = sum(run.status in Experiment.ACTIVE_STATUSES for run in rows)
    if sweep_id is not None and Sweep.objects.get(pk=sweep_id).status in Sweep.ACTIVE_STATUSES:
        stuck += 1
    lost = max(0, expected_runs - len(rows)) + sum(run.status == "queued" and run.attempts == 0 for run in rows)
    failed = sum(run.status == "failed" for run in rows)
    duplicated = missing = 0
    for run in rows:
        epochs = list(EpochMetric.objects.filter(experiment=run).values_list("epoch", flat=True))
        duplicated += len(epochs) - len(set(epochs))
        if run.status == "succeeded":
            missing += len(set(range(1, CONFIG["epochs"] + 1)) - set(epochs))
    return {"stuck": stuck, "lost": lost, "failed": failed, "duplicated": duplicated, "missing": missing,
            "injected": injected, "seconds": elapsed, "bound": bound,
            "attempts": [(run.attempts, run.handbacks) for run in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--moments", default=",".join(MOMENTS))
    args = parser.parse_args()
    faults = [name for name in args.faults.split(",") if name]
    moments = [name for name in args.moments.split(",") if name]

    lab = Lab()
    try:
        lab.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("chaos", password="chaos-password-1")
        lab.start_web()
        token = lab.token("chaos", "chaos-password-1")
        db = settings.DATABASES["default"]
        print(f"database {db['ENGINE'].rsplit('.', 1)[-1]}; reconcile every {RECONCILE:.0f} s, stale after "
              f"{STALE:.0f} s; config {CONFIG}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"{'fault':<18} {'moment':<13} {'stuck':>5} {'lost':>5} {'failed':>6} {'dup':>4} {'miss':>5} "
              f"{'faults':>6} {'secs':>6} {'bound':>6}  (attempts, handbacks)")
        totals = {"stuck": 0, "lost": 0, "failed": 0, "duplicated": 0, "missing": 0}
        for fault in faults:
            for moment in moments:
                cell = run_cell(lab, fault, moment, token, user)
                for key in totals:
                    totals[key] += cell[key]
                print(f"{fault:<18} {moment:<13} {cell['stuck']:>5} {cell['lost']:>5} {cell['failed']:>6} "
                      f"{cell['duplicated']:>4} {cell['missing']:>5} {cell['injected']:>6} {cell['seconds']:>6.1f} "
                      f"{cell['bound']:>6.0f}  {cell['attempts']}", flush=True)
        print(f"total: stuck {totals['stuck']}, lost {totals['lost']}, failed {totals['failed']}, "
              f"epochs duplicated {totals['duplicated']}, missing {totals['missing']}")
    finally:
        lab.close()


if __name__ == "__main__":
    main()

"""`manage.py ensure_admin`, and `manage.py runlab` (what `make run` starts) as a real process tree."""

from __future__ import annotations

import io
import os
import queue
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- ensure_admin


@pytest.fixture
def var_dir(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("TUNER_ADMIN_USER", raising=False)
    monkeypatch.delenv("TUNER_ADMIN_PASSWORD", raising=False)
    return tmp_path


def run_ensure_admin(*args) -> str:
    out = io.StringIO()
    call_command("ensure_admin", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_ensure_admin_creates_a_superuser_with_a_stored_random_password(db, var_dir, django_user_model):
    output = run_ensure_admin()
    stored = (var_dir / "admin_password").read_text().strip()
    assert f"Created admin account: admin / {stored}" in output
    assert len(stored) >= 16
    assert stat.S_IMODE((var_dir / "admin_password").stat().st_mode) == 0o600
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(stored)

    # Second time: nothing created, the same login shown.
    assert run_ensure_admin().strip() == f"Login: admin / {stored}"
    assert django_user_model.objects.count() == 1


def test_ensure_admin_uses_the_configured_username(db, var_dir, monkeypatch, django_user_model):
    monkeypatch.setenv("TUNER_ADMIN_USER", "root")
    assert run_ensure_admin().startswith("Created admin account: root / ")
    assert django_user_model.objects.filter(username="root", is_superuser=True).exists()


def test_ensure_admin_without_a_stored_password_says_how_to_reset(db, var_dir, django_user_model):
    django_user_model.objects.create_superuser("admin", password="chosen-by-hand-1")
    output = run_ensure_admin()
    assert "exists" in output and "manage.py changepassword admin" in output
    assert not (var_dir / "admin_password").exists()


def test_ensure_admin_notices_a_password_changed_since_it_was_stored(db, var_dir, django_user_model):
    run_ensure_admin()
    admin = django_user_model.objects.get(username="admin")
    admin.set_password("changed-by-hand-1")
    admin.save()
    output = run_ensure_admin()
    assert "changed" in output and "changepassword admin" in output
    assert "Login:" not in output


def test_ensure_admin_refuses_in_production_without_an_env_password(db, var_dir, settings, django_user_model):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        run_ensure_admin()
    assert not django_user_model.objects.exists()


def test_ensure_admin_takes_the_password_from_the_environment(db, var_dir, settings, monkeypatch,
                                                              django_user_model):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="TUNER_ADMIN_PASSWORD"):
        run_ensure_admin("--password-from-env")
    monkeypatch.setenv("TUNER_ADMIN_PASSWORD", "from-the-env-123")
    output = run_ensure_admin("--password-from-env")
    assert "from-the-env-123" not in output and "Created admin account: admin" in output
    assert django_user_model.objects.get(username="admin").check_password("from-the-env-123")
    assert not (var_dir / "admin_password").exists()  # nothing written in production


# --------------------------------------------------------------------------- runlab


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def all_processes() -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline:
                found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def processes_with(marker: str) -> dict[int, str]:
    """Live processes whose environment holds `marker` (pid -> command line), from /proc."""
    found = {}
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") or needle.split(b"=", 1)[1] in cmdline:
            if environ:  # zombies have neither environment nor command line
                found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


class Runlab:
    """`manage.py runlab` in its own session, its output collected line by line."""

    def __init__(self, tmp_path: Path, *args: str, redis_url: str = "redis://127.0.0.1:6379/13"):
        self.port = free_port()
        self.queue = f"runlab-test-{os.getpid()}-{self.port}"
        self.marker = f"TUNER_QUEUE={self.queue}"
        self.var_dir = tmp_path / "var"
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "TUNER_ADMIN_USER", "DJANGO_ENV", "TUNER_VAR_DIR")}
        # The development settings on SQLite in a temporary var dir (never the test database),
        # with their own Redis database, queue and channel prefix.
        env.update(DJANGO_SETTINGS_MODULE="tuner_site.settings", TUNER_VAR_DIR=str(self.var_dir),
                   REDIS_URL=redis_url, TUNER_QUEUE=self.queue, TUNER_CHANNEL_PREFIX=self.queue,
                   PYTHONUNBUFFERED="1")
        self.env, self.redis_url = env, redis_url
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runlab", "--port", str(self.port), *args], cwd=ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if text in line:
                return line
        pytest.fail(f"runlab did not print {text!r} within {timeout} s; output:\n{self.output}")

    def wait_for_banner(self) -> None:
        self.wait_for_line(f"http://127.0.0.1:{self.port}/", timeout=60)
        self.wait_for_line("Ctrl-C stops everything", timeout=5)

    def stop_and_wait(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runlab still running {timeout} s after {signal.Signals(sig).name}; "
                        f"output:\n{self.output}")
        assert time.monotonic() - started < timeout
        return code

    def children(self) -> dict[int, str]:
        return {pid: cmd for pid, cmd in processes_with(self.marker).items() if pid != self.proc.pid}

    def assert_no_leftovers(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while (left := processes_with(self.marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes left behind: {left}\noutput:\n{self.output}"

    def manage(self, *args: str) -> str:
        """Another manage.py command against this runlab's settings (its database, Redis, queue)."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def clean_redis(self) -> None:
        import redis

        if not self.redis_url.endswith("/13"):
            return  # a Redis runlab started itself is gone with its data
        client = redis.Redis.from_url(self.redis_url)
        keys = [*client.scan_iter(f"*{self.queue}*")]
        if keys:
            client.delete(*keys)

    def kill(self) -> None:
        """Cleanup after a failed test: nothing of this runlab may survive it."""
        for pid in [self.proc.pid, *processes_with(self.marker)]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(timeout=10)


@pytest.fixture
def start_runlab(tmp_path):
    started: list[Runlab] = []

    def start(*args, **kwargs) -> Runlab:
        runlab = Runlab(tmp_path, *args, **kwargs)
        started.append(runlab)
        return runlab

    yield start
    for runlab in started:
        runlab.kill()
        runlab.clean_redis()


def http_get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


@pytest.mark.slow
def test_runlab_serves_the_lab_and_ctrl_c_stops_every_process(start_runlab):
    lab = start_runlab()
    lab.wait_for_banner()
    password = (lab.var_dir / "admin_password").read_text().strip()
    assert f"admin / {password}" in lab.output
    assert f"http://127.0.0.1:{lab.port}/admin/" in lab.output
    assert f"http://127.0.0.1:{lab.port}/api/docs/" in lab.output

    assert http_get(f"http://127.0.0.1:{lab.port}/admin/login/") == 200
    children = lab.children()
    assert any("daphne" in cmd for cmd in children.values()), children
    assert any("celery" in cmd and lab.queue in cmd for cmd in children.values()), children

    assert lab.stop_and_wait(signal.SIGINT) == 0
    lab.assert_no_leftovers()
    assert "Stopped." in lab.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_runlab_starts_redis_when_none_answers_and_stops_it_last(start_runlab):
    redis_port = free_port()
    lab = start_runlab("--concurrency", "1", redis_url=f"redis://127.0.0.1:{redis_port}/0")
    lab.wait_for_banner()
    assert "(started by runlab" in lab.output
    # redis-server rewrites its process title over its environment: found by port instead.
    ours = f"redis-server 127.0.0.1:{redis_port}"
    assert any(ours in cmd for cmd in all_processes().values()), all_processes()
    assert http_get(f"http://127.0.0.1:{lab.port}/admin/login/") == 200

    assert lab.stop_and_wait(signal.SIGTERM) == 0
    lab.assert_no_leftovers()
    assert not any(ours in cmd for cmd in all_processes().values())
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", redis_port)) != 0  # Redis is gone too


@pytest.mark.slow
def test_runlab_stops_everything_when_a_child_dies(start_runlab):
    lab = start_runlab("--concurrency", "1")
    lab.wait_for_banner()
    worker = next(pid for pid, cmd in lab.children().items()
                  if "celery" in cmd and Path(f"/proc/{pid}/stat").read_text().split()[3] == str(lab.proc.pid))
    os.kill(worker, signal.SIGKILL)
    assert lab.stop_and_wait(signal.SIGCONT, timeout=15) == 1  # SIGCONT: just wait, it stops on its own
    lab.assert_no_leftovers()
    assert "worker" in lab.output and "unexpectedly" in lab.output


@pytest.mark.slow
def test_runlab_refuses_a_port_in_use(start_runlab):
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        lab = start_runlab("--port", str(busy.getsockname()[1]))  # the last --port wins
        assert lab.proc.wait(timeout=60) == 1
    lab.wait_for_line("already in use", timeout=5)
    assert not lab.children()


@pytest.mark.slow
def test_ctrl_c_during_a_run_puts_it_back_on_the_queue(start_runlab):
    import redis

    lab = start_runlab("--concurrency", "1")
    lab.wait_for_banner()
    created = lab.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from experiments import services\n"
        "user = get_user_model().objects.get(username='admin')\n"
        "print(services.experiment_create(owner=user, config={'epochs': 50, 'train_size': 20000}).pk)"))
    run_id = int(created.strip().splitlines()[-1])
    lab.wait_for_line("run_experiment", timeout=30)  # the worker received it

    def first_epoch_stored():
        count = lab.manage("shell", "-c", (
            f"from experiments.models import EpochMetric\n"
            f"print(EpochMetric.objects.filter(experiment_id={run_id}).count())"))
        return int(count.strip().splitlines()[-1]) >= 1

    wait_for(first_epoch_stored, timeout=60, interval=0.2, message="the run's first stored epoch")  # training

    # The worker's warm shutdown hands the run back at the next batch (experiments/services/execution.py):
    # no cold stop needed, the run is queued again and resumes from its checkpoint.
    assert lab.stop_and_wait(signal.SIGINT) == 0
    lab.assert_no_leftovers()
    assert "interrupted after epoch" in lab.output, lab.output[-6000:]  # handed back, not failed
    status = lab.manage("shell", "-c", (
        f"from experiments.models import Experiment\nprint(Experiment.objects.get(pk={run_id}).status)"))
    assert status.strip().splitlines()[-1] == "queued"  # the next start resumes it
    assert redis.Redis.from_url(lab.redis_url).llen(lab.queue) == 1  # its message is back on the queue

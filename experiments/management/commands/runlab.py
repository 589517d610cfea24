"""`make run`: the whole lab on one machine, in one terminal, stopped by one Ctrl-C.

    python manage.py runlab [--port 8000] [--host 127.0.0.1] [--concurrency N] [--blas-threads N]

In order: migrate, collectstatic, ensure_admin; Redis (started here when it is local,
not answering and redis-server is installed); then Daphne (HTTP + websockets) and a
Celery worker as child processes, each in its own process group so that Ctrl-C in
the terminal reaches this process only and the shutdown happens in order: web and
worker first, Redis last. Child output is shown with a name prefix.

Stopping: SIGTERM to web and worker; a worker still training after a few seconds
gets SIGQUIT (Celery's cold shutdown puts the interrupted run back on the queue, and
the next start resumes it from its last checkpoint); anything alive after 10 s is
killed. If any child dies on its own, the others are stopped and runlab exits 1.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from experiments.management.commands import ensure_admin

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL after this many seconds
WORKER_COLD_AFTER = 4.0  # an idle worker stops within ~3 s of SIGTERM; a busy one would wait for its run
START_TIMEOUT = 60.0
READY_PATH = "/admin/login/"
WORKER_READY = re.compile(r"\bready\.\s*$")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise CommandError(f"{name}={value!r} is not a whole number") from None


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()  # loaded here, not between fork and exec


def _set_parent_death_signal() -> None:
    """In the child before exec: SIGTERM when runlab itself dies (even kill -9), so no orphans."""
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    ready: threading.Event = field(default_factory=threading.Event)
    ready_pattern: re.Pattern | None = None
    pump: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal the child's whole process group (Celery's pool processes included)."""
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Command(BaseCommand):
    help = "Start the development lab: Redis (if needed), Daphne and a Celery worker; Ctrl-C stops everything."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000).")
        # Two runs at once, each on one BLAS thread: on a 2-core machine, two single-threaded
        # runs train more in total than one run on two threads, because a 784-256-128-10
        # epoch does not halve with a second thread (0.62 s with 2 threads against 1.05 s
        # with 1, measured: 1.7x, not 2x). So concurrency x BLAS threads = cores, split the
        # wide way. One user waiting for a single run gets it a bit slower; set
        # TUNER_WORKER_CONCURRENCY=1 TUNER_BLAS_THREADS=2 for that.
        parser.add_argument("--concurrency", type=positive_int,
                            default=_env_int("TUNER_WORKER_CONCURRENCY", 2),
                            help="Runs trained in parallel (env TUNER_WORKER_CONCURRENCY, default 2).")
        parser.add_argument("--blas-threads", type=positive_int, default=_env_int("TUNER_BLAS_THREADS", 1),
                            help="BLAS threads per run (env TUNER_BLAS_THREADS, default 1).")

    # ------------------------------------------------------------------ entry point

    def handle(self, *args, host: str, port: int, concurrency: int, blas_threads: int, **options):
        if settings.PRODUCTION:
            raise CommandError("runlab is the development launcher. In production run Daphne and the Celery "
                               "worker under a process manager (see README).")
        if concurrency < 1 or blas_threads < 1:
            raise CommandError("--concurrency and --blas-threads must be at least 1")
        self.children: list[Child] = []
        self._lock = threading.Lock()
        self._signals = 0
        self._check_port_free(host, port)

        # From here on Ctrl-C only sets a flag: a migration is never cut in half, and
        # whatever was started is stopped in order.
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM,
                                                                          signal.SIGHUP)}
        exit_code = 0
        try:
            self._say("Preparing the database ...")
            call_command("migrate", interactive=False, verbosity=0)
            if getattr(settings, "STATIC_ROOT", None):
                call_command("collectstatic", interactive=False, verbosity=0)
            admin_command = ensure_admin.Command(stdout=self.stdout, stderr=self.stderr)
            call_command(admin_command)
            login = admin_command.login or (ensure_admin.admin_username(), None)
            if not self._stopping:
                exit_code = self._run(host, port, concurrency, blas_threads, login)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if exit_code:
            sys.exit(exit_code)
        self._say("Stopped.")

    def _run(self, host, port, concurrency, blas_threads, login) -> int:
        redis_note = self._ensure_redis()
        connections.close_all()  # the launcher keeps no database connection open for hours
        if self._stopping:
            return 0

        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        web_host = _url_host(host)
        self._start("web", [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
                            "tuner_site.asgi:application"], base_env)
        blas = str(blas_threads)
        worker_env = {**base_env, "OPENBLAS_NUM_THREADS": blas, "OMP_NUM_THREADS": blas,
                      "MKL_NUM_THREADS": blas}
        # mingle/gossip synchronise workers' revoke lists and clocks: unused here, and they
        # add a second of start-up and steady Redis chatter.
        self._start("worker", [sys.executable, "-m", "celery", "-A", "tuner_site", "worker", "-l", "INFO",
                               "-c", str(concurrency), "-Q", settings.TUNER_QUEUE, "--hostname", "tuner@%h",
                               "--without-mingle", "--without-gossip"],
                    worker_env, ready_pattern=WORKER_READY)

        failed = self._wait_until_up(host, port)
        if failed is not None:
            return failed
        if self._stopping:
            return 0

        connect = _url_host(self._connect_host(host))
        url = f"http://{connect}:{port}/"
        username, password = login
        worker = self._child("worker")
        lines = [
            "",
            "=" * 72,
            f"  Tuner is running at {url}",
            f"    admin:     {url}admin/",
            f"    API docs:  {url}api/docs/",
            f"    login:     {username} / {password}" if password else
            f"    login:     {username} (password unknown: python manage.py changepassword {username})",
            f"    worker:    {concurrency} run(s) in parallel, {blas_threads} BLAS thread(s) each, "
            f"queue {settings.TUNER_QUEUE!r}" + ("" if worker.ready.is_set() else " (still starting)"),
            f"    redis:     {redis_note}",
            f"    database:  {self._database_note()}",
        ]
        if host in ("0.0.0.0", "::"):
            lines.append(f"    listening on all interfaces ({web_host}); other machines also need their "
                         "host name in ALLOWED_HOSTS")
        lines += ["  Ctrl-C stops everything.", "=" * 72, ""]
        self._say("\n".join(lines))
        return self._supervise()

    # ------------------------------------------------------------------ checks

    def _check_port_free(self, host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise CommandError(f"Cannot serve on {host!r}: {exc}") from None
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}") from None
                raise CommandError(
                    f"Port {port} on {host} is already in use. Is another `make run` "
                    f"running? Stop it, or choose another port: python manage.py runlab --port {port + 1}  "
                    f"(to see who holds it: ss -ltnp 'sport = :{port}')") from None

    @staticmethod
    def _connect_host(host: str) -> str:
        return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)

    @staticmethod
    def _database_note() -> str:
        db = settings.DATABASES["default"]
        vendor = db["ENGINE"].rsplit(".", 1)[-1]
        if vendor == "sqlite3":
            return f"SQLite {db['NAME']}"
        return f"{vendor} {db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db.get('NAME')}"

    @staticmethod
    def _redis_answers(url: str) -> bool:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except redis.AuthenticationError as exc:
            raise CommandError(f"Redis at {_mask(url)} answers but refuses the credentials: {exc}") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        except redis.ResponseError as exc:  # e.g. protected mode, LOADING
            raise CommandError(f"Redis at {_mask(url)} answers with an error: {exc}") from None
        finally:
            client.close()

    def _ensure_redis(self) -> str:
        url = settings.REDIS_URL
        shown = _mask(url)
        if self._redis_answers(url):
            return f"{shown} (already running)"
        parts = urlsplit(url)
        local = parts.scheme == "redis" and (parts.hostname or "localhost") in LOCAL_HOSTS
        if not local:
            raise CommandError(
                f"Redis does not answer at {shown}. It is not on this machine, so runlab will not start "
                "one: start it there, or point REDIS_URL at a running Redis.")
        binary = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                                  if os.access("/usr/bin/redis-server", os.X_OK) else None)
        if binary is None:
            raise CommandError(
                f"Redis does not answer at {shown}, and redis-server is not installed, so runlab cannot "
                "start it. Install Redis and start it, then run `make run` again:\n"
                "    Debian/Ubuntu:  sudo apt-get install redis-server   (starts it as a service)\n"
                "    macOS:          brew install redis && brew services start redis\n"
                "    Docker:         docker run -d --name tuner-redis -p 6379:6379 redis:7\n"
                "or set REDIS_URL to a Redis that is running.")
        redis_port = parts.port or 6379
        bind = "::1" if parts.hostname == "::1" else "127.0.0.1"
        command = [binary, "--port", str(redis_port), "--bind", bind, "--save", "", "--appendonly", "no",
                   "--daemonize", "no", "--loglevel", "warning", "--dir", str(settings.VAR_DIR)]
        if parts.password:
            command += ["--requirepass", parts.password]
        self._say(f"Redis does not answer at {shown}; starting {binary} on port {redis_port} "
                  "(in memory only: it stops with runlab) ...")
        child = self._start("redis", command, dict(os.environ))
        deadline = time.monotonic() + 15
        while not self._redis_answers(url):
            if not child.alive:
                raise CommandError(f"redis-server exited with code {child.proc.returncode} (see its output "
                                   "above); is the port taken by something that is not Redis?")
            if self._stopping:
                return shown
            if time.monotonic() > deadline:
                raise CommandError(f"redis-server started but does not answer at {shown} after 15 s")
            time.sleep(0.1)
        self._requeue_stranded_runs()
        return f"{shown} (started by runlab, pid {child.proc.pid})"

    def _requeue_stranded_runs(self) -> None:
        """A fresh in-memory Redis holds no messages: hand the runs that were waiting back to it.

        Their previous messages died with the previous runlab's Redis. The claim in
        services.experiment_claim makes this safe: a run that cannot be claimed is skipped.
        """
        from experiments import services

        # No worker of the previous session survives its Redis: every running run is stranded.
        report = services.runs_reconcile(include_all_running=True, queued_min_age_seconds=0)
        stranded = sorted(report["requeued_queued"] + report["requeued_stale"])
        if stranded:
            self._say(f"Re-queued {len(stranded)} run(s) left queued or running by the previous session: "
                      + ", ".join(f"#{pk}" for pk in stranded))

    # ------------------------------------------------------------------ children

    def _start(self, name: str, command: list[str], env: dict[str, str], *,
               ready_pattern: re.Pattern | None = None) -> Child:
        proc = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_set_parent_death_signal if _LIBC is not None else None,
        )
        child = Child(name=name, proc=proc, ready_pattern=ready_pattern)
        child.pump = threading.Thread(target=self._pump, args=(child,), name=f"runlab-{name}", daemon=True)
        child.pump.start()
        self.children.append(child)
        return child

    def _pump(self, child: Child) -> None:
        prefix = f"{child.name:>6} | "
        for raw in iter(child.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if child.ready_pattern is not None and child.ready_pattern.search(line):
                child.ready.set()
            self._say(prefix + line)
        child.proc.stdout.close()

    def _child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def _say(self, text: str) -> None:
        with self._lock:
            try:
                self.stdout.write(text)
                self.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass

    def _first_dead(self) -> Child | None:
        return next((child for child in self.children if not child.alive), None)

    def _report_dead(self, child: Child) -> int:
        code = child.proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        with self._lock:
            self.stderr.write(f"runlab: {child.name} ({' '.join(child.proc.args[:4])} ...) {how} unexpectedly; "
                              "stopping the others.")
        return 1

    def _wait_until_up(self, host: str, port: int) -> int | None:
        """Wait for HTTP to answer (and the worker to say it is ready); an exit code on failure."""
        url = f"http://{_url_host(self._connect_host(host))}:{port}{READY_PATH}"
        deadline = time.monotonic() + START_TIMEOUT
        web_up = False
        worker = self._child("worker")
        while time.monotonic() < deadline and not self._stopping:
            dead = self._first_dead()
            if dead is not None:
                return self._report_dead(dead)
            if not web_up:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        web_up = response.status < 500
                except urllib.error.HTTPError as exc:
                    web_up = exc.code < 500
                    if not web_up:
                        self._say(f"runlab: {url} answers {exc.code}; waiting ...")
                except OSError:
                    pass
            if web_up and worker.ready.is_set():
                return None
            # The worker gets a little longer than the web server, then the banner says it is starting.
            if web_up and time.monotonic() > deadline - START_TIMEOUT / 2:
                return None
            time.sleep(0.2)
        if self._stopping:
            return None
        if not web_up:
            with self._lock:
                self.stderr.write(f"runlab: the web server did not answer {url} within {START_TIMEOUT:.0f} s.")
            return 1
        return None

    def _supervise(self) -> int:
        while not self._stopping:
            dead = self._first_dead()
            if dead is not None:
                return self._report_dead(dead)
            time.sleep(0.2)
        return 0

    # ------------------------------------------------------------------ stopping

    @property
    def _stopping(self) -> bool:
        return self._signals > 0

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        if self._signals == 1:
            self._say(f"\nrunlab: {signal.Signals(signum).name} received, stopping (again to kill at once) ...")

    def _stop_all(self) -> None:
        """Web and worker first (SIGTERM, cold-stop a busy worker, SIGKILL at 10 s), Redis last."""
        apps = [child for child in self.children if child.name != "redis"]
        self._terminate(apps, cold_worker=True)
        self._terminate([child for child in self.children if child.name == "redis"], cold_worker=False)
        for child in self.children:
            if child.pump is not None:
                child.pump.join(timeout=2)

    def _terminate(self, children: list[Child], *, cold_worker: bool) -> None:
        if not children:
            return
        for child in children:
            if child.alive:
                child.proc.send_signal(signal.SIGTERM)
        signals_before = self._signals
        start = time.monotonic()
        cold_sent = False
        while any(child.alive for child in children):
            elapsed = time.monotonic() - start
            if elapsed > STOP_TIMEOUT or self._signals > signals_before:
                break
            if cold_worker and not cold_sent and elapsed > WORKER_COLD_AFTER:
                for child in children:
                    if child.name == "worker" and child.alive:
                        self._say("runlab: the worker is still training; interrupting the run (it goes back "
                                  "on the queue and resumes from its last checkpoint next time) ...")
                        child.proc.send_signal(signal.SIGQUIT)
                cold_sent = True
            time.sleep(0.05)
        for child in children:
            if child.alive:
                self._say(f"runlab: {child.name} did not stop; killing it.")
            # The whole group: a killed Celery parent must not leave pool processes behind.
            child.signal_group(signal.SIGKILL)
            try:
                child.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

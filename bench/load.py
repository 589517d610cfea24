"""Load: 20 users queue 5 short runs each over the REST API while 50 websocket clients follow them.

Starts its own stack (bench/queue_overhead.py's: temporary var dir with SQLite, or a temporary
database on DATABASE_URL's PostgreSQL; Redis database 12 with its own queue and prefix), a
Daphne process on a free loopback port and 2 Celery worker subprocesses (prefork, -c 1). Phase 1:
the users queue their runs while the clients subscribe; phase 2 starts the workers once every
run socket has its snapshot (these runs train in well under a second: otherwise most would be
over before their sockets open, and "every client gets every epoch event" would measure that). Everything is bounded:
100 runs (train_size 500, 2 epochs, hidden [16]), 50 clients, a 300 s overall deadline.

- API: each user has a token (created in the database) and POSTs its 5 runs to /api/experiments/,
  then polls GET /api/experiments/ until they are finished; every request is timed.
- Websockets (a minimal asyncio client in this file; nothing extra installed): 50
  clients, client i for user i % 20, logged in through /login/ (session cookie). Each opens
  ws/experiments/ and, for every run its user queues, ws/experiments/<id>/, and counts the
  epoch events it receives (live) and the epochs in the run's snapshot.
- Event latency: receive time of an epoch event minus its EpochMetric.recorded_at.
- Peak memory: VmHWM of the Daphne process and of each worker process (parent and pool child).

    .venv/bin/python bench/load.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/load.py
"""

from __future__ import annotations

import asyncio
import base64
import http.cookiejar
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from queue_overhead import ROOT, Stack, percentile  # noqa: E402 - sets the environment first

USERS, RUNS_PER_USER, CLIENTS, WORKERS = 20, 5, 50, 2
CONFIG = {"train_size": 500, "epochs": 2, "hidden_layers": [16]}
DEADLINE_SECONDS = 300.0
PASSWORD = "load-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(command: list[str], log: Path, ready, env: dict) -> subprocess.Popen:
    """Start a process; `ready` is a log line fragment (bytes) or a port to answer (int)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while not (port_open(ready) if isinstance(ready, int) else ready in log.read_bytes()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{command[2]} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


class Api:
    def __init__(self, base: str):
        self.base = base
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def call(self, method: str, path: str, token: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Token {token}", "Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with self.lock:
                self.errors.append(f"{method} {path}: {exc.code} {exc.read()[:200]!r}")
            payload = None
        with self.lock:
            self.latencies.append(time.perf_counter() - started)
        return payload


def login(base: str, username: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD,
                                   "csrfmiddlewaretoken": token}).encode()
    opener.open(urllib.request.Request(base + "/login/", data=form, headers={"Referer": base + "/login/"}),
                timeout=30).read()
    session = next((c.value for c in jar if c.name == "sessionid"), None)
    if session is None:
        raise SystemExit(f"could not log in as {username}")
    return session


class WsClients:
    """All websocket clients on one asyncio loop: a minimal RFC 6455 client on asyncio streams.

    (autobahn's asyncio client cannot be used here: Django's app loading imports daphne, which
    pins txaio to Twisted; the `websockets` package is not installed and nothing new is.)
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # (client, run) -> {"live": epochs from epoch events, "snapshot": epochs in the snapshot}
        self.seen: dict[tuple[int, int], dict[str, set]] = {}
        self.received_at: list[tuple[int, int, float]] = []  # (run, epoch, time.time())
        self.failures: list[str] = []
        self.tasks: list = []
        self.subscribed: set = set()
        self.stopping = False

    @staticmethod
    def _frame(opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked  # client frames < 126 bytes

    async def _session(self, path: str, session: str, key) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            handshake = (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"
                         f"\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{self.host}:{self.port}\r\n"
                         f"Cookie: sessionid={session}\r\n\r\n")
            writer.write(handshake.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status_line:
                self.failures.append(f"{path}: {status_line!r}")
                return
            message = b""
            while True:
                first, second = await reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    length = struct.unpack("!H", await reader.readexactly(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", await reader.readexactly(8))[0]
                data = await reader.readexactly(length)
                opcode = first & 0x0F
                if opcode == 0x9:  # ping: Daphne closes sockets that do not answer
                    writer.write(self._frame(0xA, data))
                    continue
                if opcode == 0x8:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    if code not in (1000, None) and not self.stopping:
                        self.failures.append(f"{path}: closed by the server with {code}")
                    return
                message += data
                if not first & 0x80:
                    continue  # a fragment: wait for the rest
                event, message = json.loads(message), b""
                if key is None:
                    continue
                if event.get("type") == "snapshot":
                    self.seen[key]["snapshot"] |= {m.get("epoch") for m in event.get("metrics") or []}
                    self.subscribed.add(key)
                elif event.get("type") == "epoch":
                    self.seen[key]["live"].add(event["epoch"])
                    self.received_at.append((key[1], event["epoch"], time.time()))
                elif event.get("type") == "finished":
                    writer.write(self._frame(0x8, struct.pack("!H", 1000)))
                    await writer.drain()
                    return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if not self.stopping:
                self.failures.append(f"{path}: {type(exc).__name__} {exc}")
        finally:
            writer.close()

    def open(self, path: str, session: str, key=None) -> None:
        if key is not None:
            self.seen[key] = {"live": set(), "snapshot": set()}
        self.tasks.append(asyncio.run_coroutine_threadsafe(self._session(path, session, key), self.loop))

    def close(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        time.sleep(0.5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def main() -> None:
    stack = Stack()
    procs: dict[str, subprocess.Popen] = {}
    clients = None
    try:
        os.environ.update(TUNER_THROTTLE_RUN_CREATE="1000/min", TUNER_THROTTLE_AUTH="1000/min",
                          TUNER_MAX_ACTIVE_RUNS_PER_USER="100")
        stack.setup_django()
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from experiments.models import EpochMetric, Experiment
        from experiments.services.tokens import token_create

        db = settings.DATABASES["default"]
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        procs["web"] = start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                              "tuner_site.asgi:application"], stack.var_dir / "web.log", port, env)

        def start_workers() -> None:
            for number in range(WORKERS):
                procs[f"worker{number}"] = start(
                    [sys.executable, "-m", "celery", "-A", "tuner_site", "worker", "-l", "INFO", "-c", "1",
                     "-Q", settings.TUNER_QUEUE, "--hostname", f"load{number}@%h", "--without-mingle",
                     "--without-gossip"], stack.var_dir / f"worker{number}.log", b" ready.", env)
        print(f"database: {db['ENGINE'].rsplit('.', 1)[-1]}; web 127.0.0.1:{port}; {WORKERS} workers (prefork -c 1); "
              f"{USERS} users x {RUNS_PER_USER} runs {CONFIG}; {CLIENTS} websocket clients; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

        users = [get_user_model().objects.create_user(f"load{i}", password=PASSWORD) for i in range(USERS)]
        tokens = {user.pk: token_create(user=user)[1] for user in users}
        base = f"http://127.0.0.1:{port}"
        with ThreadPoolExecutor(8) as pool:
            sessions = dict(zip([u.pk for u in users], pool.map(lambda u: login(base, u.username), users)))
        clients = WsClients("127.0.0.1", port)
        client_users = {c: users[c % USERS].pk for c in range(CLIENTS)}
        for user_id in client_users.values():
            clients.open("/ws/experiments/", sessions[user_id])
        api = Api(base + "/api")
        run_ids: dict[int, list[int]] = {}
        started = time.monotonic()

        def create_runs(user) -> None:
            token = tokens[user.pk]
            ids = []
            for number in range(RUNS_PER_USER):
                created = api.call("POST", "/experiments/", token, {"name": f"load {number}", "config": CONFIG})
                if created and "id" in created:
                    ids.append(created["id"])
                    for client, owner in client_users.items():
                        if owner == user.pk:
                            clients.open(f"/ws/experiments/{created['id']}/", sessions[user.pk],
                                         key=(client, created["id"]))
            run_ids[user.pk] = ids

        def poll_runs(user) -> None:
            token, ids = tokens[user.pk], run_ids[user.pk]
            while time.monotonic() - started < DEADLINE_SECONDS:
                listing = api.call("GET", "/experiments/?limit=50", token) or {}
                rows = listing.get("results", [])
                if rows and all(r["status"] not in ("queued", "running") for r in rows if r["id"] in ids):
                    return
                time.sleep(1.0)

        # Phase 1: every user queues its runs while the clients subscribe. The workers start once
        # every run socket has its snapshot, so that every epoch event has subscribers to reach.
        with ThreadPoolExecutor(USERS) as pool:
            list(pool.map(create_runs, users))
        created = time.monotonic() - started
        while len(clients.subscribed) < len(clients.seen) and time.monotonic() - started < 120:
            time.sleep(0.1)
        subscribed = time.monotonic() - started
        print(f"phase 1: {sum(map(len, run_ids.values()))} runs created in {created:.1f} s; "
              f"{len(clients.subscribed)} of {len(clients.seen)} run sockets had their snapshot after "
              f"{subscribed:.1f} s; starting the workers")
        start_workers()
        # Phase 2: training, with every user polling its list once a second.
        with ThreadPoolExecutor(USERS) as pool:
            list(pool.map(poll_runs, users))
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # the last events in flight

        all_ids = [i for ids in run_ids.values() for i in ids]
        finished = Experiment.objects.filter(pk__in=all_ids, status="succeeded").count()
        expected_epochs = CONFIG["epochs"]
        per_pair_live = [len(v["live"]) for v in clients.seen.values()]
        complete_live = sum(1 for n in per_pair_live if n == expected_epochs)
        complete_any = sum(1 for v in clients.seen.values() if len(v["live"] | v["snapshot"]) == expected_epochs)
        recorded = {(m.experiment_id, m.epoch): m.recorded_at.timestamp()
                    for m in EpochMetric.objects.filter(experiment_id__in=all_ids)}
        latencies = [at - recorded[(run, epoch)] for run, epoch, at in clients.received_at
                     if (run, epoch) in recorded]
        memory = {"web (daphne)": vm_hwm_kb(procs["web"].pid)}
        for number in range(WORKERS):
            pid = procs[f"worker{number}"].pid
            memory[f"worker{number} parent"] = vm_hwm_kb(pid)
            for child in children_of(pid):
                memory[f"worker{number} pool child {child}"] = vm_hwm_kb(child)

        print(f"\nruns: {len(all_ids)} created, {finished} succeeded; all done {elapsed:.1f} s after the first POST")
        print(f"websocket run subscriptions: {len(clients.seen)} (client, run) pairs; "
              f"got all {expected_epochs} epoch events live: {complete_live}; "
              f"all epochs via snapshot + events: {complete_any}; "
              f"epoch events received in total: {sum(per_pair_live)} of {len(clients.seen) * expected_epochs}")
        print(f"websocket failures: {len(clients.failures)} {clients.failures[:3]}")
        print(f"API: {len(api.latencies)} requests, errors {len(api.errors)} {api.errors[:3]}; latency p50 "
              f"{percentile(api.latencies, 50) * 1000:.0f} ms, p95 {percentile(api.latencies, 95) * 1000:.0f} ms, "
              f"max {max(api.latencies) * 1000:.0f} ms")
        if latencies:
            print(f"epoch event latency (EpochMetric write -> websocket client): p50 "
                  f"{percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms, "
                  f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} events")
        print("peak RSS (VmHWM): " + ", ".join(f"{name} {kb / 1024:.0f} MB" for name, kb in memory.items()))
        print(f"load average now {os.getloadavg()[0]:.2f}")
    finally:
        if clients is not None:
            clients.close()
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if name.startswith("worker") else signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        stack.close()


if __name__ == "__main__":
    main()

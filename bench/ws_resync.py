"""Hostile websocket clients and /health: what they cost everybody else.

Prints figures; asserts nothing. Starts its own stack (bench/queue_overhead.py's: a temporary
var dir with SQLite, or a temporary database on DATABASE_URL's PostgreSQL; Redis database 12
with its own prefix) and one Daphne process on a free loopback port; no worker.

(a) resync: a run with 30 stored epochs and its advice (trained in this process first). A
    measuring client opens ws/experiments/<id>/ again and again and times TCP connect ->
    snapshot received, first on a quiet server, then while three other clients of the same
    user send {"type":"resync"} in a loop: paced (each waits for the answer, at most 0.5 s,
    and sends the next one), then flooding (50 a second each, whatever comes back). Prints
    median/p95 of each phase, and what the three got: snapshots, errors.
(b) /health: anonymous GETs one after another, then 10 at once; median/p95 of each.

    .venv/bin/python bench/ws_resync.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/ws_resync.py
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import PASSWORD, WsClients, free_port, login, start  # noqa: E402 - sets the environment first
from queue_overhead import Stack, percentile  # noqa: E402

MEASUREMENTS = 40
HOSTILE_CLIENTS = 3
HOSTILE_WAIT_SECONDS = 0.5
FLOOD_PER_SECOND = 50
HEALTH_CALLS = 20
HEALTH_CONCURRENCY = 10
CONFIG = {"hidden_layers": [32], "epochs": 30, "train_size": 1000, "batch_size": 64, "lr_schedule": "constant"}


class Socket:
    """One websocket on asyncio streams (client frames are short: resync and pings)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str, session: str) -> Socket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Origin: http://127.0.0.1:{port}\r\nCookie: sessionid={session}\r\n\r\n").encode())
        status = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise RuntimeError(f"{path}: {status!r}")
        return cls(reader, writer)

    async def send(self, event: dict) -> None:
        self.writer.write(WsClients._frame(0x1, json.dumps(event).encode()))
        await self.writer.drain()

    async def receive(self) -> dict:
        """The next JSON message (answers the server's pings on the way)."""
        payload = b""
        while True:
            head = await self.reader.readexactly(2)
            size = head[1] & 0x7F
            if size in (126, 127):
                extended = await self.reader.readexactly(2 if size == 126 else 8)
                size = struct.unpack("!H" if size == 126 else "!Q", extended)[0]
            chunk = await self.reader.readexactly(size)
            kind = head[0] & 0x0F
            if kind == 0x8:
                raise ConnectionError(f"closed by the server: {chunk[:2].hex()}")
            if kind == 0x9:
                self.writer.write(WsClients._frame(0xA, chunk))
                continue
            payload += chunk
            if head[0] & 0x80:
                return json.loads(payload)

    async def close(self) -> None:
        self.writer.write(WsClients._frame(0x8, struct.pack("!H", 1000)))
        self.writer.close()


async def connect_to_snapshot(port: int, path: str, session: str) -> float:
    started = time.perf_counter()
    sock = await Socket.open(port, path, session)
    try:
        while (await sock.receive()).get("type") != "snapshot":
            pass
        return time.perf_counter() - started
    finally:
        await sock.close()


async def measure(port: int, path: str, session: str) -> list[float]:
    times = []
    for _ in range(MEASUREMENTS):
        times.append(await connect_to_snapshot(port, path, session))
        await asyncio.sleep(0.05)
    return times


async def resync_loop(port: int, path: str, session: str, stop: asyncio.Event, counts: dict,
                      flood: bool) -> None:
    """Paced: send, wait for the answer (at most HOSTILE_WAIT_SECONDS), send again. Flood: send
    FLOOD_PER_SECOND resyncs a second whatever comes back."""
    sock = await Socket.open(port, path, session)
    await sock.receive()  # the connect snapshot

    async def read_forever() -> None:
        while True:
            kind = (await sock.receive()).get("type")
            counts[kind] = counts.get(kind, 0) + 1
            answered.set()

    answered = asyncio.Event()
    reader = asyncio.ensure_future(read_forever())
    try:
        while not stop.is_set():
            answered.clear()
            await sock.send({"type": "resync"})
            counts["sent"] += 1
            if flood:
                await asyncio.sleep(1 / FLOOD_PER_SECOND)
            else:
                waiter = asyncio.ensure_future(answered.wait())
                await asyncio.wait({waiter}, timeout=HOSTILE_WAIT_SECONDS)
                waiter.cancel()
    finally:
        reader.cancel()
        await sock.close()


async def hostile_phase(port: int, path: str, session: str, flood: bool) -> tuple[list[float], dict, float]:
    stop = asyncio.Event()
    counts = {"sent": 0}
    loops = [asyncio.ensure_future(resync_loop(port, path, session, stop, counts, flood))
             for _ in range(HOSTILE_CLIENTS)]
    await asyncio.sleep(1.0)  # let them get going
    started = time.perf_counter()
    times = await measure(port, path, session)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*loops, return_exceptions=True)
    return times, counts, elapsed


def health_call(base: str) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(base + "/health", timeout=30) as response:
            code = response.status
            response.read()
    except urllib.error.HTTPError as exc:
        code = exc.code
    return time.perf_counter() - started, code


def summary(times: list[float]) -> str:
    return (f"median {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms (n={len(times)})")


def main() -> None:
    stack = Stack()
    web = None
    try:
        os.environ.update(TUNER_THROTTLE_HEALTH="100000/min")  # measure the probe, not its throttle
        stack.setup_django()
        from django.contrib.auth import get_user_model

        from experiments import services

        user = get_user_model().objects.create_user("resync", password=PASSWORD)
        run = services.experiment_create(owner=user, config=CONFIG, name="resync bench", enqueue=False)
        services.experiment_run(experiment_id=run.pk)
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        web = start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                     "tuner_site.asgi:application"], stack.var_dir / "web.log", port, env)
        base = f"http://127.0.0.1:{port}"
        session = login(base, user.username)
        path = f"/ws/experiments/{run.pk}/"
        print(f"web 127.0.0.1:{port}; run #{run.pk} with {CONFIG['epochs']} epochs; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

        loop = asyncio.new_event_loop()
        loop.run_until_complete(measure(port, path, session))  # warm-up
        quiet = loop.run_until_complete(measure(port, path, session))
        print(f"(a) connect -> snapshot, quiet server:                        {summary(quiet)}")
        for flood in (False, True):
            hostile, counts, elapsed = loop.run_until_complete(hostile_phase(port, path, session, flood))
            how = f"flooding {FLOOD_PER_SECOND}/s" if flood else "resync after resync"
            print(f"    connect -> snapshot, {HOSTILE_CLIENTS} clients {how + ':':22s} {summary(hostile)}")
            got = ", ".join(f"{kind} {n} ({n / elapsed:.1f}/s)" for kind, n in sorted(counts.items()))
            print(f"      what the {HOSTILE_CLIENTS} clients sent and got over {elapsed:.1f} s: {got}")
            time.sleep(3)  # whatever is still queued drains before the next phase
        loop.close()

        sequential = [health_call(base) for _ in range(HEALTH_CALLS)]
        print(f"(b) /health one after another: {summary([t for t, _ in sequential])}; "
              f"codes {sorted({c for _, c in sequential})}")
        with ThreadPoolExecutor(HEALTH_CONCURRENCY) as pool:
            burst = list(pool.map(lambda _: health_call(base), range(HEALTH_CONCURRENCY)))
        print(f"    /health {HEALTH_CONCURRENCY} at once:        {summary([t for t, _ in burst])}; "
              f"codes {sorted({c for _, c in burst})}")
    finally:
        if web is not None:
            stop(web)
        stack.close()


def stop(proc: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM; after `grace_seconds`, SIGKILL to its process group."""
    proc.terminate()
    deadline = time.monotonic() + grace_seconds
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


if __name__ == "__main__":
    main()

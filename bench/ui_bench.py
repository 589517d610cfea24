"""How fast the tuner page is in headless Chromium. Prints figures; asserts nothing.

    .venv/bin/python bench/ui_bench.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/ui_bench.py
    .venv/bin/python bench/ui_bench.py --url http://127.0.0.1:8000 --user admin --password ...

Without --url it runs its own stack, like `make run` (development settings): a temporary var
dir (SQLite; or, when DATABASE_URL is set, a temporary database created on that server and
dropped afterwards), Redis database 11 with its own queue name and channel prefix, Daphne
and a Celery worker (solo pool) as subprocesses, and a user of its own. With --url it uses
that server and account (part (b) then queues one small run there).

Browser: Debian's /usr/bin/chromium, headless, through the venv's Playwright (no download).

(a) load: navigation start -> the tuner's controls are generated (#run-button enabled and the
    first .param present), from performance.now() in the page (0 = navigation start), timed
    by a MutationObserver installed before any page script. Median of 5, each in a fresh
    browser context (cold cache, logged-in cookies) and each as a reload of a warm page.
(b) epoch event -> chart updated: WebSocket is wrapped before the page loads so each "epoch"
    message is timestamped when it arrives (before the page's handler runs); a MutationObserver
    on #loss-chart's data-points gives the time the page has redrawn the chart (Chart.js
    draws synchronously with update("none")), and a requestAnimationFrame after it the start
    of the next frame. A real run of 20 epochs (train_size 2000, one layer of 32).
(c) matrix rain CPU: CDP Performance.getMetrics TaskDuration (main-thread busy time, all
    tasks) and ScriptDuration over 10 s on the idle tuner page with the rain running, then
    10 s after window.TunerRain.stop(); as % of one core. Also the CPU time of the renderer
    and GPU processes (CDP SystemInfo.getProcessInfo), which includes rasterisation off the
    main thread.

Goals: (a) < 1 s, (b) < 16 ms, (c) < 10 % of one core.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REDIS_URL = "redis://127.0.0.1:6379/11"
RUN_ID = f"uibench-{os.getpid()}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
LOADS = 5
CPU_SECONDS = 10.0
RUN_CONFIG = {"train_size": 2000, "epochs": 20, "hidden_layers": [32]}

# Installed before any script of every page: the time the tuner's controls are ready.
READY_PROBE = """(() => {
  const ready = () => {
    const button = document.getElementById('run-button');
    return button && !button.disabled && document.querySelector('#param-groups .param');
  };
  const observer = new MutationObserver(() => {
    if (window.__tunerReady === undefined && ready()) {
      window.__tunerReady = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['disabled']});
})();"""

# Installed before any script: timestamps of each "epoch" message and of the chart redraw it caused.
EPOCH_PROBE = """(() => {
  const Native = window.WebSocket;
  window.__epochs = [];
  let pending = null;
  let watched = null;
  function watchChart() {
    const canvas = document.getElementById('loss-chart');
    if (!canvas || watched === canvas) return;
    watched = canvas;
    new MutationObserver(() => {
      if (!pending) return;
      const record = pending;
      pending = null;
      record.updated = performance.now();
      record.points = Number(canvas.dataset.points);
      requestAnimationFrame(() => { record.frame = performance.now(); });
    }).observe(canvas, {attributes: true, attributeFilter: ['data-points']});
  }
  class ProbedWebSocket extends Native {
    constructor(...args) {
      super(...args);
      // Registered before the page sets onmessage, so it runs first.
      this.addEventListener('message', (event) => {
        const arrived = performance.now();
        if (typeof event.data !== 'string' || !event.data.includes('"epoch"')) return;
        let data;
        try { data = JSON.parse(event.data); } catch (err) { return; }
        if (!data || data.type !== 'epoch') return;
        watchChart();
        pending = {epoch: data.epoch, arrived};
        window.__epochs.push(pending);
      });
    }
  }
  window.WebSocket = ProbedWebSocket;
})();"""


def median(values):
    return statistics.median(values) if values else float("nan")


def fmt_ms(values) -> str:
    return ", ".join(f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values) + " ms"


# --------------------------------------------------------------------------- the stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """Database, Daphne and a Celery worker of this benchmark; everything undone by close()."""

    def __init__(self) -> None:
        self.var_dir = Path(tempfile.mkdtemp(prefix="tuner-uibench-"))
        self.children: list[tuple[str, subprocess.Popen, Path]] = []
        self.pg_admin_url: str | None = None
        self.pg_database: str | None = None
        os.environ.update(TUNER_VAR_DIR=str(self.var_dir), REDIS_URL=REDIS_URL, TUNER_QUEUE=RUN_ID,
                          TUNER_CHANNEL_PREFIX=RUN_ID, DJANGO_SETTINGS_MODULE="tuner_site.settings",
                          DJANGO_ENV="development", OPENBLAS_NUM_THREADS="1")
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith(("postgres://", "postgresql://")):
            import psycopg

            name = RUN_ID.replace("-", "_")
            with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.pg_admin_url, self.pg_database = url, name
            os.environ["DATABASE_URL"] = f"{url.rpartition('/')[0]}/{name}"
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{self.var_dir / 'bench.sqlite3'}"

    def setup(self) -> tuple[str, str]:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        from django.contrib.auth import get_user_model
        from django.db import connections

        password = secrets.token_urlsafe(12)
        get_user_model().objects.create_user("bench", password=password)
        connections.close_all()
        return "bench", password

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.var_dir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.children.append((name, proc, log))
        return proc

    def start(self) -> str:
        port = free_port()
        self._spawn("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                        "tuner_site.asgi:application"])
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "tuner_site", "worker", "-P", "solo",
                                        "-c", "1", "-Q", RUN_ID, "-l", "INFO", "--hostname", f"{RUN_ID}@%h",
                                        "--without-mingle", "--without-gossip"])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        worker_log = self.children[-1][2]
        while True:
            for name, proc, log in self.children:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/login/", timeout=2) as response:
                    web_ok = response.status == 200
            except (urllib.error.URLError, OSError):
                web_ok = False
            if web_ok and b" ready." in worker_log.read_bytes():
                return url
            if time.monotonic() > deadline:
                raise SystemExit("the stack did not start within 60 s")
            time.sleep(0.1)

    def dump_logs(self) -> None:
        for name, _proc, log in self.children:
            print(f"--- {name} log (tail) ---\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)

    def close(self) -> None:
        for name, proc, _log in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if name == "worker" else signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = [*client.scan_iter(f"{RUN_ID}*"), *client.scan_iter(f"_kombu.binding.{RUN_ID}*")]
            if keys:
                client.delete(*keys)
        except Exception as exc:  # noqa: BLE001
            print(f"(could not clean Redis: {exc})")
        if self.pg_database:
            import psycopg

            with psycopg.connect(self.pg_admin_url.replace("postgres://", "postgresql://", 1),
                                 autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')
        shutil.rmtree(self.var_dir, ignore_errors=True)


# --------------------------------------------------------------------------- the page


def login(context, base: str, user: str, password: str) -> None:
    page = context.new_page()
    page.goto(f"{base}/login/?next=/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.close()


def ready_time(page) -> float:
    page.wait_for_function("window.__tunerReady !== undefined", timeout=30_000)
    return page.evaluate("window.__tunerReady")


def nav_timing(page) -> dict:
    return page.evaluate("""() => {
        const n = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource')
          .map((r) => ({name: r.name.replace(location.origin, ''), start: r.startTime, end: r.responseEnd,
                        duration: r.duration}))
          .sort((a, b) => b.end - a.end);
        return {response: n.responseEnd, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, resources};
    }""")


def short_name(path: str) -> str:
    path = path.split("?")[0]
    return path if path.startswith("/api/") else path.rsplit("/", 1)[-1]


def bench_load(browser, base: str, state: dict) -> None:
    print(f"\n(a) navigation start -> controls generated (#run-button enabled, first .param), {LOADS} loads")
    cold, cold_nav, busy = [], [], []
    for _ in range(LOADS):
        context = browser.new_context(viewport=VIEWPORT, storage_state=state)
        context.add_init_script(READY_PROBE)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(f"{base}/", wait_until="commit")
        cold.append(ready_time(page))
        busy.append(metrics(cdp))
        page.wait_for_load_state("load")
        cold_nav.append(nav_timing(page))
        context.close()
    context = browser.new_context(viewport=VIEWPORT, storage_state=state)
    context.add_init_script(READY_PROBE)
    page = context.new_page()
    page.goto(f"{base}/")
    ready_time(page)
    warm, warm_nav = [], []
    for _ in range(LOADS):
        page.reload(wait_until="commit")
        warm.append(ready_time(page))
        page.wait_for_load_state("load")
        warm_nav.append(nav_timing(page))
    context.close()
    for label, times, navs in (("cold cache (new context)", cold, cold_nav), ("warm cache (reload)", warm, warm_nav)):
        print(f"    {label:26s} median {median(times):.0f} ms   [{fmt_ms(times)}]")
        print(f"    {'':26s} (HTML responseEnd {median([n['response'] for n in navs]):.0f} ms, "
              f"DOMContentLoaded {median([n['dcl'] for n in navs]):.0f} ms, "
              f"load {median([n['load'] for n in navs]):.0f} ms)")
        spans: dict[str, list[tuple[float, float]]] = {}
        for nav in navs:
            for resource in nav["resources"]:
                spans.setdefault(resource["name"], []).append((resource["start"], resource["end"]))
        latest = sorted(spans.items(), key=lambda item: -median([end for _, end in item[1]]))[:3]
        print(f"    {'':26s} last resources (start-end): " + "; ".join(
            f"{short_name(name)} {median([a for a, _ in span]):.0f}-{median([b for _, b in span]):.0f} ms"
            for name, span in latest))
        if navs is cold_nav:
            print(f"    {'':26s} main thread busy until ready: " + ", ".join(
                f"{name} {median([m[key] * 1000 for m in busy]):.0f} ms" for key, name in (
                    ("TaskDuration", "all tasks"), ("ScriptDuration", "script"), ("LayoutDuration", "layout"),
                    ("RecalcStyleDuration", "style"))))


def bench_epochs(browser, base: str, state: dict) -> None:
    print(f"\n(b) 'epoch' websocket message -> loss chart redrawn; one run {RUN_CONFIG}")
    context = browser.new_context(viewport=VIEWPORT, storage_state=state)
    context.add_init_script(READY_PROBE)
    context.add_init_script(EPOCH_PROBE)
    page = context.new_page()
    page.goto(f"{base}/")
    ready_time(page)
    page.click("button[data-preset='fast_check']")
    page.fill("#param-train_size-number", str(RUN_CONFIG["train_size"]))
    page.fill("#param-epochs-number", str(RUN_CONFIG["epochs"]))
    page.locator("#hidden-layers .hidden-layer-size").first.fill(str(RUN_CONFIG["hidden_layers"][0]))
    page.fill("#run-name", "ui bench")
    page.click("#run-button")
    page.wait_for_function("['succeeded', 'failed', 'diverged', 'cancelled']"
                           ".includes(document.getElementById('run-status').textContent)", timeout=120_000)
    page.wait_for_timeout(300)  # the last frame
    records = page.evaluate("window.__epochs")
    status = page.locator("#run-status").text_content()
    # For comparison, with the worker idle: one redraw of both charts as they are now (Chart.js
    # update("none"), what one epoch event costs the charts), median of 20.
    redraw = page.evaluate("""() => {
        const charts = ['loss-chart', 'accuracy-chart'].map((id) => Chart.getChart(document.getElementById(id)));
        const times = [];
        for (let i = 0; i < 20; i++) {
            const start = performance.now();
            charts.forEach((chart) => chart.update('none'));
            times.push(performance.now() - start);
        }
        times.sort((a, b) => a - b);
        return times[10];
    }""")
    context.close()
    updated = [r["updated"] - r["arrived"] for r in records if "updated" in r]
    frames = [r["frame"] - r["arrived"] for r in records if "frame" in r]
    print(f"    run {status}; {len(records)} epoch messages, {len(updated)} chart updates observed")
    if updated:
        print(f"    message -> chart redrawn (data-points):  median {median(updated):.2f} ms, "
              f"p90 {sorted(updated)[int(0.9 * (len(updated) - 1))]:.2f} ms, max {max(updated):.2f} ms")
    if frames:
        print(f"    message -> next animation frame:        median {median(frames):.2f} ms, "
              f"max {max(frames):.2f} ms")
    print(f"    both charts redrawn alone, worker idle:  median {redraw:.2f} ms (update('none') of 2 x 20 points)")


def metrics(cdp) -> dict:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def process_cpu(browser_cdp) -> dict:
    if browser_cdp is None:
        return {}
    try:
        info = browser_cdp.send("SystemInfo.getProcessInfo")["processInfo"]
    except Exception:  # noqa: BLE001 - not every build answers this
        return {}
    totals: dict[str, float] = {}
    for process in info:
        totals[process["type"]] = totals.get(process["type"], 0.0) + process["cpuTime"]
    return totals


def measure_cpu(page, cdp, browser_cdp, seconds: float) -> dict:
    before, processes_before, wall = metrics(cdp), process_cpu(browser_cdp), time.perf_counter()
    page.wait_for_timeout(seconds * 1000)
    after, processes_after, wall = metrics(cdp), process_cpu(browser_cdp), time.perf_counter() - wall
    result = {key: (after[key] - before[key]) / wall * 100
              for key in ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")}
    for kind in ("renderer", "GPU"):
        if kind in processes_before and kind in processes_after:
            result[f"{kind} process"] = (processes_after[kind] - processes_before[kind]) / wall * 100
    result["seconds"] = wall
    return result


def bench_rain(browser, base: str, state: dict) -> None:
    print(f"\n(c) matrix rain CPU on the idle tuner page, {CPU_SECONDS:.0f} s each, % of one core")
    context = browser.new_context(viewport=VIEWPORT, storage_state=state)
    context.add_init_script(READY_PROBE)
    page = context.new_page()
    page.goto(f"{base}/")
    ready_time(page)
    page.wait_for_timeout(1500)  # fonts, first chart layout, websocket-free idle page
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    try:
        browser_cdp = browser.new_browser_cdp_session()
    except Exception:  # noqa: BLE001
        browser_cdp = None
    running = page.evaluate("window.TunerRain.isRunning()")
    with_rain = measure_cpu(page, cdp, browser_cdp, CPU_SECONDS)
    page.evaluate("window.TunerRain.stop()")
    stopped = not page.evaluate("window.TunerRain.isRunning()")
    page.wait_for_timeout(500)
    without = measure_cpu(page, cdp, browser_cdp, CPU_SECONDS)
    page.evaluate("window.TunerRain.start()")
    context.close()
    print(f"    rain running: {running}; stopped by TunerRain.stop(): {stopped}")
    print(f"    {'':28s}{'rain on':>10s}{'rain off':>10s}{'rain share':>12s}")
    for key, label in (("TaskDuration", "main thread, all tasks"), ("ScriptDuration", "  of which script"),
                       ("RecalcStyleDuration", "  style recalculation"), ("LayoutDuration", "  layout"),
                       ("renderer process", "renderer process CPU"), ("GPU process", "GPU process CPU")):
        if key in with_rain and key in without:
            print(f"    {label:28s}{with_rain[key]:9.2f}%{without[key]:9.2f}%{with_rain[key] - without[key]:11.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running server (default: start our own stack)")
    parser.add_argument("--user", help="account on --url")
    parser.add_argument("--password", help="password of --user")
    args = parser.parse_args()
    if args.url and not (args.user and args.password):
        parser.error("--url needs --user and --password")
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"{CHROMIUM} is missing: run `make browser`")

    stack = None
    try:
        if args.url:
            base, user, password = args.url.rstrip("/"), args.user, args.password
            print(f"server: {base} (given); user {user}")
        else:
            stack = Stack()
            user, password = stack.setup()
            base = stack.start()
            from django.conf import settings

            db = settings.DATABASES["default"]
            print(f"server: own stack at {base}: Daphne + Celery worker (solo); database "
                  f"{db['ENGINE'].rsplit('.', 1)[-1]}; redis {REDIS_URL}; queue {RUN_ID}; development settings")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            print(f"browser: Chromium {browser.version}, headless, viewport {VIEWPORT['width']}x{VIEWPORT['height']}; "
                  f"{os.cpu_count()} CPUs")
            context = browser.new_context(viewport=VIEWPORT)
            login(context, base, user, password)
            state = context.storage_state()
            context.close()
            bench_load(browser, base, state)
            bench_epochs(browser, base, state)
            bench_rain(browser, base, state)
            browser.close()
        print("\ngoals: (a) < 1 s to interactive, (b) < 16 ms epoch -> chart, (c) rain < 10 % of one core")
    except BaseException:
        if stack is not None:
            stack.dump_logs()
        raise
    finally:
        if stack is not None:
            stack.close()


if __name__ == "__main__":
    main()

"""Browser tests: headless Chromium (Playwright) against a real Daphne, Redis and Celery worker.

    .venv/bin/python -m pytest tests/browser -q                      # SQLite test database
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python -m pytest tests/browser -q

The stack:

- `live_url` (session): Daphne in a subprocess serving tuner_site.asgi (HTTP + websockets),
  pointed at the *test* database pytest-django created and at the same Redis database,
  queue, channel prefix and var dir as this process (tests/django_settings.py picks
  pid-based defaults, so they are passed explicitly: the subprocess would compute its own).
  Its output goes to artifacts/browser/daphne.log.
- `celery_worker` (tests/conftest.py, per test): the worker thread trains in this process
  and publishes events through Redis, which Daphne forwards to the page's websocket.
- every test uses `transactional_db` (autouse below): rows are committed, so Daphne and the
  worker see the user and the runs; tables are flushed after each test.
- `browser` (package scope): Debian's /usr/bin/chromium (`make browser` installs it; no
  Playwright download). The Playwright sync API keeps an asyncio loop running in this
  thread, which makes Django refuse ORM calls here ("cannot call this from an async
  context"): DJANGO_ALLOW_ASYNC_UNSAFE is set while the browser is up (never passed to
  Daphne). Package scope, so the loop is gone before any other test package runs.
- `console` (per test): collects console errors, uncaught page errors and 5xx answers of
  every page opened through `open_page`; any left at teardown fail the test. Tests that
  provoke an HTTP error on purpose declare it with `console.expect_failed_request(...)`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
LOG_DIR = ARTIFACTS / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "alice-password-1"  # tests/conftest.py `user`
RUN_TIMEOUT_MS = 60_000
# Small real runs (a second or two each on a 2-core machine).
FAST_RUN = {"train_size": 1000, "epochs": 4, "hidden_layers": [32]}
DIVERGING_RUN = {"train_size": 1000, "epochs": 3, "hidden_layers": [32], "optimizer": "sgd", "learning_rate": 8}
# Long enough to act on while it trains (cancel it, take screenshots), cancelled afterwards.
LONG_RUN = {"train_size": 5000, "epochs": 40, "hidden_layers": [32]}
# Forwarded to Daphne unchanged; the pid-based defaults of tests/django_settings.py above all.
SHARED_ENV = ("REDIS_URL", "TUNER_QUEUE", "TUNER_CHANNEL_PREFIX", "TUNER_VAR_DIR", "TUNER_CANCEL_POLL_SECONDS")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here and item.get_closest_marker("browser") is None:
            raise pytest.UsageError(f"{item.nodeid}: browser tests must be marked @pytest.mark.browser")


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daphne_database_url(db: dict) -> str:
    """A DATABASE_URL for the test database pytest-django created (settings hold its name now)."""
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"  # an absolute path: sqlite:////tmp/.../test.sqlite3
    if engine.startswith("django.db.backends.postgresql"):
        user = quote(db.get("USER") or "postgres", safe="")
        password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}"
    raise pytest.UsageError(f"browser tests do not know how to share a {engine} database with Daphne")


# Runs the command given after it with SIGTERM as parent-death signal (Linux prctl PR_SET_PDEATHSIG,
# kept across exec), so Daphne goes away even when pytest is killed with SIGKILL. A wrapper rather
# than preexec_fn: this process has threads (the Celery worker), which preexec_fn is unsafe with.
DIE_WITH_PARENT = """import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@pytest.fixture(scope="session")
def live_url(django_db_setup, django_db_blocker):
    """Daphne serving the test database; its base URL. Started once, killed at session end."""
    from django.conf import settings

    database_url = daphne_database_url(settings.DATABASES["default"])
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({name: os.environ[name] for name in SHARED_ENV if name in os.environ})
    env.update(DJANGO_SETTINGS_MODULE="tests.django_settings", DATABASE_URL=database_url,
               PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1")
    port = _free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "daphne.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()),
             sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "tuner_site.asgi:application"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"Daphne exited with {process.returncode}:\n{_log_tail(log_path)}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/login/", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Daphne did not answer on {url} within 60 s:\n{_log_tail(log_path)}", pytrace=False)
            time.sleep(0.1)
        yield url
    finally:
        # Before pytest-django drops the test database: Daphne must not hold connections to it.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session", autouse=True)
def _fresh_logs():
    (LOG_DIR / "console-warnings.log").unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _committed_data(transactional_db):
    """Every browser test commits its rows: Daphne and the worker thread read them."""


@pytest.fixture(autouse=True)
def _no_stale_checkpoints(_committed_data):
    """Run ids start again after another test's flush, but checkpoint files are named by run id and
    stay in the session's var dir: a new run #1 would find the old run #1's checkpoint and fail with
    "checkpoint ... was written for a different configuration". Earlier tests are over by now."""
    from django.conf import settings

    for path in (Path(settings.TUNER_ARTIFACT_DIR) / "checkpoints").glob("experiment-*.npz"):
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="package")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class ConsoleErrors:
    """Console errors, uncaught exceptions and 5xx answers of the pages of one test."""

    FAILED_RESOURCE = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []  # not failures: written to artifacts/browser/console-warnings.log
        self.expected: list[tuple[int, str]] = []
        self.pages = 0

    def attach(self, page) -> None:
        self.pages += 1
        page.on("console", lambda message: self._on_console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught error on {page.url}: {error}"))
        page.on("response", lambda response: self._on_response(page, response))

    def expect_failed_request(self, status: int, url_part: str) -> None:
        """This test provokes an HTTP `status` answer from a URL containing `url_part` on purpose."""
        self.expected.append((status, url_part))

    def _on_console(self, page, message) -> None:
        location = message.location or {}
        source = location.get("url", "")
        if message.type == "warning":
            self.warnings.append(f"console warning on {page.url}: {message.text} (at {source}:{location.get('lineNumber')})")
        if message.type != "error":
            return
        if "favicon" in message.text or "favicon" in source:
            return
        self.errors.append(f"console error on {page.url}: {message.text} (at {source}:{location.get('lineNumber')})")

    def _on_response(self, page, response) -> None:
        if response.status >= 500:
            self.errors.append(f"HTTP {response.status} from {response.request.method} {response.url} (on {page.url})")

    def unexpected(self) -> list[str]:
        left = []
        for line in self.errors:
            match = self.FAILED_RESOURCE.search(line.split(": ", 1)[-1])
            if match and 400 <= int(match.group(1)) < 500 and any(
                    int(match.group(1)) == status and part in line for status, part in self.expected):
                continue
            left.append(line)
        return left


@pytest.fixture
def console(request):
    errors = ConsoleErrors()
    yield errors
    if errors.warnings:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / "console-warnings.log", "a") as log:
            log.writelines(f"{request.node.nodeid}: {line}\n" for line in errors.warnings)
    left = errors.unexpected()
    assert not left, "errors in the browser console:\n" + "\n".join(left)


@pytest.fixture
def open_page(browser, live_url, console):
    """open_page(viewport=DESKTOP, **context_options) -> a new page in its own browser context."""
    contexts = []

    def _open(viewport=None, **options):
        context = browser.new_context(base_url=live_url, viewport=viewport or DESKTOP, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        console.attach(page)
        return page

    yield _open
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def page(open_page):
    return open_page()


def login(page, username: str, password: str, next_path: str = "/") -> None:
    """Log in through the real login form and land on `next_path`."""
    from playwright.sync_api import expect

    page.goto(f"/login/?next={quote(next_path)}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(next_path.split("?")[0]) + r"(\?.*)?$"))


# --------------------------------------------------------------------------- the tuner page


class Tuner:
    """The tuner page `/` of one logged-in browser page (ids: frontend/DOM_CONTRACT.md)."""

    def __init__(self, page) -> None:
        self.page = page

    def open(self, query: str = "") -> Tuner:
        self.page.goto(f"/{query}")
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("#run-button")).to_be_enabled()
        expect(self.page.locator(".param").first).to_be_attached()

    def number(self, field: str):
        return self.page.locator(f"#param-{field}-number")

    def slider(self, field: str):
        return self.page.locator(f"#param-{field}")

    def field(self, field: str):
        return self.page.locator(f".param[data-field='{field}']")

    def set(self, field: str, value) -> None:
        if field == "hidden_layers":
            self.set_layers(value)
        elif self.page.locator(f"select#param-{field}").count():
            self.page.select_option(f"#param-{field}", str(value))
        else:
            self.number(field).fill("" if value is None else str(value))

    def set_layers(self, sizes) -> None:
        layers = self.page.locator("#hidden-layers .hidden-layer-size")
        while layers.count() > len(sizes):
            self.page.locator("#hidden-layers .remove-layer").last.click()
        while layers.count() < len(sizes):
            self.page.click("#add-layer")
        for index, size in enumerate(sizes):
            layers.nth(index).fill(str(size))

    def configure(self, values: dict, preset: str | None = "fast_check") -> None:
        if preset:
            self.page.click(f"button[data-preset='{preset}']")
        for field, value in values.items():
            self.set(field, value)

    def run_id(self) -> int | None:
        raw = self.page.locator("#current-run").get_attribute("data-experiment-id")
        return int(raw) if raw else None

    def start(self, name: str = "") -> int:
        """Click INITIALIZE TRAINING SEQUENCE; the id of the run the page then follows."""
        before = self.run_id()
        if name:
            self.page.fill("#run-name", name)
        self.page.click("#run-button")
        self.page.wait_for_function(
            "before => { const id = document.getElementById('current-run').dataset.experimentId;"
            " return id !== '' && id !== before; }", arg="" if before is None else str(before))
        return self.run_id()

    def wait_status(self, *statuses: str, timeout: float = RUN_TIMEOUT_MS) -> str:
        from playwright.sync_api import expect

        status = self.page.locator("#run-status")
        expect(status).to_have_text(re.compile("^(" + "|".join(statuses) + ")$"), timeout=timeout)
        return status.text_content()

    def epoch_lines(self) -> list[str]:
        return self.page.locator("#log-console .log-line.line-epoch").all_inner_texts()


@pytest.fixture
def tuner(user, page) -> Tuner:
    """The tuner page, logged in as `user` through the login form."""
    login(page, user.username, PASSWORD)
    return Tuner(page).open()


# --------------------------------------------------------------------------- artifacts


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def has_horizontal_overflow(page) -> dict | None:
    """None when the page fits its viewport's width; else the widths and the widest offenders."""
    return page.evaluate("""() => {
        const root = document.documentElement;
        if (root.scrollWidth <= root.clientWidth + 1) return null;
        const offenders = [...document.querySelectorAll('body *')]
          .filter((node) => node.getBoundingClientRect().right > root.clientWidth + 1)
          .filter((node) => !node.closest('.visually-hidden') && node.id !== 'matrix-rain')
          .slice(0, 8)
          .map((node) => `${node.tagName.toLowerCase()}${node.id ? '#' + node.id : ''}`
                         + `${node.className && typeof node.className === 'string' ? '.' + node.className.trim().split(/\\s+/).join('.') : ''}`
                         + ` right=${Math.round(node.getBoundingClientRect().right)}`);
        return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, offenders};
    }""")

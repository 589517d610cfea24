"""Every data test runs without the developer's FASHION_MNIST_DIR/TUNER_CACHE_DIR or another test's memo."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from training.data import clear_memo, locate


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No test sees the developer's FASHION_MNIST_DIR/TUNER_CACHE_DIR or another test's memo."""
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("TUNER_CACHE_DIR", str(tmp_path / "default-cache"))
    clear_memo()
    yield
    clear_memo()


@pytest.fixture
def no_default_dirs(monkeypatch, tmp_path):
    """Point the project data dir and the shared dir at empty places."""
    monkeypatch.setattr(locate, "PROJECT_DATA_DIR", tmp_path / "project-data")
    monkeypatch.setattr(locate, "SHARED_DATA_DIR", tmp_path / "shared-data")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture
def file_server(tmp_path):
    """Serve tmp_path/served over HTTP on 127.0.0.1 (a free port); yields (dir, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()

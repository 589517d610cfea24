"""Production configuration: `check --deploy` is clean, missing secrets stop start-up, and the
Docker/Compose files are complete (validated structurally: the Docker engine is not available here)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_manage(tmp_path, *args: str, **env_overrides: str | None) -> subprocess.CompletedProcess:
    """`manage.py <args>` in a fresh interpreter with the real settings module and a clean env."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DJANGO_ENV", "DATABASE_URL")}
    env.update({"DJANGO_SETTINGS_MODULE": "tuner_site.settings", "TUNER_VAR_DIR": str(tmp_path),
                "STATIC_ROOT": str(tmp_path / "static")})
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def production_env(**overrides: str | None) -> dict[str, str | None]:
    return {"DJANGO_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "tuner.example.org", **overrides}


def test_check_deploy_is_clean_in_production(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(("missing", "message"), [
    ("SECRET_KEY", "SECRET_KEY must be set"),
    ("ALLOWED_HOSTS", "ALLOWED_HOSTS must be set"),
])
def test_production_refuses_to_start_without(tmp_path, missing, message):
    result = run_manage(tmp_path, "check", **production_env(**{missing: None}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
    assert not (tmp_path / "secret_key").exists()  # no development key generated in production


def test_production_refuses_a_weak_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", **production_env(SECRET_KEY="short-and-guessable"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr


def test_production_defaults_are_safe(tmp_path):
    script = ("from django.conf import settings as s; "
              "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
              "s.SECURE_HSTS_SECONDS > 0, s.LOG_FORMAT, s.ALLOWED_HOSTS)")
    result = run_manage(tmp_path, "shell", "-c", script, **production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["False", "True", "True", "True", "True", "json", "['tuner.example.org']"]


def test_health_is_reachable_over_plain_http_in_production(tmp_path):
    """The container health check calls http://127.0.0.1:8000/health: no redirect to HTTPS."""
    script = ("from django.test import Client; "
              "r = Client().get('/health', HTTP_HOST='tuner.example.org'); print(r.status_code); "
              "r = Client().get('/login/', HTTP_HOST='tuner.example.org'); print(r.status_code, r['Location'])")
    result = run_manage(tmp_path, "shell", "-c", script, **production_env())
    assert result.returncode == 0, result.stderr
    health, login = result.stdout.strip().splitlines()[-2:]
    assert health in ("200", "503")  # 503 only if this machine's Redis/database were down
    assert login == "301 https://tuner.example.org/login/"


# --------------------------------------------------------------------------- docker files


@pytest.fixture(scope="module")
def compose():
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml")
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service_with_health_checks(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "redis", "postgres", "migrate"} <= set(services)
    assert services["redis"]["image"].startswith("redis:7")
    assert services["redis"]["command"] == ["redis-server", "--appendonly", "yes",
                                            "--maxmemory-policy", "noeviction"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["web"]["healthcheck"]["test"])
    # Behind the reverse proxy: Daphne honours X-Forwarded-For/-Proto, and the limits count one proxy.
    assert services["web"]["command"] == ["daphne", "--proxy-headers", "-b", "0.0.0.0", "-p", "8000",
                                          "tuner_site.asgi:application"]
    assert services["web"]["environment"]["TUNER_NUM_PROXIES"] == "${TUNER_NUM_PROXIES:-1}"
    worker = " ".join(services["worker"]["command"])
    assert "celery -A tuner_site worker" in worker and "TUNER_WORKER_CONCURRENCY" in worker
    assert "TUNER_QUEUE" in worker and "OPENBLAS_NUM_THREADS" in services["worker"]["environment"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "tuner_site", "beat"]
    # Scalable: a fixed container name or host port would stop `--scale worker=N`.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["env_file"] == ".env"
        assert service["environment"]["DJANGO_ENV"] == "production"
        assert service["environment"]["FASHION_MNIST_DIR"] == "/data"
        volumes = service["volumes"]
        assert any(v.endswith(":/data:ro") for v in volumes)
        assert "artifacts:/artifacts" in volumes and service["environment"]["TUNER_ARTIFACT_DIR"] == "/artifacts"
    assert {"artifacts", "redis-data", "postgres-data"} <= set(compose["volumes"])


def test_compose_config_is_valid_for_docker_compose(tmp_path):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("`docker compose` is not available on this machine (structure is checked above)")
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text().replace(
        "SECRET_KEY=\n", f"SECRET_KEY={secrets.token_urlsafe(64)}\n"))
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    result = subprocess.run([docker, "compose", "config", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_env_example_documents_every_setting_variable():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    settings_vars = set(re.findall(r'env(?:_bool|_int|_list)?\("([A-Z][A-Z0-9_]*)"',
                                   (ROOT / "tuner_site/settings.py").read_text()))
    compose_vars = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    # Set by the image/compose itself (paths inside the container), or test-only.
    internal = {"TUNER_VAR_DIR", "STATIC_ROOT", "TUNER_ARTIFACT_DIR", "HOSTNAME"}
    missing = (settings_vars | compose_vars) - documented - internal
    assert not missing, f"not documented in .env.example: {sorted(missing)}"
    assert "DJANGO_ENV=production" in (ROOT / ".env.example").read_text()
    assert re.search(r"^SECRET_KEY=$", (ROOT / ".env.example").read_text(), re.M), "no real secret in the example"


def test_dockerfile_runs_as_non_root_and_builds_static_files():
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text and "pip install -r requirements.txt" in text
    assert "npm ci" in text and "collectstatic" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "FASHION_MNIST_DIR=/data" in text and "TUNER_ARTIFACT_DIR=/artifacts" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", "var", "node_modules"} <= set(ignored)


def test_the_dataset_cache_has_a_volume_of_its_own_apart_from_the_artifacts(compose):
    for name in ("web", "worker", "beat"):
        service = compose["services"][name]
        cache = service["environment"]["TUNER_CACHE_DIR"]
        assert not cache.startswith(service["environment"]["TUNER_ARTIFACT_DIR"])
        assert f"dataset-cache:{cache}" in service["volumes"]
    assert "dataset-cache" in compose["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "TUNER_CACHE_DIR=/cache" in dockerfile and '"/cache"' in dockerfile

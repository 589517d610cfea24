"""The OpenAPI schema and its Swagger UI (served from local sidecar assets, no CDN)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_lists_every_endpoint(schema):
    paths = schema["paths"]
    assert set(paths["/api/experiments/"]) == {"get", "post"}
    assert set(paths["/api/experiments/{experiment_id}/"]) == {"get", "delete"}
    for action in ("cancel", "rerun"):
        assert "post" in paths[f"/api/experiments/{{experiment_id}}/{action}/"]
    for action in ("metrics", "weights"):
        assert "get" in paths[f"/api/experiments/{{experiment_id}}/{action}/"]
    assert "post" in paths["/api/auth/token/"]
    assert "get" in paths["/api/config-schema/"]
    assert "get" in paths["/health"]


def test_schema_documents_error_answers_and_formats(schema):
    paths = schema["paths"]
    create = paths["/api/experiments/"]["post"]
    assert {"201", "400", "429"} <= set(create["responses"])
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExperimentDetailOutput")
    assert {"404", "409"} <= set(paths["/api/experiments/{experiment_id}/cancel/"]["post"]["responses"])
    assert "409" in paths["/api/experiments/{experiment_id}/"]["delete"]["responses"]
    listing = paths["/api/experiments/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "sweep", "ordering", "limit", "offset"}
    metrics = paths["/api/experiments/{experiment_id}/metrics/"]["get"]
    assert set(metrics["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    weights = paths["/api/experiments/{experiment_id}/weights/"]["get"]
    assert "application/octet-stream" in weights["responses"]["200"]["content"]
    detail = schema["components"]["schemas"]["ExperimentDetailOutput"]["properties"]
    assert {"metrics", "recommendations", "links", "children", "class_names"} <= set(detail)
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_swagger_ui_uses_local_sidecar_assets_only(db):
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a local static file"
    assert not re.search(r"https?://", html), "the docs page must not load anything from the internet"
    assert '"validatorUrl": null' in html
    assert 'url: "/api/schema/"' in html


def test_schema_generation_is_valid_and_free_of_warnings(tmp_path):
    # Fails (SchemaGenerationError) on any warning or error, and on an invalid OpenAPI document.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")

"""Every endpoint keeps users apart: enumerated from the OpenAPI schema (so new endpoints are covered
automatically) and cross-checked against the URL resolver; UI pages and websocket routes too."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from experiments.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from experiments.models import Experiment, Recommendation
from experiments.routing import websocket_urlpatterns
from tests.security.conftest import MARKER, api_operations, fill

PUBLIC = {("post", "/api/auth/token/"), ("get", "/health")}  # plus /api/schema/ and /api/docs/ (not in the schema)
# Plausible bodies, so a refusal is about the object and not about the input.
BODIES = {"predict": {"random": True}}


def resolver_routes(patterns=None, prefix: str = "") -> list[str]:
    routes = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            routes += resolver_routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            routes.append(prefix + str(entry.pattern))
    return routes


def as_openapi(route: str) -> str:
    import re

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def body_for(path: str):
    return BODIES.get(path.rstrip("/").rsplit("/", 1)[-1])


@pytest.mark.django_db
def test_every_api_route_is_in_the_schema(api_client):
    documented = {path for _, path in api_operations(api_client)}
    routes = {as_openapi(r) for r in resolver_routes() if r.startswith("api/") or r == "health"}
    assert routes - documented == {"/api/schema/", "/api/docs/"}


@pytest.mark.django_db
def test_anonymous_gets_401_or_403_on_every_private_endpoint(api_client, alice_objects):
    anonymous = APIClient()
    checked = 0
    for method, template in api_operations(api_client):
        if (method, template) in PUBLIC:
            continue
        path = fill(template, alice_objects)
        response = getattr(anonymous, method)(path, body_for(path), format="json")
        assert response.status_code in (401, 403), f"{method.upper()} {path}: {response.status_code}"
        assert MARKER not in response.content.decode()
        checked += 1
    assert checked >= 10
    assert Experiment.objects.filter(pk=alice_objects["experiment_id"]).exists()


@pytest.mark.django_db
def test_public_endpoints_answer_anonymous_users():
    anonymous = APIClient()
    assert anonymous.get("/api/schema/").status_code == 200
    assert anonymous.get("/api/docs/").status_code == 200
    assert anonymous.get("/health").status_code in (200, 503)
    assert anonymous.post("/api/auth/token/", {"username": "x", "password": "y"}, format="json",
                          REMOTE_ADDR="10.9.8.7").status_code == 400


@pytest.mark.django_db
def test_another_user_gets_404_for_every_object_endpoint(api_client, other_client, alice_objects):
    checked = 0
    for method, template in api_operations(api_client):
        if (method, template) in PUBLIC:
            continue
        path = fill(template, alice_objects)
        response = getattr(other_client, method)(path, body_for(path), format="json")
        body = response.content.decode()
        assert MARKER not in body, f"{method.upper()} {path} shows alice's data to bob"
        if "{" in template:
            assert response.status_code in (403, 404), f"{method.upper()} {path}: {response.status_code} {body[:200]}"
            checked += 1
        else:
            assert response.status_code < 500, f"{method.upper()} {path}: {response.status_code}"
    assert checked >= 9
    # Nothing of alice's was changed, deleted or created for her by bob's calls.
    finished = Experiment.objects.get(pk=alice_objects["experiment_id"])
    assert finished.status == Experiment.Status.SUCCEEDED
    assert Experiment.objects.filter(owner__username="alice").count() == 1
    assert Recommendation.objects.get(pk=alice_objects["recommendation_id"]).applied_at is None


@pytest.mark.django_db
def test_the_owner_reaches_the_same_endpoints(api_client, alice_objects):
    """The control for the test above: the 404s are about ownership, not about broken URLs."""
    response = api_client.get(fill("/api/experiments/{experiment_id}/", alice_objects))
    assert response.status_code == 200 and response.json()["name"] == MARKER


@pytest.mark.django_db
def test_ui_pages_redirect_anonymous_users_to_login(user, other_user, alice_objects):
    anonymous = Client()
    for path in ("/", "/history/", f"/runs/{alice_objects['experiment_id']}/"):
        response = anonymous.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/login/?next="), path
    bob = Client()
    bob.force_login(other_user)
    assert bob.get(f"/runs/{alice_objects['experiment_id']}/").status_code == 404
    alice = Client()
    alice.force_login(user)
    assert alice.get(f"/runs/{alice_objects['experiment_id']}/").status_code == 200


async def _close_code(path: str, user) -> int | None:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected  # refusals accept first, then close with the code
    message = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return message.get("code") if message["type"] == "websocket.close" else None


@pytest.mark.django_db(transaction=True)
def test_websocket_routes_refuse_anonymous_users_and_strangers(user, other_user, alice_objects):
    routes = [as_openapi(str(p.pattern)) for p in websocket_urlpatterns]
    assert routes, "no websocket routes?"
    for template in routes:
        path = fill(template, alice_objects)
        assert async_to_sync(_close_code)(path, AnonymousUser()) == CLOSE_UNAUTHENTICATED, path
        if "{" in template:
            assert async_to_sync(_close_code)(path, other_user) == CLOSE_NOT_FOUND, path
            assert async_to_sync(_close_code)(path, user) is None, path  # the owner gets a snapshot

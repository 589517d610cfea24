"""Schemathesis fuzzing of the whole API, from its own OpenAPI schema, as an authenticated user.

Checks: no 5xx (not_a_server_error) and every response matching its documented schema
(response_schema_conformance). Path ids are half the time the fuzzing user's real objects (a
really trained run with weights, one of its recommendations), half the time random integers.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (requirements.txt)")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from experiments import inference, services  # noqa: E402
from experiments.models import Experiment, Recommendation  # noqa: E402

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 20


@pytest.fixture
def fuzz_objects(user, quick_config):
    inference.clear_caches()
    run = services.experiment_create(owner=user, config=quick_config, name="fuzz target", enqueue=False)
    services.experiment_run(experiment_id=run.pk)
    run.refresh_from_db()
    assert run.status == Experiment.Status.SUCCEEDED and run.weights_path
    recommendation = Recommendation.objects.create(
        experiment=run, kind="lr_up", priority="high", title="t", rationale="r", changes={"epochs": 2})
    return {"experiment_id": run.pk, "recommendation_id": recommendation.pk}


@pytest.fixture
def auth_header(user):
    from tests.security.conftest import api_token

    return {"Authorization": f"Token {api_token(user)}"}


def load_schema():
    """The API's own OpenAPI schema (what /api/schema/ serves), called through Django's WSGI handler.

    Loaded at collection, not through `schemathesis.pytest.from_fixture`: schemathesis 4.32's lazy
    fixture loader reads `request.node._nodeid`, which pytest 9 no longer has.
    """
    import json

    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = get_wsgi_application()
    return loaded


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """As django.test.Client does: a request must not close the test's database connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = load_schema()


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_never_errors_and_matches_its_schema(case, fuzz_objects, auth_header):
    for name, real_id in fuzz_objects.items():
        value = (case.path_parameters or {}).get(name)
        # DELETE keeps random ids, so the trained run survives for the other examples.
        if isinstance(value, int) and value % 2 == 0 and case.method.upper() != "DELETE":
            case.path_parameters[name] = real_id
    case.call_and_validate(headers=auth_header, checks=[not_a_server_error, response_schema_conformance])


def test_options_on_the_csv_endpoint_is_not_a_server_error(api_client, user):
    """Found by the fuzzer: OPTIONS ...?format=csv rendered its metadata dict as CSV -> 500."""
    from tests.security.conftest import make_run

    run = make_run(user)
    response = api_client.options(f"/api/experiments/{run.pk}/metrics/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert api_client.get(f"/api/experiments/{run.pk}/metrics/?format=csv")["Content-Type"].startswith("text/csv")

"""Schemathesis over the OpenAPI document, against a real Redis holding a run: no generated request, valid
or deliberately invalid, makes the service fail (5xx), and every response matches its documented schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from twin_service.api import create_app


@pytest.fixture
def api_schema(settings, filled):
    schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI writes OpenAPI 3.1
    return schemathesis.from_asgi(
        "/openapi.json", create_app(settings), data_generation_methods=schemathesis.DataGenerationMethod.all()
    )


# The live stream never ends by itself; its own tests read it over a real server (test_live.py).
# The same for the decision log as it grows (tested in test_events.py).
schema = (
    schemathesis.from_pytest_fixture("api_schema").exclude(path="/v1/stream").exclude(path="/v1/decisions/log/stream")
)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_documented_responses(case):
    response = case.call_asgi()
    case.validate_response(response, checks=(not_a_server_error, response_schema_conformance, content_type_conformance))

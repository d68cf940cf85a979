"""What JSON cannot carry, slow bodies and the API key on reads: every route answers clearly, nothing gets a 500.

Python's JSON parser reads ``NaN``, ``Infinity``, ``1e999`` and lone surrogates (``"\\ud800"``), which JSON
cannot carry back; schemathesis never sends them, so these tests send the raw bytes themselves, to every
route that takes a body and for every field of it.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from twin_service.api import create_app
from twin_service.api.serve import ApiThread
from twin_service.config import Settings

BAD_VALUES = ["NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"', '["\\ud800"]', '{"\\ud800": 1}']


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _body_routes(app) -> list[tuple[str, list[str], str]]:  # noqa: ANN001
    """Every operation with a JSON request body, with the top-level fields of its schema and the start of a body
    (``{`` or, for a body of several kinds such as an event, ``{"kind": "K", `` for each kind K)."""
    spec = app.openapi()
    found = []
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                continue
            for ref in [v["$ref"] for v in schema["oneOf"]] if "oneOf" in schema else [schema["$ref"]]:
                properties = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
                tag = schema.get("discriminator", {}).get("propertyName")
                if tag is None:
                    found.append((path, list(properties), "{"))
                else:
                    kind = properties[tag]["const"]
                    found.append((path, [f for f in properties if f != tag], f'{{"{tag}": "{kind}", '))
    return found


def _post_raw(client: TestClient, path: str, body: str):  # noqa: ANN202
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


def test_every_field_of_every_body_refuses_what_json_cannot_carry_with_a_422_naming_it(client, filled):
    routes = _body_routes(client.app)
    assert {path for path, _, _ in routes} >= {
        "/v1/decisions/migration",
        "/v1/decisions/offload",
        "/v1/decisions/batch",
        "/v1/events",
    }
    for path, fields, start in routes:
        for field in fields:
            for value in BAD_VALUES:
                r = _post_raw(client, path, f'{start}"{field}": {value}}}')
                assert r.status_code == 422, (path, field, value, r.status_code, r.text)
                errors = r.json()["detail"]
                assert any(e["loc"][:2] == ["body", field] for e in errors), (path, field, value, errors)
        # A key that is itself a lone surrogate: named by its escape.
        r = _post_raw(client, path, '{"\\ud800": 1}')
        assert r.status_code == 422 and "\\ud800" in r.text, (path, r.text)
    # The reproducers of the issue, exactly.
    r = _post_raw(client, "/v1/decisions/migration", '{"tick": NaN}')
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"type": "finite_number", "loc": ["body", "tick"], "msg": "Input should be a finite number", "input": "NaN"}
    ]
    r = _post_raw(client, "/v1/decisions/migration", '{"vehicle_ids":["\\ud800"]}')
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "vehicle_ids", 0]
    assert r.json()["detail"][0]["input"] == "\\ud800"


def test_stateless_twins_refuse_non_finite_numbers_and_broken_text_by_name(client):
    satellite = '{"id": "s", "tier": "satellite", "lon": 10.0, "lat": 53.5, "range_m": 1e12, "cache_mb": 1e9}'
    fields = {"id": '"r"', "tier": '"rsu"', "lon": "10", "lat": "53.5", "range_m": "1200", "cache_mb": "300"}
    for route in ("/v1/decisions/migration", "/v1/decisions/offload"):
        for where, bad in (("lon", "NaN"), ("id", '"\\udfff"'), ("range_m", "Infinity"), ("cache_mb", "-Infinity")):
            rsu = "{" + ", ".join(f'"{k}": {bad if k == where else v}' for k, v in fields.items()) + "}"
            vehicle = '{"id": "v", "lon": 10, "lat": 53.5}'
            r = _post_raw(
                client, route, f'{{"observation": {{"servers": [{rsu}, {satellite}], "vehicles": [{vehicle}]}}}}'
            )
            assert r.status_code == 422, (route, where, r.text)
            assert any(e["loc"][:5] == ["body", "observation", "servers", 0, where] for e in r.json()["detail"])


def test_read_routes_answer_broken_query_values_without_a_500(client, filled):
    spec = client.app.openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            concrete = path.replace("{vehicle_id}", "veh20").replace("{server_id}", "rsu_0")
            for name in query:
                for value in ("NaN", "Infinity", "1e999", "%ED%A0%80", "%00"):
                    r = client.request(method.upper(), f"{concrete}?{name}={value}")
                    assert r.status_code < 500, (method, path, name, value, r.text)
            for twin in ("%ED%A0%80", "%F0%9F%9A%97", "NaN"):
                if "{" in path:
                    r = client.request(method.upper(), path.split("{")[0] + twin)
                    assert r.status_code in (404, 422), (path, twin, r.status_code)


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    """The app behind a real uvicorn (a thread of this process), with a 1 s body timeout."""
    app = create_app(settings.model_copy(update={"api_body_timeout_s": 1.0}))
    api = ApiThread(app, "127.0.0.1", _free_port()).start()
    try:
        yield api.url
    finally:
        api.stop()


def test_a_bad_body_leaves_the_keep_alive_connection_serving(served: str, filled):
    host, port = served.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.connect()
    first_socket = conn.sock
    for body in (
        '{"tick": NaN}',
        '{"vehicle_ids":["\\ud800"]}',
        '{"tick": Infinity}',
        '{"migration_policy": "\\ud800"}',
    ):
        conn.request("POST", "/v1/decisions/batch", body=body.encode(), headers={"content-type": "application/json"})
        response = conn.getresponse()
        assert response.status == 422, response.read()
        response.read()
    conn.request("POST", "/v1/decisions/batch", body=b"{}", headers={"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and b'"tick":12' in response.read()
    assert conn.sock is first_socket  # the same connection all along
    conn.close()


def test_a_body_that_never_arrives_whole_is_cut_off(served: str):
    assert Settings().api_body_timeout_s <= 10.0
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/decisions/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        received = b""
        while chunk := sock.recv(4096):  # until the server closes the connection
            received += chunk
        held_s = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"not received within 1 s" in received
    assert 0.9 <= held_s < 5.0


def test_the_api_key_guards_reads_only_when_asked(settings: Settings, filled):
    open_reads = create_app(settings.model_copy(update={"api_key": "s3cret"}))
    guarded = create_app(settings.model_copy(update={"api_key": "s3cret", "api_key_reads": True}))
    reads = ["/v1/ticks/latest", "/v1/kpis", "/v1/twins/vehicles", "/v1/twins/vehicles/veh20", "/v1/twins/servers",
             "/v1/twins/servers/rsu_0", "/metrics"]  # fmt: skip
    key = {"X-API-Key": "s3cret"}
    with TestClient(open_reads) as c:
        assert all(c.get(path).status_code == 200 for path in reads)
        assert c.post("/v1/decisions/batch", json={}).status_code == 401
        assert c.post("/v1/decisions/batch", json={}, headers=key).status_code == 200
    with TestClient(guarded) as c:
        for path in reads:
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"X-API-Key": "wrong"}).status_code == 401, path
            assert c.get(path, headers=key).status_code == 200, path
        assert c.get("/v1/health").status_code == 200  # liveness probes need no key
        assert c.get("/openapi.json").status_code == 200
        assert c.post("/v1/decisions/batch", json={}).status_code == 401
    # The OpenAPI document says which routes need the key on each instance.
    for app, reads_locked in ((open_reads, False), (guarded, True)):
        paths = app.openapi()["paths"]
        assert paths["/v1/decisions/batch"]["post"]["security"] == [{"APIKeyHeader": []}]
        assert ("security" in paths["/v1/twins/vehicles"]["get"]) is reads_locked
        assert ("security" in paths["/metrics"]["get"]) is reads_locked
        assert "security" not in paths["/v1/health"]["get"]
        assert "TWIN_API_KEY_READS" in app.openapi()["components"]["securitySchemes"]["APIKeyHeader"]["description"]
    with pytest.raises(ValueError, match="no TWIN_API_KEY"):
        create_app(settings.model_copy(update={"api_key": None, "api_key_reads": True}))

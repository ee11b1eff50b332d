"""docs/openapi.yaml: a valid OpenAPI 3 document that lists exactly the gateway's HTTP API
routes (no route undocumented, none documented that does not exist), each with its errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

from bot.app import create_app
from bot.config import Settings

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
API = ("/console/api/", "/webchat/session", "/webchat/files", "/files/", "/healthz", "/metrics")
METHODS = {"get", "post", "put", "delete", "patch"}


def test_the_document_is_valid_openapi() -> None:
    validate(yaml.safe_load(SPEC.read_text()))


def test_it_matches_the_routes() -> None:
    app = create_app(Settings.model_validate({"secret_key": "k" * 32}))
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(API)
        and route.method.lower() in METHODS
    }
    spec = yaml.safe_load(SPEC.read_text())
    documented = {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routes - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - routes == set(), "documented routes the gateway does not have"


def test_every_operation_says_how_it_fails() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            codes = set(operation["responses"])
            assert any(code.startswith(("4", "5")) for code in codes), (method, path)
            if method != "get" and path.startswith("/console/api/"):
                assert "401" in codes and "403" in codes, (method, path, "session and CSRF")

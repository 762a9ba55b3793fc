"""Shared helpers for the local server's tests (HTTP shortcuts and envelope checks)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from prefactor_local.server import LocalServer

AGENT_VERSION = {"name": "Test agent", "external_identifier": "v1", "description": "tests"}
SCHEMA_VERSION = {
    "external_identifier": "schema-1",
    "span_type_schemas": [
        {"name": "test:llm", "params_schema": {"type": "object"}, "title": "LLM call"},
        {"name": "test:tool", "params_schema": {"type": "object"}},
    ],
}


class Api:
    """Raw HTTP calls against the local server, plus shortcuts for the common bodies."""

    def __init__(self, client: httpx.Client) -> None:
        self.http = client

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is None:
            return self.http.post(path, **kwargs)
        return self.http.post(path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def register_body(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "agent_version": AGENT_VERSION,
            "agent_schema_version": SCHEMA_VERSION,
            "update_current_version": True,
            "agent_id": "agent-tests",
            "idempotency_key": str(uuid.uuid4()),
        }
        body.update(fields)
        return {key: value for key, value in body.items() if value is not None}

    def register(self, **fields: Any) -> dict[str, Any]:
        response = self.post("/api/v1/agent_instance/register", self.register_body(**fields))
        assert response.status_code == 200, response.text
        details: dict[str, Any] = response.json()["details"]
        return details

    def started(self, **fields: Any) -> dict[str, Any]:
        instance = self.register(**fields)
        response = self.post(f"/api/v1/agent_instance/{instance['id']}/start", {"timestamp": None})
        assert response.status_code == 200, response.text
        details: dict[str, Any] = response.json()["details"]
        return details

    def span(
        self,
        instance_id: str,
        schema_name: str = "test:llm",
        status: str = "active",
        **details: Any,
    ) -> httpx.Response:
        body = {
            "agent_instance_id": instance_id,
            "schema_name": schema_name,
            "status": status,
            "payload": details.pop("payload", {}),
            "idempotency_key": details.pop("idempotency_key", str(uuid.uuid4())),
        }
        body.update(details)
        return self.post("/api/v1/agent_spans", {"details": body})

    def new_span(self, instance_id: str, **details: Any) -> dict[str, Any]:
        response = self.span(instance_id, **details)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["details"]
        return result

    def finish_span(self, span_id: str, **body: Any) -> httpx.Response:
        body.setdefault("status", "complete")
        body.setdefault("idempotency_key", str(uuid.uuid4()))
        return self.post(f"/api/v1/agent_spans/{span_id}/finish", body)


def client_for(server: LocalServer, token: str | None = None) -> httpx.Client:
    """An httpx client with the server's bearer token."""
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token or server.token}"},
        timeout=10,
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Check an error envelope and return it."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code
    return body

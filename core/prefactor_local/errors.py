"""The API's error envelope as an exception the handlers raise."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as `{"status": "error", "code", "message", "errors"?}`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        body: dict[str, Any] = {"status": "error", "code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found(kind: str, ident: str) -> ApiError:
    """404 for an unknown id."""
    return ApiError(404, "not_found", f"{kind} {ident!r} not found")


def invalid_action(message: str) -> ApiError:
    """409 for a transition the resource's state does not allow."""
    return ApiError(409, "invalid_action", message)


def already_exists(message: str) -> ApiError:
    """409 for a create that collides with an existing row."""
    return ApiError(409, "already_exists", message)


def validation_error(errors: dict[str, Any], message: str | None = None) -> ApiError:
    """422 carrying per-field messages."""
    return ApiError(422, "invalid_value", message or _summary(errors), errors)


def _summary(errors: dict[str, Any], prefix: str = "") -> str:
    parts: list[str] = []
    for field, value in errors.items():
        path = f"{prefix}{field}"
        if isinstance(value, dict):
            parts.append(_summary(value, path + "."))
        else:
            parts.append(f"{path}: {'; '.join(str(v) for v in value)}")
    return ", ".join(parts) if prefix else "Invalid request: " + ", ".join(parts)

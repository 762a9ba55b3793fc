"""Bulk request items and response.

Compatibility with the published ``prefactor-http`` 0.4: `BulkRequest` wraps the items, and
``client.bulk.execute`` accepts one as well as a plain list of items.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefactor_http.models.base import ResponseModel

__all__ = ["BulkItem", "BulkOutput", "BulkRequest", "BulkResponse"]


class BulkItem(BaseModel):
    """One action of a bulk request: ``_type`` (e.g. ``agent_spans/create``), a key, parameters.

    Extra keyword arguments are the action's parameters and are sent as given.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(alias="_type", min_length=1)
    idempotency_key: str = Field(min_length=8, max_length=64)

    def to_body(self) -> dict[str, Any]:
        """The JSON object sent for this item."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class BulkRequest(BaseModel):
    """The body of ``POST /api/v1/bulk``: one or more items with distinct idempotency keys."""

    items: list[BulkItem] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _distinct_keys(cls, items: list[BulkItem]) -> list[BulkItem]:
        keys = [item.idempotency_key for item in items]
        if len(set(keys)) != len(keys):
            raise ValueError("All idempotency keys must be unique within the request")
        return items


class BulkOutput(ResponseModel):
    """Result of one bulk item: ``status`` is ``success`` or ``error``; other keys kept."""

    model_config = ConfigDict(extra="allow")

    status: str
    code: str | None = None
    message: str | None = None
    errors: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.status == "success"


class BulkResponse(ResponseModel):
    """Outputs of a bulk request keyed by each item's idempotency key.

    Processing stops at the first failing item, so later items may be missing.
    """

    status: str = "success"
    outputs: dict[str, BulkOutput]

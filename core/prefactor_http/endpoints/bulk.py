"""The bulk endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from prefactor_http.exceptions import PrefactorResponseContractError
from prefactor_http.models.bulk import BulkItem, BulkRequest, BulkResponse

if TYPE_CHECKING:
    from prefactor_http.client import PrefactorHttpClient

__all__ = ["BulkClient"]


class BulkClient:
    """``client.bulk``: several actions in one request."""

    def __init__(self, client: PrefactorHttpClient) -> None:
        self._client = client

    async def execute(
        self, items: BulkRequest | Sequence[BulkItem | Mapping[str, Any]]
    ) -> BulkResponse:
        """Run ``items`` with ``POST /api/v1/bulk``; outputs are keyed by idempotency key.

        ``items`` may also be a `BulkRequest` (as with the published ``prefactor-http``).

        Raises `ValueError` (before any request) for an empty list, duplicate keys or an item
        that is not valid (``_type`` and an 8-64 character key are required).
        """
        if isinstance(items, BulkRequest):
            items = items.items
        if not items:
            raise ValueError("bulk.execute needs at least one item")
        parsed: list[BulkItem] = []
        for index, item in enumerate(items):
            if isinstance(item, BulkItem):
                parsed.append(item)
                continue
            try:
                parsed.append(BulkItem.model_validate(dict(item)))
            except ValidationError as exc:
                raise ValueError(f"bulk item {index} is invalid: {exc}") from exc
        keys = [item.idempotency_key for item in parsed]
        if len(set(keys)) != len(keys):
            raise ValueError("bulk item idempotency keys must be unique within the request")

        envelope = await self._client.request(
            "POST", "/api/v1/bulk", json={"items": [item.to_body() for item in parsed]}
        )
        try:
            return BulkResponse.model_validate(envelope)
        except ValidationError as exc:
            raise PrefactorResponseContractError(
                "Invalid response for bulk.execute", cause=exc
            ) from exc

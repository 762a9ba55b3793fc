"""Shared pieces of the response models: lenient fields and the envelopes.

Compatibility with the published ``prefactor-http`` 0.4: `ApiResponse`, `ApiError`,
`DetailedApiError` and `PaginationOutput` (another name of `Pagination`) keep their names.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

__all__ = [
    "ApiError",
    "ApiResponse",
    "DetailedApiError",
    "ListResponse",
    "Pagination",
    "PaginationOutput",
    "ResponseModel",
    "Sorting",
]

T = TypeVar("T")


def _none_if_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


Lenient = Annotated[T | None, WrapValidator(_none_if_invalid)]
"""An optional response field that reads as None when the server sends something unexpected."""


class ResponseModel(BaseModel):
    """Base of every response model: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Pagination(ResponseModel):
    """Pagination block of a list response."""

    item_count: Lenient[int] = None
    item_start: Lenient[int] = None
    item_end: Lenient[int] = None
    next_page_offset: Lenient[int] = None
    previous_page_offset: Lenient[int] = None
    page_count: Lenient[int] = None
    page_index: Lenient[int] = None
    page_offset: Lenient[int] = None
    page_size: Lenient[int] = None


class Sorting(ResponseModel):
    """Sorting block of a list response."""

    field: Lenient[str] = None
    direction: Lenient[str] = None


ItemT = TypeVar("ItemT", bound=BaseModel)


class ListResponse(ResponseModel, Generic[ItemT]):
    """A list envelope: ``summaries`` plus optional ``pagination`` and ``sorting``."""

    status: str = "success"
    summaries: list[ItemT]
    pagination: Lenient[Pagination] = None
    sorting: Lenient[Sorting] = None


class ApiResponse(ResponseModel, Generic[T]):
    """A single-resource envelope: ``status`` and ``details``."""

    status: str = "success"
    details: T


class ApiError(ResponseModel):
    """An error envelope: ``code`` and ``message``."""

    status: str = "error"
    code: str
    message: str


class DetailedApiError(ApiError):
    """An error envelope with per-field ``errors``."""

    errors: dict[str, Any] = {}


PaginationOutput = Pagination

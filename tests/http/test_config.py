"""HttpClientConfig: validation, from_env and a token that never shows."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from prefactor_http import HttpClientConfig

URL = "https://api.example.test"
TOKEN = "tok-config-0123456789"


def make(**overrides: Any) -> HttpClientConfig:
    values: dict[str, Any] = {"api_url": URL, "api_token": TOKEN}
    values.update(overrides)
    return HttpClientConfig(**values)


def test_defaults_match_the_published_sdk() -> None:
    config = make()
    assert config.request_timeout == 30.0
    assert config.connect_timeout == 10.0
    assert config.max_retries == 3
    assert config.initial_retry_delay == 1.0
    assert config.max_retry_delay == 60.0
    assert config.retry_multiplier == 2.0
    assert config.retry_on_status_codes == (429, 500, 502, 503, 504)
    assert config.transport == "httpx"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_url": ""}, "api_url is required"),
        ({"api_url": "   "}, "api_url is required"),
        ({"api_url": "api.example.test"}, "http:// or https://"),
        ({"api_url": "ftp://api.example.test"}, "http:// or https://"),
        ({"api_url": "http://"}, "no host"),
        ({"api_url": "https:///api/v1"}, "no host"),
        ({"api_token": ""}, "api_token is required"),
        ({"api_token": "  "}, "api_token is required"),
        ({"request_timeout": 0}, "request_timeout must be positive (a number), got"),
        ({"request_timeout": -1.0}, "request_timeout must be positive (a number), got"),
        ({"request_timeout": float("nan")}, "request_timeout must be positive (a number), got"),
        ({"connect_timeout": 0}, "connect_timeout must be positive (a number), got"),
        ({"max_retries": -1}, "max_retries must be non-negative (an integer), got"),
        ({"max_retries": 1.5}, "max_retries must be non-negative (an integer), got"),
        ({"initial_retry_delay": 0}, "initial_retry_delay must be positive (a number), got"),
        ({"max_retry_delay": -2}, "max_retry_delay must be positive (a number), got"),
        (
            {"initial_retry_delay": 5.0, "max_retry_delay": 1.0},
            "initial_retry_delay must be <= max_retry_delay, got 5.0 > 1.0",
        ),
        ({"retry_multiplier": 0.5}, "retry_multiplier must be >= 1"),
        ({"retry_on_status_codes": (429, 600)}, "100-599"),
        ({"retry_on_status_codes": (99,)}, "100-599"),
        ({"transport": "requests"}, "transport must be one of httpx, aiohttp; got 'requests'"),
    ],
)
def test_invalid_settings_raise_a_clear_value_error(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**overrides)


def test_the_aiohttp_transport_without_its_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)  # as if it were not installed
    with pytest.raises(ValueError, match=r"pip install \"prefactor-integrations\[aiohttp\]\""):
        make(transport="aiohttp")


def test_the_transport_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", URL)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", TOKEN)
    monkeypatch.setenv("PREFACTOR_HTTP_TRANSPORT", "aiohttp")
    assert HttpClientConfig.from_env().transport == "aiohttp"
    assert HttpClientConfig.from_env(transport="httpx").transport == "httpx"
    monkeypatch.setenv("PREFACTOR_HTTP_TRANSPORT", "curl")
    with pytest.raises(ValueError, match="transport must be one of"):
        HttpClientConfig.from_env()


def test_zero_retries_and_custom_status_codes_are_accepted() -> None:
    config = make(max_retries=0, retry_on_status_codes=[503], retry_multiplier=1)
    assert config.max_retries == 0
    assert config.retry_on_status_codes == (503,)


def test_token_is_hidden_from_repr_and_str() -> None:
    config = make()
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)
    assert "api_token=***" in repr(config)
    assert URL in repr(config)


def test_token_is_hidden_from_validation_errors() -> None:
    with pytest.raises(ValueError) as caught:
        make(request_timeout=-1)
    assert TOKEN not in str(caught.value)


def test_from_env_reads_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", URL)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", TOKEN)
    config = HttpClientConfig.from_env(max_retries=5)
    assert (config.api_url, config.api_token, config.max_retries) == (URL, TOKEN, 5)


@pytest.mark.parametrize("missing", ["PREFACTOR_API_URL", "PREFACTOR_API_TOKEN"])
@pytest.mark.parametrize("value", [None, ""])
def test_from_env_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, missing: str, value: str | None
) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", URL)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", TOKEN)
    if value is None:
        monkeypatch.delenv(missing)
    else:
        monkeypatch.setenv(missing, value)
    with pytest.raises(ValueError, match=missing):
        HttpClientConfig.from_env()


def test_from_env_rejects_a_malformed_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", "localhost:8000")
    monkeypatch.setenv("PREFACTOR_API_TOKEN", TOKEN)
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpClientConfig.from_env()

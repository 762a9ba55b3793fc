"""Nonsense settings are refused when they are given, with a message naming the field and what
it accepts, instead of hanging, flooding the API or quietly losing every span later."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from prefactor_core import PrefactorCoreConfig, QueueConfig
from prefactor_core.payloads import PayloadPolicy
from prefactor_http.config import HttpClientConfig
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_integrations.llama_index import PrefactorSpanHandler

HTTP = HttpClientConfig(api_url="https://api.example.com", api_token="pfl_token")


def _refused(exc_type: type[Exception], message: str, build: Any, **kwargs: Any) -> None:
    with pytest.raises(exc_type) as raised:
        build(**kwargs)
    assert message in str(raised.value), str(raised.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shutdown_timeout", float("inf"), "shutdown_timeout must be between 0 and 300 seconds"),
        ("shutdown_timeout", 1e9, "shutdown_timeout must be between 0 and 300 seconds"),
        ("retry_budget", 1e9, "retry_budget must be between 0 and 86400 seconds"),
        ("linger", float("nan"), "linger must be between 0 and 60 seconds"),
        (
            "retry_delay_base",
            float("inf"),
            "retry_delay_base must be more than 0 and at most 3600 seconds, got inf",
        ),
    ],
)
def test_every_duration_has_a_finite_maximum(field: str, value: float, message: str) -> None:
    _refused(ValidationError, message, QueueConfig, **{field: value})


def test_the_largest_durations_are_accepted() -> None:
    config = QueueConfig(shutdown_timeout=300, retry_budget=86_400, linger=60)
    assert (config.shutdown_timeout, config.retry_budget, config.linger) == (300, 86_400, 60)


@pytest.mark.parametrize("interval", [1e-3, 0.5, 1e9, float("inf")])
def test_termination_poll_interval_is_at_least_one_second(interval: float) -> None:
    _refused(
        ValidationError,
        "termination_poll_interval must be None (off) or between 1 and 3600 seconds, "
        f"got {interval!r}",
        PrefactorCoreConfig,
        http_config=HTTP,
        termination_poll_interval=interval,
    )
    assert PrefactorCoreConfig(http_config=HTTP, termination_poll_interval=1).http_config is HTTP


def test_an_invalid_secret_pattern_fails_at_construction() -> None:
    _refused(
        ValueError,
        "secret_patterns['order_id'] is not a valid regular expression "
        "(missing ), unterminated subpattern at position 0): '(ORD-[0-9]+'",
        PayloadPolicy,
        secret_patterns={"order_id": "(ORD-[0-9]+"},
    )
    _refused(
        TypeError,
        "secret_patterns must map names to regular expressions (strings), got 'order_id': 42",
        PayloadPolicy,
        secret_patterns={"order_id": 42},
    )


@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_max_open_runs_must_be_a_positive_integer(value: Any) -> None:
    _refused(
        ValueError,
        f"max_open_runs must be an integer from 1 to 1000000, got {value!r}",
        PrefactorCallbackHandler,
        max_open_runs=value,
    )


@pytest.mark.parametrize("value", ["false", "False", 0, None])
def test_capture_content_takes_only_real_booleans(value: Any) -> None:
    message = f"capture_content must be True or False, got {value!r}"
    _refused(TypeError, message, PayloadPolicy, capture_content=value)
    _refused(TypeError, message, PrefactorCallbackHandler, capture_content=value)
    _refused(TypeError, message, PrefactorSpanHandler, capture_content=value)


def test_llama_index_flags_take_only_real_booleans() -> None:
    _refused(
        TypeError,
        "trace_ingestion must be True or False, got 'yes'",
        PrefactorSpanHandler,
        trace_ingestion="yes",
    )


@pytest.mark.parametrize(
    ("build", "misspelled", "message"),
    [
        (
            QueueConfig,
            "shutdwn_timeout",
            "QueueConfig has no field 'shutdwn_timeout'; did you mean 'shutdown_timeout'?",
        ),
        (
            QueueConfig,
            "max_buffered_ops",
            "QueueConfig has no field 'max_buffered_ops'; did you mean 'max_buffered_bytes'?",
        ),
        (
            lambda **kw: PrefactorCoreConfig(http_config=HTTP, **kw),
            "termination_poll",
            "PrefactorCoreConfig has no field 'termination_poll'; did you mean "
            "'termination_poll_interval'?",
        ),
    ],
)
def test_unknown_fields_are_refused_with_the_closest_name(
    build: Any, misspelled: str, message: str
) -> None:
    _refused(TypeError, message, build, **{misspelled: 1})


def test_an_unknown_field_far_from_any_lists_the_known_ones() -> None:
    with pytest.raises(
        TypeError, match=re.escape("QueueConfig has no field 'zzz'; known fields: ")
    ):
        QueueConfig(zzz=1)  # type: ignore[call-arg]

"""Tests for s3func.retry: backoff arithmetic, caps, Retry-After parsing, validation."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest

from s3func.errors import ConfigurationError
from s3func.retry import (
    DEFAULT_RETRY_POLICY,
    NO_RETRY,
    RetryPolicy,
    parse_retry_after,
    policy_from_env,
)


def fixed(value: float) -> Any:
    return lambda: value


# --------------------------------------------------------------------------- delay


@pytest.mark.parametrize(
    ("policy", "attempt", "rng_value", "expected"),
    [
        # ceiling = min(max_delay, base_delay * 2 ** (attempt - 1)); delay = rng * ceiling
        (RetryPolicy(), 1, 1.0, 0.1),
        (RetryPolicy(), 2, 1.0, 0.2),
        (RetryPolicy(), 3, 1.0, 0.4),
        (RetryPolicy(), 4, 0.5, 0.4),
        (RetryPolicy(), 8, 1.0, 12.8),
        (RetryPolicy(), 9, 1.0, 20.0),  # 25.6 capped at max_delay
        (RetryPolicy(), 9, 0.5, 10.0),  # jitter applies below the cap
        (RetryPolicy(), 50, 0.25, 5.0),
        (RetryPolicy(), 1, 0.0, 0.0),
        (RetryPolicy(base_delay=1.0, max_delay=20.0), 5, 1.0, 16.0),
        (RetryPolicy(base_delay=1.0, max_delay=20.0), 6, 1.0, 20.0),
        (RetryPolicy(base_delay=0.0), 7, 0.9, 0.0),
        (RetryPolicy(max_delay=0.0), 3, 0.9, 0.0),
        (RetryPolicy(base_delay=2.0, max_delay=1.0), 1, 1.0, 1.0),  # cap below base
    ],
)
def test_delay_full_jitter(
    policy: RetryPolicy, attempt: int, rng_value: float, expected: float
) -> None:
    assert policy.delay(attempt, rng=fixed(rng_value)) == pytest.approx(expected)


def test_delay_uses_rng_each_call() -> None:
    values = iter([0.1, 0.9])
    policy = RetryPolicy(base_delay=1.0)
    assert policy.delay(1, rng=lambda: next(values)) == pytest.approx(0.1)
    assert policy.delay(1, rng=lambda: next(values)) == pytest.approx(0.9)


def test_delay_clamps_misbehaving_rng() -> None:
    policy = RetryPolicy(base_delay=1.0)
    assert policy.delay(1, rng=fixed(7.0)) == 1.0
    assert policy.delay(1, rng=fixed(-3.0)) == 0.0


def test_delay_default_rng_stays_within_bounds() -> None:
    policy = RetryPolicy()
    for attempt in range(1, 30):
        assert 0.0 <= policy.delay(attempt) <= policy.max_delay


def test_delay_huge_attempt_does_not_overflow() -> None:
    assert RetryPolicy().delay(10**6, rng=fixed(1.0)) == 20.0
    assert RetryPolicy(base_delay=50.0, max_delay=60.0).delay(5000, rng=fixed(1.0)) == 60.0


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (5.0, 5.0),  # larger than the jittered backoff: still honoured
        (0.0, 0.0),
        (0.05, 0.05),  # smaller than the backoff ceiling: used as is
        (60.0, 60.0),
        (61.0, 60.0),  # capped at max_retry_after
        (1e9, 60.0),
        (math.inf, 60.0),
        (-4.0, 0.0),  # never negative
    ],
)
def test_delay_retry_after(retry_after: float, expected: float) -> None:
    def unused_rng() -> float:
        raise AssertionError("the rng must not be used with a Retry-After hint")

    assert RetryPolicy().delay(3, retry_after, rng=unused_rng) == expected


def test_delay_retry_after_custom_cap_and_nan() -> None:
    assert RetryPolicy(max_retry_after=2.5).delay(1, 10.0) == 2.5
    assert RetryPolicy(max_retry_after=0.0).delay(1, 10.0) == 0.0
    assert RetryPolicy(base_delay=1.0).delay(1, math.nan, rng=fixed(0.5)) == 0.5


@pytest.mark.parametrize("attempt", [0, -1, True, 1.5, "1"])
def test_delay_rejects_bad_attempt(attempt: Any) -> None:
    with pytest.raises(ConfigurationError, match="attempt"):
        RetryPolicy().delay(attempt, rng=fixed(0.5))


# --------------------------------------------------------------------------- the policy


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay, policy.max_retry_after) == (
        5,
        0.1,
        20.0,
        60.0,
    )
    assert policy == DEFAULT_RETRY_POLICY
    assert NO_RETRY.max_attempts == 1
    assert RetryPolicy(max_attempts=1) == NO_RETRY


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"base_delay": -0.1}, "base_delay"),
        ({"base_delay": math.nan}, "base_delay"),
        ({"base_delay": math.inf}, "base_delay"),
        ({"base_delay": "1"}, "base_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"max_retry_after": -1.0}, "max_retry_after"),
        ({"max_retry_after": None}, "max_retry_after"),
    ],
)
def test_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RetryPolicy(**kwargs)


def test_zero_delays_and_integers_are_valid() -> None:
    policy = RetryPolicy(max_attempts=1, base_delay=0, max_delay=0, max_retry_after=0)
    assert policy.delay(1, rng=fixed(1.0)) == 0.0
    assert isinstance(policy.delay(1, rng=fixed(1.0)), float)


def test_with_changes_only_the_given_fields() -> None:
    base = RetryPolicy()
    changed = base.with_(max_attempts=3, max_retry_after=5.0)
    assert changed == RetryPolicy(max_attempts=3, max_retry_after=5.0)
    assert base == RetryPolicy()  # unchanged
    assert base.with_() == base
    assert base.with_(base_delay=0.0).base_delay == 0.0  # falsy values are applied
    assert base.replace(max_delay=1.0) == base.with_(max_delay=1.0)
    with pytest.raises(ConfigurationError):
        base.with_(max_attempts=0)


def test_policy_is_frozen_and_hashable() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 2  # type: ignore[misc]
    assert {policy: 1}[RetryPolicy()] == 1


# --------------------------------------------------------------------------- Retry-After

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("-0.5", 0.0),
        ("+7", 7.0),
        ("abc", None),
        ("1e3", None),
        ("inf", None),
        ("nan", None),
        ("0x10", None),
        ("5 s", None),
        ("1.2.3", None),
        (".5", None),
        ("-", None),
        ("٣", None),  # a non-ASCII digit
        ("9" * 400, None),  # overflows to infinity
        # HTTP dates, relative to NOW = Wed, 01 May 2024 12:00:00 GMT
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wednesday, 01-May-24 12:01:00 GMT", 60.0),  # RFC 850
        ("Wed May  1 12:00:05 2024", 5.0),  # asctime
        ("Wed, 01 May 2024 11:59:00 GMT", 0.0),  # in the past
        ("Wed, 01 May 2024 14:00:10 +0200", 10.0),  # offsets are honoured
        ("Wed, 32 May 2024 12:00:00 GMT", None),
        ("Wed, 01 Foo 2024 12:00:00 GMT", None),
        ("tomorrow", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    result = parse_retry_after(value, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_retry_after_date_uses_clock_by_default() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_MAX_ATTEMPTS": ""}, None),
        ({"AWS_MAX_ATTEMPTS": "  "}, None),
        ({"AWS_MAX_ATTEMPTS": "3"}, RetryPolicy(max_attempts=3)),
        ({"AWS_MAX_ATTEMPTS": " 1 "}, NO_RETRY),
        ({"AWS_RETRY_MODE": "adaptive"}, None),
    ],
)
def test_policy_from_env(env: dict[str, str], expected: RetryPolicy | None) -> None:
    assert policy_from_env(env) == expected


@pytest.mark.parametrize("value", ["0", "-1", "three", "2.5", "1e2", "9" * 50])
def test_policy_from_env_rejects(value: str) -> None:
    with pytest.raises(ConfigurationError, match="AWS_MAX_ATTEMPTS"):
        policy_from_env({"AWS_MAX_ATTEMPTS": value})


def test_policy_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "environ", {"AWS_MAX_ATTEMPTS": "4"})
    assert policy_from_env() == RetryPolicy(max_attempts=4)

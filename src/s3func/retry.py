"""The retry policy: how many attempts, and how long to wait between them.

One policy serves S3 and B2. Waits use *full jitter*: after failed attempt ``n`` the client
sleeps a uniformly random time in ``[0, min(max_delay, base_delay * 2 ** (n - 1)))``, which
spreads out clients that failed together. When the server sends a ``Retry-After`` hint the
client waits exactly that long instead, capped at ``max_retry_after``.

Which errors are retried is decided by the transport, not here (see
:attr:`s3func.errors.S3FuncError.retryable`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping

from .errors import ConfigurationError
from .models import FrozenValue

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "NO_RETRY",
    "RetryPolicy",
    "parse_retry_after",
    "policy_from_env",
]

_MAX_EXPONENT = 1000  # 2.0 ** 1000 is finite; larger exponents only matter after the cap


class RetryPolicy(FrozenValue):
    """How often and how patiently a request is retried.

    Instances are immutable; derive variants with :meth:`with_` (or :meth:`replace`).

    Attributes:
        max_attempts: Total tries, including the first (``1`` disables retries).
        base_delay: Backoff scale in seconds: the cap of the first wait.
        max_delay: Upper bound, in seconds, of any computed backoff.
        max_retry_after: Upper bound, in seconds, on waits requested by the server through
            ``Retry-After``.

    Raises:
        ConfigurationError: ``max_attempts`` is not an integer >= 1, or a delay is negative,
            infinite or not a number.
    """

    __slots__ = ("base_delay", "max_attempts", "max_delay", "max_retry_after")

    max_attempts: int
    base_delay: float
    max_delay: float
    max_retry_after: float

    def __init__(
        self,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 20.0,
        max_retry_after: float = 60.0,
    ) -> None:
        self._init_field("max_attempts", max_attempts)
        self._init_field("base_delay", base_delay)
        self._init_field("max_delay", max_delay)
        self._init_field("max_retry_after", max_retry_after)
        self._validate()

    def _validate(self) -> None:
        attempts = self.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ConfigurationError(f"max_attempts must be an integer >= 1, not {_show(attempts)}")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"{name} must be a finite number of seconds >= 0, not {_show(value)}"
                )

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Return how long to wait after a failed attempt.

        Args:
            attempt: The number of the attempt that just failed, starting at 1.
            retry_after: Seconds the server asked us to wait (see :func:`parse_retry_after`),
                or ``None``. When given, it replaces the computed backoff, even if longer,
                capped at :attr:`max_retry_after` and never below 0. ``NaN`` is ignored.
            rng: Returns a float in ``[0, 1)``; inject a fixed one for deterministic tests.

        Returns:
            The wait in seconds.

        Raises:
            ConfigurationError: ``attempt`` is less than 1.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ConfigurationError(f"attempt must be an integer >= 1, not {_show(attempt)}")
        if retry_after is not None and not math.isnan(retry_after):
            return float(max(0.0, min(retry_after, self.max_retry_after)))
        exponent = min(attempt - 1, _MAX_EXPONENT)
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        fraction = min(1.0, max(0.0, rng()))
        return float(fraction * ceiling)

    def with_(
        self,
        *,
        max_attempts: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        max_retry_after: float | None = None,
    ) -> RetryPolicy:
        """Return a copy with the given fields changed (``None`` keeps a field).

        Args:
            max_attempts: New total number of tries.
            base_delay: New backoff scale in seconds.
            max_delay: New backoff cap in seconds.
            max_retry_after: New cap on server-requested waits in seconds.

        Returns:
            The new, validated policy.

        Raises:
            ConfigurationError: A new value is invalid.
        """
        return RetryPolicy(
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
            base_delay=self.base_delay if base_delay is None else base_delay,
            max_delay=self.max_delay if max_delay is None else max_delay,
            max_retry_after=(self.max_retry_after if max_retry_after is None else max_retry_after),
        )


DEFAULT_RETRY_POLICY: RetryPolicy = RetryPolicy()
"""The default: 5 attempts, 0.1 s base, 20 s backoff cap, Retry-After capped at 60 s."""

NO_RETRY: RetryPolicy = RetryPolicy(max_attempts=1)
"""A policy that makes exactly one attempt."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header value into seconds to wait.

    Accepts delay-seconds (``"120"``; fractions such as ``"1.5"`` are tolerated) and HTTP
    dates in IMF-fixdate, RFC 850 and asctime form (read as UTC).

    Args:
        value: The header value, or ``None`` when the header is absent.
        now: The current time as a POSIX timestamp, for dates; defaults to
            :func:`time.time`.

    Returns:
        Seconds to wait (``0.0`` for negative numbers and dates in the past), or ``None``
        when the header is absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    number = text[1:] if text[0] in "+-" else text
    whole, _, fraction = number.partition(".")
    if whole.isdigit() and whole.isascii() and (not fraction or fraction.isdigit()):
        if text[0] == "-":
            return 0.0
        seconds = float(number)
        return seconds if math.isfinite(seconds) else None

    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if moment.tzinfo is None:
        from datetime import timezone

        moment = moment.replace(tzinfo=timezone.utc)
    if now is None:
        import time

        now = time.time()
    try:
        seconds = moment.timestamp() - now
    except (OverflowError, ValueError, OSError):
        return None
    return max(0.0, seconds)


def policy_from_env(env: Mapping[str, str] | None = None) -> RetryPolicy | None:
    """Build a policy from ``AWS_MAX_ATTEMPTS``, if that variable is set.

    Only the number of attempts is taken from the environment; the delays keep their
    defaults. ``AWS_RETRY_MODE`` is not read: s3func has one retry behaviour.

    Args:
        env: The environment to read instead of :data:`os.environ`.

    Returns:
        ``RetryPolicy(max_attempts=N)``, or ``None`` when the variable is unset or empty.

    Raises:
        ConfigurationError: The variable is not an integer >= 1.
    """
    if env is None:
        import os

        env = os.environ
    raw = env.get("AWS_MAX_ATTEMPTS")
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    attempts = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if attempts < 1:
        raise ConfigurationError(f"AWS_MAX_ATTEMPTS must be an integer >= 1, not {text!r}")
    return RetryPolicy(max_attempts=attempts)


def _show(value: object) -> str:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return repr(value)
    return type(value).__name__

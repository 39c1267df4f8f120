"""Pytest fixtures that run :class:`~s3func.B2Session` against the B2 emulator on loopback.

Enable them with ``pytest_plugins = ["tests.b2emu.fixtures"]`` in a ``conftest.py``.

* ``b2_emulator`` (session scope): one emulator for the whole run. Its
  ``absoluteMinimumPartSize`` is :data:`B2_MIN_PART_SIZE` (small, so large-file tests stay
  fast; sessions read it from the authorization as ``session._min_part_size``).
* ``b2_session`` (function scope): a :class:`~s3func.B2Session` on a fresh, empty, private
  bucket, using the emulator's master key. Injected failures and emulator settings changed
  by the test are undone afterwards.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from s3func import B2Session, RetryPolicy

from .server import B2Emulator

__all__ = ["B2_MIN_PART_SIZE", "b2_emulator", "b2_session", "make_b2_session", "new_bucket_name"]

#: The emulator's absoluteMinimumPartSize (B2's real one is 5,000,000).
B2_MIN_PART_SIZE = 5_000

#: Fast retries for tests: the same number of attempts, tiny backoff.
TEST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)

_counter = itertools.count(1)


def new_bucket_name(stem: str = "t") -> str:
    """Return a bucket name that is unique in this process (B2 rules: 6-63 of [a-z0-9-])."""
    return f"{stem}-{os.getpid()}-{next(_counter):06d}"


def make_b2_session(
    emulator: B2Emulator,
    bucket: str,
    *,
    key_id: str | None = None,
    key: str | None = None,
    retry: RetryPolicy | None = TEST_RETRY,
) -> B2Session:
    """Build a session on ``bucket`` of ``emulator`` (master key unless one is given)."""
    return B2Session(
        access_key_id=key_id or emulator.key_id,
        access_key=key or emulator.key,
        bucket=bucket,
        endpoint_url=emulator.url,
        retry=retry,
    )


@pytest.fixture(scope="session")
def b2_emulator() -> Iterator[B2Emulator]:
    """One B2 emulator on loopback for the whole test run."""
    with B2Emulator(min_part_size=B2_MIN_PART_SIZE, bucket_name="s3func-default") as emu:
        yield emu


@pytest.fixture
def b2_session(b2_emulator: B2Emulator) -> Iterator[B2Session]:
    """A B2Session on a fresh private bucket of the shared emulator."""
    name = new_bucket_name()
    b2_emulator.create_bucket(name)
    settings = dict(b2_emulator.configure())
    session = make_b2_session(b2_emulator, name)
    try:
        yield session
    finally:
        session.close()
        b2_emulator.clear_failures()
        b2_emulator.configure(**settings)

"""Shared test configuration: real servers, a boto3 oracle and the fault-injecting proxy.

Fixtures (S3):

* ``seaweedfs`` (session): the SeaweedFS server of the run (``s3func.testing.SeaweedFS``;
  the same server as the public ``s3func_server`` fixture).
* ``s3_session`` (function): an ``S3Session`` on a fresh, empty bucket; closed afterwards.
* ``boto3_client`` (session): a boto3 S3 client on the same server (path-style, checksums only
  when required), to cross-check what s3func writes and reads.
* ``fault_proxy`` (function): a ``proxy.FaultProxy`` in front of the server (records requests,
  injects faults); stopped afterwards.
* ``proxied_s3_session`` (function): an ``S3Session`` on ``s3_session``'s bucket that goes
  through ``fault_proxy``, with fast retries (same attempts, backoff of a few ms).
* ``any_session`` (function, parametrised by backend): ``s3_session`` or ``b2_session``.

B2 fixtures come from ``tests/b2emu/fixtures.py`` (see the B2 section below).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from proxy import FaultProxy
from s3func import BaseSession, RetryPolicy, S3Session

if TYPE_CHECKING:  # imported as a plugin below; importing it first would skip assert rewriting
    from s3func.testing import SeaweedFS

pytest_plugins = [
    "s3func.testing",  # s3func_server, s3func_session: the public fixtures, used below
    # B2 emulator fixtures: ``b2_emulator`` (session) and ``b2_session`` (fresh bucket per test).
    "b2emu.fixtures",
]

#: Retries for sessions that meet injected faults: same attempts, tiny backoff.
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)


# -- S3: SeaweedFS -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweedfs(s3func_server: SeaweedFS) -> SeaweedFS:
    """The run's SeaweedFS server (random keys, signatures checked, free loopback ports)."""
    return s3func_server


@pytest.fixture
def s3_session(seaweedfs: SeaweedFS) -> Iterator[S3Session]:
    """An S3Session on a fresh, empty bucket of ``seaweedfs``."""
    session = seaweedfs.session(seaweedfs.new_bucket())
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def boto3_client(seaweedfs: SeaweedFS) -> Iterator[Any]:
    """A boto3 S3 client on ``seaweedfs`` (pass ``Bucket=s3_session.bucket``)."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs.endpoint_url,
        aws_access_key_id=seaweedfs.access_key_id,
        aws_secret_access_key=seaweedfs.access_key,
        region_name=seaweedfs.region,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fault_proxy(seaweedfs: SeaweedFS) -> Iterator[FaultProxy]:
    """A recording, fault-injecting proxy in front of ``seaweedfs`` (see tests/proxy.py)."""
    with FaultProxy(seaweedfs.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def proxied_s3_session(
    seaweedfs: SeaweedFS, s3_session: S3Session, fault_proxy: FaultProxy
) -> Iterator[S3Session]:
    """An S3Session on ``s3_session``'s bucket whose requests go through ``fault_proxy``."""
    session = seaweedfs.session(s3_session.bucket, endpoint_url=fault_proxy.url, retry=FAST_RETRY)
    try:
        yield session
    finally:
        session.close()


# -- B2 ------------------------------------------------------------------------------------
# Owned by the B2 engineer: ``b2_emulator`` and ``b2_session`` come from ``b2emu.fixtures``
# (listed in ``pytest_plugins`` above). Add "b2" to ``_BACKENDS`` to run ``any_session``
# tests on B2 too.

_BACKENDS = ["s3", "b2"]

# -- end of the B2 section -----------------------------------------------------------------


@pytest.fixture(params=_BACKENDS)
def any_session(request: pytest.FixtureRequest) -> BaseSession:
    """A session on a fresh bucket, once per backend in ``_BACKENDS``."""
    fixture = {"s3": "s3_session", "b2": "b2_session"}[request.param]
    session: BaseSession = request.getfixturevalue(fixture)
    return session

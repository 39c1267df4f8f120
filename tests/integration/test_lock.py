"""``ObjectLock`` against real servers: SeaweedFS (S3, whole-second listing timestamps) and the
B2 emulator (native API, millisecond timestamps), including real ``SIGKILL``s and a short
multi-process campaign (``tests/lock_campaign.py``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lock_campaign import run_campaign
from s3func import BaseSession, S3Session
from s3func import lock as L
from s3func.errors import (
    ConfigurationError,
    LockError,
    LockTimeoutError,
    ServerError,
    TransportTimeout,
)
from s3func.lock import BODY, ObjectLock, grace_for, lock_prefix, seq0_name, seq1_name

SRC = Path(__file__).resolve().parents[2] / "src"


# -- helpers ---------------------------------------------------------------------------------


def backend(session: BaseSession) -> str:
    return "b2" if type(session).__name__ == "B2Session" else "s3"


@pytest.fixture
def spec(any_session: BaseSession, request: pytest.FixtureRequest) -> dict[str, Any]:
    """How a subprocess builds a session on ``any_session``'s bucket."""
    if backend(any_session) == "s3":
        server = request.getfixturevalue("seaweedfs")
        kwargs = {
            "access_key_id": server.access_key_id,
            "access_key": server.access_key,
            "endpoint_url": server.endpoint_url,
            "region": server.region,
        }
        return {"kind": "s3", "kwargs": {**kwargs, "bucket": any_session.bucket}}
    emu = request.getfixturevalue("b2_emulator")
    kwargs = {"access_key_id": emu.key_id, "access_key": emu.key, "endpoint_url": emu.url}
    return {"kind": "b2", "kwargs": {**kwargs, "bucket": any_session.bucket}}


@pytest.fixture(scope="module")
def seaweed_conditional(seaweedfs: Any) -> L.ConditionalWriteSupport:
    """The conditional-write probe, run once against SeaweedFS."""
    session = seaweedfs.session(seaweedfs.new_bucket("probe"))
    try:
        return L.probe_conditional_writes(session, "probe.lock/")
    finally:
        session.close()


def methods_for(session: BaseSession, support: L.ConditionalWriteSupport | None) -> list[str]:
    """The methods to test on ``session``: conditional only where the probe passed."""
    if backend(session) == "s3" and support is not None and support.supported:
        L._PROBE_BY_ENDPOINT[L._endpoint_key(session)] = support  # type: ignore[index]
        return ["listing", "conditional"]
    return ["listing"]


def skip_reason(session: BaseSession, support: L.ConditionalWriteSupport | None) -> str:
    if backend(session) == "b2":
        return "B2 has no conditional writes (501): the listing method only"
    return f"conditional writes unusable on this SeaweedFS: {support and support.reason}"


@pytest.fixture
def support(
    any_session: BaseSession, request: pytest.FixtureRequest
) -> L.ConditionalWriteSupport | None:
    if backend(any_session) != "s3":
        return None
    return request.getfixturevalue("seaweed_conditional")


def run_holder(spec: dict[str, Any], key: str, **options: Any) -> subprocess.Popen[str]:
    """Start a process that acquires ``key`` and prints HELD, then sleeps until killed."""
    code = (
        "import json, sys, time\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "import s3func\n"
        "spec = json.loads(sys.argv[1])\n"
        "cls = {'s3': s3func.S3Session, 'b2': s3func.B2Session}[spec['kind']]\n"
        "session = cls(**spec['kwargs'])\n"
        "options = json.loads(sys.argv[4])\n"
        "if options.pop('assume_conditional', False):\n"
        "    from s3func import lock as L\n"
        "    L._PROBE_BY_SESSION[session] = L.ConditionalWriteSupport(True, 'assumed')\n"
        "lock = session.lock(sys.argv[2], **options)\n"
        "assert lock.acquire(exclusive=options.get('exclusive', True))\n"
        "print('HELD', lock.lock_id, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(spec), key, str(SRC), json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("HELD"), line
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def keys(session: BaseSession, prefix: str) -> list[str]:
    return sorted(o.key for o in session.list_objects(prefix=prefix))


# -- the API on both backends ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["listing", "conditional"])
def test_acquire_release_and_inspection(
    any_session: BaseSession, support: L.ConditionalWriteSupport | None, method: str
) -> None:
    if method not in methods_for(any_session, support):
        pytest.skip(skip_reason(any_session, support))
    a = any_session.lock("job", method=method)
    b = any_session.lock("job", method=method)
    assert isinstance(a, ObjectLock) and a.lock_id != b.lock_id
    assert not a.locked()
    assert a.acquire()
    assert a.held and a.verify() and a.locked() and b.locked()
    assert a.method == method
    assert b.acquire(blocking=False) is False
    assert b.acquire(timeout=0) is False
    infos = b.other_locks()
    assert list(infos) == [a.lock_id]
    assert infos[a.lock_id].exclusive and not infos[a.lock_id].stale
    assert infos[a.lock_id].method == method
    assert a.other_locks() == {}
    a.release()
    assert not a.held and not a.verify()
    assert keys(any_session, "job.lock/") == []
    assert b.acquire(blocking=False)
    b.release()


@pytest.mark.parametrize("method", ["listing", "conditional"])
def test_shared_holders_coexist(
    any_session: BaseSession, support: L.ConditionalWriteSupport | None, method: str
) -> None:
    if method not in methods_for(any_session, support):
        pytest.skip(skip_reason(any_session, support))
    r1, r2, w = (any_session.lock("data", method=method) for _ in range(3))
    assert r1.acquire(exclusive=False)
    assert r2.acquire(exclusive=False)
    assert w.acquire(blocking=False) is False
    r1.release()
    assert w.acquire(blocking=False) is False
    r2.release()
    assert w.acquire(blocking=False)
    assert r1.acquire(blocking=False, exclusive=False) is False
    w.release()


def test_context_manager_and_timeouts(any_session: BaseSession) -> None:
    with any_session.lock("cm") as held:
        assert held.held
        waiter = any_session.lock("cm", timeout=0.5)
        start = time.monotonic()
        with pytest.raises(LockTimeoutError, match="could not acquire lock 'cm'"), waiter:
            pass
        assert 0.4 < time.monotonic() - start < 5
        start = time.monotonic()
        assert any_session.lock("cm").acquire(timeout=0) is False
        assert time.monotonic() - start < 5
    assert not held.held
    with pytest.raises(ConfigurationError):
        any_session.lock("cm").acquire(blocking=False, timeout=1)


def test_threads_exclude_each_other(any_session: BaseSession) -> None:
    inside = []
    overlaps = []
    count = [0]

    def worker() -> None:
        lock = any_session.lock("threads", poll_interval=0.05)
        for i in range(4):
            with lock:
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(i)
                time.sleep(0.01)
                count[0] += 1
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert count[0] == 16 and overlaps == []


def test_foreign_objects_and_nested_lock_names(any_session: BaseSession) -> None:
    any_session.put_object("k.lock/README", b"not a ticket")
    any_session.put_object("k.lock/a-0123abcd-1x-1", b"wrong size")
    any_session.put_object("k.lock/zz-0123abcd-0x-30000", b"x" * len(BODY) + b"!")
    k, kk = any_session.lock("k"), any_session.lock("k.lock")
    assert kk.acquire()
    assert k.acquire(blocking=False)
    assert k.other_locks() == {} and kk.other_locks() == {}
    k.release()
    kk.release()
    assert keys(any_session, "k.lock") == [
        "k.lock/README",
        "k.lock/a-0123abcd-1x-1",
        "k.lock/zz-0123abcd-0x-30000",
    ]


# -- crash recovery, leases, recovery of tickets -------------------------------------------------


@pytest.mark.parametrize("method", ["listing", "conditional"])
@pytest.mark.parametrize("exclusive", [True, False])
def test_sigkilled_holder_stops_blocking_within_the_bound(
    any_session: BaseSession,
    support: L.ConditionalWriteSupport | None,
    spec: dict[str, Any],
    procs: list[subprocess.Popen[str]],
    method: str,
    exclusive: bool,
) -> None:
    if method not in methods_for(any_session, support):
        pytest.skip(skip_reason(any_session, support))
    lease = 2.0
    options = {"lease": lease, "method": method, "exclusive": exclusive}
    if method == "conditional":
        options["assume_conditional"] = True
    holder = run_holder(spec, "crash", **options)
    procs.append(holder)
    waiter = any_session.lock("crash", lease=lease, method=method, poll_interval=0.1)
    assert waiter.acquire(blocking=False) is False
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed = time.monotonic()
    assert waiter.acquire(timeout=30)
    waited = time.monotonic() - killed
    bound = lease + grace_for(lease) + lease / 4 + 0.1 + 1.5  # + request time and a margin
    assert waited <= bound, f"waited {waited:.2f} s, bound {bound:.2f} s"
    assert list(waiter.other_locks()) == []  # the dead ticket was cleaned up
    waiter.release()


@pytest.mark.parametrize("method", ["listing", "conditional"])
def test_live_holder_never_loses_to_the_lease(
    any_session: BaseSession, support: L.ConditionalWriteSupport | None, method: str
) -> None:
    if method not in methods_for(any_session, support):
        pytest.skip(skip_reason(any_session, support))
    holder = any_session.lock("live", lease=1.5, method=method)
    waiter = any_session.lock("live", lease=1.5, method=method, poll_interval=0.1)
    assert holder.acquire()
    start = time.monotonic()
    assert waiter.acquire(timeout=6) is False  # four leases
    assert time.monotonic() - start >= 6
    assert holder.verify()
    assert waiter.break_other_locks() == []
    holder.release()
    assert waiter.acquire(timeout=5)
    waiter.release()


def test_recovered_ticket_is_not_held_and_keeps_its_place(
    any_session: BaseSession, spec: dict[str, Any], procs: list[subprocess.Popen[str]]
) -> None:
    holder = any_session.lock("rec")
    assert holder.acquire()
    # A waiting ticket of "worker_1", as left by a process that crashed while waiting.
    prefix = lock_prefix("rec")
    any_session.put_object(prefix + seq0_name("worker_1", "0badc0de", True, 30_000), BODY)
    any_session.put_object(prefix + seq1_name("worker_1", "0badc0de", True, 99), BODY)
    again = any_session.lock("rec", lock_id="worker_1")
    assert not again.held
    assert again.acquire(blocking=False) is False  # the election still runs: holder is ahead
    third = any_session.lock("rec")
    any_session.put_object(prefix + seq0_name("worker_2", "0badc0de", True, 30_000), BODY)
    any_session.put_object(prefix + seq1_name("worker_2", "0badc0de", True, 100), BODY)
    holder.release()
    resumed = any_session.lock("rec", lock_id="worker_2")
    assert resumed.acquire(blocking=False)  # alone and live: it keeps its place
    assert prefix + seq1_name("worker_2", "0badc0de", True, 100) in keys(any_session, prefix)
    assert third.acquire(blocking=False) is False
    resumed.release()


def test_winning_is_impossible_after_our_ticket_is_broken(any_session: BaseSession) -> None:
    holder = any_session.lock("brk")
    victim = any_session.lock("brk", poll_interval=0.1)
    assert holder.acquire()
    errors: list[BaseException] = []
    results: list[bool] = []

    def wait() -> None:
        try:
            results.append(victim.acquire(timeout=20))
        except LockError as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    deadline = time.monotonic() + 10
    while victim.lock_id not in holder.other_locks() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.break_other_locks(timedelta(0)) == [victim.lock_id]
    holder.release()  # the lock is free: a buggy election would now let the victim win
    t.join(timeout=30)
    assert results == [] and len(errors) == 1
    assert "gone" in str(errors[0]) or "deleted" in str(errors[0])


def test_break_other_locks_rejects_naive_datetimes_and_age_gates(
    any_session: BaseSession,
) -> None:
    a, b = any_session.lock("brk2"), any_session.lock("brk2")
    assert a.acquire()
    with pytest.raises(ConfigurationError, match="naive"):
        b.break_other_locks(datetime(2030, 1, 1))
    assert b.break_other_locks() == []
    assert b.break_other_locks(timedelta(hours=1)) == []
    assert b.break_other_locks(datetime(2000, 1, 1, tzinfo=timezone.utc)) == []
    assert b.break_other_locks(datetime.now(timezone.utc) + timedelta(hours=1)) == [a.lock_id]
    assert not a.verify()
    assert b.acquire(blocking=False)
    assert b.break_other_locks(timedelta(0)) == []  # never our own
    b.release()


def test_failed_release_does_not_orphan_the_lock(any_session: BaseSession) -> None:
    a = any_session.lock("orphan", lease=2.0)
    b = any_session.lock("orphan", lease=2.0, poll_interval=0.1)
    assert a.acquire()
    real_delete = any_session.delete_object

    def failing_delete(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is main:
            raise ServerError("injected: network down", status=503)
        return real_delete(*args, **kwargs)

    main = threading.current_thread()
    any_session.delete_object = failing_delete  # type: ignore[method-assign]
    try:
        with pytest.raises(LockError, match="once the lease expires"):
            a.release()
    finally:
        del any_session.delete_object  # type: ignore[attr-defined]
    assert not a.held
    start = time.monotonic()
    assert b.acquire(timeout=30)
    assert time.monotonic() - start <= 2.0 + grace_for(2.0) + 0.5 + 1.5
    b.release()


# -- requests: region, timeouts, conditional writes -------------------------------------------


def test_region_and_timeouts_are_carried_into_lock_requests(
    seaweedfs: Any, s3_session: S3Session, fault_proxy: Any
) -> None:
    session = seaweedfs.session(
        s3_session.bucket, endpoint_url=fault_proxy.url, region="eu-lock-1", read_timeout=0.5
    )
    try:
        lock = session.lock("region")
        assert lock.acquire()
        lock.release()
        assert fault_proxy.records
        for record in fault_proxy.records:
            assert "/eu-lock-1/s3/aws4_request" in (record.header("authorization") or "")
        fault_proxy.stall(30, method="GET", before_headers=True, times=None)
        start = time.monotonic()
        with pytest.raises(TransportTimeout):
            lock.acquire()
        assert time.monotonic() - start < 15  # the session's 0.5 s read timeout, with retries
        fault_proxy.release_all()
        fault_proxy.clear_rules()
    finally:
        session.close()


def test_conditional_probe_results(any_session: BaseSession) -> None:
    result = L.probe_conditional_writes(any_session, "probe.lock/")
    if backend(any_session) == "b2":
        assert not result.supported and "501" in result.reason
        lock = any_session.lock("auto", method="auto")
        assert lock.acquire() and lock.method == "listing"
        lock.release()
        with pytest.raises(LockError, match="501"):
            any_session.lock("x", method="conditional").acquire()
    else:
        print(f"SeaweedFS conditional writes: {result}")
    assert keys(any_session, "probe.lock/") == []


def test_mixed_methods_exclude_each_other(
    s3_session: S3Session, seaweed_conditional: L.ConditionalWriteSupport
) -> None:
    if "conditional" not in methods_for(s3_session, seaweed_conditional):
        pytest.skip(f"conditional writes unusable here: {seaweed_conditional.reason}")
    listing = s3_session.lock("mixed", method="listing")
    cond = s3_session.lock("mixed", method="conditional")
    assert listing.acquire()
    assert cond.acquire(blocking=False) is False
    assert cond.acquire(blocking=False, exclusive=False) is False
    listing.release()
    assert cond.acquire(blocking=False)
    assert listing.acquire(blocking=False) is False
    assert listing.acquire(blocking=False, exclusive=False) is False
    cond.release()
    assert cond.acquire(exclusive=False)
    assert listing.acquire(blocking=False, exclusive=False)
    assert listing.acquire(blocking=False, exclusive=False) is True  # already held: same mode
    with pytest.raises(LockError, match="other mode"):
        listing.acquire(blocking=False)
    listing.release()
    assert listing.acquire(blocking=False) is False  # exclusive vs conditional reader
    cond.release()


# -- the campaign ---------------------------------------------------------------------------------


def campaign_spec(request: pytest.FixtureRequest, kind: str) -> dict[str, Any]:
    """A subprocess session spec on a fresh bucket of the ``kind`` server."""
    if kind == "s3":
        server = request.getfixturevalue("seaweedfs")
        return {
            "kind": "s3",
            "kwargs": {
                "access_key_id": server.access_key_id,
                "access_key": server.access_key,
                "endpoint_url": server.endpoint_url,
                "region": server.region,
                "bucket": server.new_bucket("campaign"),
            },
        }
    session = request.getfixturevalue("b2_session")
    emu = request.getfixturevalue("b2_emulator")
    return {
        "kind": "b2",
        "kwargs": {
            "access_key_id": emu.key_id,
            "access_key": emu.key,
            "endpoint_url": emu.url,
            "bucket": session.bucket,
        },
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "methods"),
    [
        ("s3", ("conditional",)),
        ("s3", ("listing", "conditional")),
        ("b2", ("listing", "auto")),
    ],
    ids=["s3-conditional", "s3-mixed", "b2-listing"],
)
def test_campaign_eight_processes_with_kills(
    request: pytest.FixtureRequest, kind: str, methods: tuple[str, ...], tmp_path: Path
) -> None:
    """8 processes, shared and exclusive, 2 holders SIGKILL themselves while holding and the
    driver SIGKILLs one more at a random moment: no overlap, every survivor finishes."""
    spec = campaign_spec(request, kind)
    if "conditional" in methods:
        support = request.getfixturevalue("seaweed_conditional")
        if not support.supported:
            pytest.skip(f"conditional writes unusable on this SeaweedFS: {support.reason}")
        spec["assume_conditional"] = True
    result = run_campaign(
        spec,
        "campaign",
        workers=8,
        duration=22.0,
        methods=methods,
        lease=3.0,
        poll=0.1,
        self_kills=(3, 5),
        external_kill=True,
        workdir=tmp_path,
    )
    print(f"\n{kind} {'+'.join(methods)} campaign: {result.summary()}")
    for line in result.details[:20]:
        print("  ", line)
    assert result.violations == 0, result.details[:20]
    assert result.unexpected_exits == [], result.unexpected_exits
    assert result.kills >= 2
    assert result.finished == 8 - result.kills
    assert result.errors == [], result.errors[:5]
    assert result.acquisitions >= 40
    assert result.shared > 0 and result.exclusive > 0

"""Latency and request counts of ``ObjectLock``, per method, next to the seed's published cost.

Measured on loopback servers started for the run: SeaweedFS (S3, whole-second listing
timestamps) and the B2 emulator (native API). Every lock uses the default settings (lease
30 s, poll interval 0.25 s) unless ``--poll`` is given.

* **uncontended**: ``acquire()`` then ``release()`` on a free lock, ``--rounds`` times; the
  latency of each and the requests each sends (counted by a wrapper around the session);
* **hand-off**: a holder and a blocked waiter (two threads, two ``ObjectLock`` objects); the
  time from the holder calling ``release()`` to the waiter's ``acquire()`` returning;
* **seed**: the seed's published cost per acquisition, 2 PUT + about 3 LIST + a 1 s settle
  delay, computed with this server's measured PUT and LIST latencies.

Targets (issue): uncontended acquire at most 50 ms with conditional writes and at most
250 ms with the listing protocol, with 0 violations (the hand-off phase checks that the two
threads never hold the lock together).

Usage::

    uv run python benchmarks/lock_latency.py [--rounds 50] [--handoffs 20] [--backends s3,b2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from s3func import lock as L  # noqa: E402

TARGET_MS = {"conditional": 50.0, "listing": 250.0}
COUNTED = ("put_object", "get_object", "head_object", "delete_object", "list_objects")


class Counting:
    """Wraps a session and counts the lock's requests by operation."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.counts: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._session, name)
        if name in COUNTED:

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.counts[name] += 1
                return attr(*args, **kwargs)

            return counted
        return attr

    def take(self) -> dict[str, int]:
        out = dict(self.counts)
        self.counts.clear()
        return out


def ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {
        "median": statistics.median(s) * 1000,
        "p90": s[min(len(s) - 1, int(len(s) * 0.9))] * 1000,
        "max": s[-1] * 1000,
    }


def op_latency(session: Any, prefix: str, rounds: int = 20) -> dict[str, float]:
    """Median latency of a small PUT and of a LIST of a small prefix on this server."""
    puts, lists = [], []
    for i in range(rounds):
        t = time.perf_counter()
        session.put_object(f"{prefix}obj{i}", b"x" * 19)
        puts.append(time.perf_counter() - t)
        t = time.perf_counter()
        list(session.list_objects(prefix=prefix).iter_objects())
        lists.append(time.perf_counter() - t)
    for i in range(rounds):
        session.delete_object(f"{prefix}obj{i}")
    return {"put": statistics.median(puts), "list": statistics.median(lists)}


def uncontended(session: Any, method: str, rounds: int, poll: float) -> dict[str, Any]:
    counting = Counting(session)
    lock = L.ObjectLock(counting, f"bench-{method}", method=method, poll_interval=poll)
    t = time.perf_counter()
    assert lock.acquire()
    first = time.perf_counter() - t  # includes the probe for "conditional"
    lock.release()
    counting.take()
    acq, rel, acq_counts, rel_counts = [], [], Counter[str](), Counter[str]()
    for _ in range(rounds):
        t = time.perf_counter()
        assert lock.acquire()
        acq.append(time.perf_counter() - t)
        acq_counts.update(counting.take())
        t = time.perf_counter()
        lock.release()
        rel.append(time.perf_counter() - t)
        rel_counts.update(counting.take())
    return {
        "first_acquire_ms": first * 1000,
        "acquire_ms": ms(acq),
        "release_ms": ms(rel),
        "acquire_requests": {k: v / rounds for k, v in sorted(acq_counts.items())},
        "release_requests": {k: v / rounds for k, v in sorted(rel_counts.items())},
    }


def handoff(session: Any, method: str, n: int, poll: float) -> dict[str, Any]:
    key = f"handoff-{method}"
    holder = L.ObjectLock(session, key, method=method, poll_interval=poll)
    waiter = L.ObjectLock(session, key, method=method, poll_interval=poll)
    inside = [0]
    violations = [0]
    times: list[float] = []
    for _ in range(n):
        assert holder.acquire()
        inside[0] += 1
        got = threading.Event()
        released_at = [0.0]

        def wait(got: threading.Event = got) -> None:
            assert waiter.acquire()
            if inside[0]:
                violations[0] += 1
            got.set()

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(poll * 2 + 0.1)  # let the waiter register and start polling
        inside[0] -= 1
        released_at[0] = time.perf_counter()
        holder.release()
        got.wait(60)
        times.append(time.perf_counter() - released_at[0])
        t.join()
        waiter.release()
    return {"handoff_ms": ms(times), "violations": violations[0]}


def run_backend(name: str, session: Any, args: argparse.Namespace) -> dict[str, Any]:
    support = L.probe_conditional_writes(session, "probe.lock/")
    methods = ["listing"] + (["conditional"] if support.supported else [])
    base = op_latency(session, "oplat/")
    out: dict[str, Any] = {
        "conditional_probe": {"supported": support.supported, "reason": support.reason},
        "put_ms": base["put"] * 1000,
        "list_ms": base["list"] * 1000,
        "seed_estimate_acquire_ms": (1.0 + 3 * base["list"] + 2 * base["put"]) * 1000,
        "methods": {},
    }
    for method in methods:
        result = uncontended(session, method, args.rounds, args.poll)
        result.update(handoff(session, method, args.handoffs, args.poll))
        result["target_ms"] = TARGET_MS[method]
        result["meets_target"] = (
            result["acquire_ms"]["median"] <= TARGET_MS[method] and result["violations"] == 0
        )
        out["methods"][method] = result
    return out


def report(results: dict[str, Any]) -> str:
    lines = [
        "| backend | method | acquire median / p90 (ms) | release median (ms) | requests per "
        "acquire | requests per release | hand-off median / p90 (ms) | target | violations |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        for method, m in r["methods"].items():
            req_a = ", ".join(
                f"{v:g} {k.split('_')[0].upper()}" for k, v in m["acquire_requests"].items()
            )
            req_r = ", ".join(
                f"{v:g} {k.split('_')[0].upper()}" for k, v in m["release_requests"].items()
            )
            ok = "met" if m["meets_target"] else "MISSED"
            lines.append(
                f"| {backend} | {method} | {m['acquire_ms']['median']:.1f} / "
                f"{m['acquire_ms']['p90']:.1f} | {m['release_ms']['median']:.1f} | {req_a} | "
                f"{req_r} | {m['handoff_ms']['median']:.0f} / {m['handoff_ms']['p90']:.0f} | "
                f"<= {m['target_ms']:.0f} ms: {ok} | {m['violations']} |"
            )
        lines.append(
            f"| {backend} | seed (published: 2 PUT + ~3 LIST + 1 s settle) | "
            f"~{r['seed_estimate_acquire_ms']:.0f} (est.) | | 2 PUT, ~3 LIST | | poll 1 s | | "
            "57 in 985 (pre-0.9.0) |"
        )
    probe = "; ".join(f"{b}: {r['conditional_probe']['reason']}" for b, r in results.items())
    lines.append("")
    lines.append(f"Conditional-write probe: {probe}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--handoffs", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.25, help="poll interval (default: default)")
    ap.add_argument("--backends", default="s3,b2")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    backends = args.backends.split(",")
    results: dict[str, Any] = {}
    if "s3" in backends:
        from s3func.testing import SeaweedFS

        with SeaweedFS() as server:
            session = server.session(server.new_bucket("lockbench"))
            results["s3 (SeaweedFS)"] = run_backend("s3", session, args)
            session.close()
    if "b2" in backends:
        from b2emu.server import B2Emulator
        from s3func import B2Session

        with B2Emulator() as emu:
            session = B2Session(
                access_key_id=emu.key_id,
                access_key=emu.key,
                bucket=emu.bucket_name,
                endpoint_url=emu.url,
            )
            results["b2 (emulator)"] = run_backend("b2", session, args)
            session.close()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(m["meets_target"] for r in results.values() for m in r["methods"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

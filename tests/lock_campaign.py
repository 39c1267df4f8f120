"""Multi-process correctness campaign for ``ObjectLock``: the worker and the driver.

Run as a script, this is one **worker**: it builds a session from a JSON spec, then acquires
and releases one lock again and again until its time is up, mixing shared and exclusive
acquisitions. Each time it holds the lock it checks an external witness in a local directory:

* an exclusive holder creates ``excl`` with ``O_CREAT | O_EXCL`` (it must not exist) and then
  checks that no ``shared-*`` file exists;
* a shared holder creates ``shared-<pid>`` and then checks that ``excl`` does not exist;
* both check again just before leaving, and log ``enter``/``exit`` times from the system-wide
  monotonic clock so that the driver can look for overlapping intervals afterwards.

Witness files of a process that was killed (a ``killed-<pid>`` marker exists) are removed, not
counted. A worker given ``--kill-at N`` kills itself with ``SIGKILL`` while holding its N-th
lock (its tickets are orphaned; the others must recover through the lease).

:func:`run_campaign` is the **driver**, used by ``tests/integration/test_lock.py`` and
``benchmarks/lock_campaign.py``: it starts the workers, optionally kills one from outside at a
random moment, waits for all, and returns the totals.

Usage (worker)::

    python tests/lock_campaign.py --spec '{"kind": "s3", "kwargs": {...}}' --key K \
        --witness DIR --log FILE --duration 30 [--method listing] [--kill-at 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


# -- worker ---------------------------------------------------------------------------------


def make_session(spec: dict[str, Any]) -> Any:
    """Build an ``S3Session`` or ``B2Session`` from ``{"kind": ..., "kwargs": ...}``."""
    import s3func

    cls = {"s3": s3func.S3Session, "b2": s3func.B2Session}[spec["kind"]]
    return cls(**spec["kwargs"])


class Witness:
    """The external overlap detector (local files; every worker runs on this machine)."""

    def __init__(self, directory: Path, pid: int) -> None:
        self.dir = directory
        self.pid = pid
        self.excl = directory / "excl"
        self.mine = directory / f"shared-{pid}"

    def _dead(self, pid: str) -> bool:
        return (self.dir / f"killed-{pid}").exists()

    def _owner(self, path: Path) -> str | None:
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _sweep(self, path: Path) -> bool:
        """Remove ``path`` if it belongs to a killed process; return whether it is gone."""
        owner = self._owner(path)
        if owner is None:
            return not path.exists()
        if self._dead(owner):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return True
        return False

    def _live_shared(self) -> list[str]:
        out = []
        for p in self.dir.glob("shared-*"):
            if p != self.mine and not self._sweep(p):
                out.append(p.name)
        return out

    def enter(self, exclusive: bool) -> list[str]:
        """Claim the witness; return the problems seen (empty: fine)."""
        problems: list[str] = []
        if exclusive:
            for _ in range(3):
                try:
                    fd = os.open(self.excl, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    if self._sweep(self.excl):
                        continue
                    problems.append(f"excl held by {self._owner(self.excl)}")
                    break
                with os.fdopen(fd, "w") as f:
                    f.write(str(self.pid))
                break
            problems.extend(f"shared file {n} present" for n in self._live_shared())
        else:
            self.mine.write_text(str(self.pid))
            if self.excl.exists() and not self._sweep(self.excl):
                problems.append(f"excl held by {self._owner(self.excl)}")
        return problems

    def leave(self, exclusive: bool) -> list[str]:
        problems: list[str] = []
        if exclusive:
            owner = self._owner(self.excl)
            if owner != str(self.pid):
                problems.append(f"excl taken over by {owner}")
            problems.extend(f"shared file {n} present" for n in self._live_shared())
            if owner == str(self.pid):
                self.excl.unlink()
        else:
            if self.excl.exists() and not self._sweep(self.excl):
                problems.append(f"excl held by {self._owner(self.excl)}")
            with contextlib.suppress(FileNotFoundError):
                self.mine.unlink()
        return problems


def worker(argv: Sequence[str] | None = None) -> int:
    """One campaign worker (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--witness", required=True, type=Path)
    ap.add_argument("--log", required=True, type=Path)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--method", default="listing")
    ap.add_argument("--lease", type=float, default=5.0)
    ap.add_argument("--poll", type=float, default=0.1)
    ap.add_argument("--shared", type=float, default=0.3, help="share of shared acquisitions")
    ap.add_argument("--hold", type=float, default=0.02, help="max seconds to hold")
    ap.add_argument("--kill-at", type=int, default=0, help="SIGKILL self while holding the N-th")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from s3func.errors import LockError

    pid = os.getpid()
    rng = random.Random(args.seed or pid)
    spec = json.loads(args.spec)
    session = make_session(spec)
    if spec.get("assume_conditional"):
        # The driver probed the endpoint once; do not probe again in every worker.
        from s3func import lock as lock_module

        lock_module._PROBE_BY_SESSION[session] = lock_module.ConditionalWriteSupport(
            True, "probed by the campaign driver"
        )
    witness = Witness(args.witness, pid)
    log = args.log.open("a", buffering=1)

    def event(kind: str, **extra: Any) -> None:
        log.write(json.dumps({"pid": pid, "event": kind, "t": time.monotonic(), **extra}) + "\n")

    lock = session.lock(args.key, method=args.method, lease=args.lease, poll_interval=args.poll)
    event("start", method=args.method, lock_id=lock.lock_id)
    stop = time.monotonic() + args.duration
    n = 0
    while time.monotonic() < stop:
        exclusive = rng.random() >= args.shared
        t0 = time.monotonic()
        try:
            won = lock.acquire(exclusive=exclusive, timeout=max(1.0, stop - t0 + 5))
        except LockError as exc:
            event("error", where="acquire", error=repr(exc))
            continue
        if not won:
            event("timeout", waited=time.monotonic() - t0)
            continue
        n += 1
        # Which protocol this acquisition used: a conditional-method lock joins the listing
        # queue when it meets listing-method contenders.
        protocol = "listing" if lock._ticket is not None else "conditional"
        event("enter", exclusive=exclusive, n=n, waited=time.monotonic() - t0, method=protocol)
        problems = witness.enter(exclusive)
        if args.kill_at and n == args.kill_at:
            (args.witness / f"killed-{pid}").write_text("self")
            event("kill", exclusive=exclusive)
            log.flush()
            os.kill(pid, signal.SIGKILL)
        time.sleep(rng.uniform(0, args.hold))
        problems += witness.leave(exclusive)
        event("exit", exclusive=exclusive, n=n, problems=problems)
        try:
            lock.release()
        except LockError as exc:
            event("error", where="release", error=repr(exc))
    event("done", acquisitions=n)
    session.close()
    return 0


# -- driver ----------------------------------------------------------------------------------


@dataclass
class CampaignResult:
    """What a campaign measured."""

    acquisitions: int = 0
    exclusive: int = 0
    shared: int = 0
    witness_violations: int = 0
    overlap_violations: int = 0
    kills: int = 0
    finished: int = 0
    workers: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timeouts: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    max_wait: float = 0.0
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return self.witness_violations + self.overlap_violations

    def summary(self) -> str:
        return (
            f"{self.acquisitions} acquisitions ({self.exclusive} exclusive, {self.shared} shared, "
            f"protocols {self.methods}), {self.violations} violations "
            f"({self.witness_violations} witness, {self.overlap_violations} overlap), "
            f"{self.kills} kills, {self.finished}/{self.workers - self.kills} survivors finished, "
            f"{self.timeouts} timeouts, {len(self.errors)} errors, "
            f"max wait {self.max_wait:.1f} s, {self.seconds:.1f} s"
        )


def _events(log: Path) -> Iterator[dict[str, Any]]:
    with log.open() as f:
        for line in f:
            line = line.strip()
            if line:
                with contextlib.suppress(json.JSONDecodeError):
                    yield json.loads(line)


def run_campaign(
    spec: dict[str, Any],
    key: str,
    *,
    workers: int = 8,
    duration: float = 30.0,
    methods: Sequence[str] = ("listing",),
    lease: float = 5.0,
    poll: float = 0.1,
    shared: float = 0.3,
    hold: float = 0.02,
    self_kills: Sequence[int] = (3, 6),
    external_kill: bool = True,
    seed: int = 1,
    workdir: Path | None = None,
    python: str = sys.executable,
) -> CampaignResult:
    """Run ``workers`` worker processes on lock ``key`` and check the witnesses.

    Worker ``i`` uses ``methods[i % len(methods)]``; workers ``0..len(self_kills)-1`` kill
    themselves while holding their ``self_kills[i]``-th lock; with ``external_kill`` the
    driver SIGKILLs one more worker at a random moment of the run.
    """
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        base = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        witness = base / "witness"
        witness.mkdir(parents=True, exist_ok=True)
        logs = base / "logs"
        logs.mkdir(exist_ok=True)
        env = dict(os.environ)
        src = str(HERE.parents[1] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        errs = []
        started = time.monotonic()
        for i in range(workers):
            log = logs / f"w{i}.jsonl"
            cmd = [
                python,
                str(HERE),
                "--spec",
                json.dumps(spec),
                "--key",
                key,
                "--witness",
                str(witness),
                "--log",
                str(log),
                "--duration",
                str(duration),
                "--method",
                methods[i % len(methods)],
                "--lease",
                str(lease),
                "--poll",
                str(poll),
                "--shared",
                str(shared),
                "--hold",
                str(hold),
                "--seed",
                str(seed * 1000 + i),
            ]
            if i < len(self_kills):
                cmd += ["--kill-at", str(self_kills[i])]
            err_file = (logs / f"w{i}.stderr").open("wb")
            errs.append(err_file)
            stack.callback(err_file.close)
            procs.append((subprocess.Popen(cmd, env=env, stderr=err_file), log))
        killed_externally: set[int] = set()
        if external_kill and workers > len(self_kills):
            victim_index = rng.randrange(len(self_kills), workers)
            time.sleep(rng.uniform(duration * 0.3, duration * 0.6))
            victim = procs[victim_index][0]
            if victim.poll() is None:
                (witness / f"killed-{victim.pid}").write_text("driver")
                victim.send_signal(signal.SIGKILL)
                killed_externally.add(victim.pid)
                with procs[victim_index][1].open("a") as f:
                    f.write(
                        json.dumps({"pid": victim.pid, "event": "kill", "t": time.monotonic()})
                        + "\n"
                    )
        result = CampaignResult(workers=workers)
        for proc, log in procs:
            try:
                proc.wait(timeout=duration + 300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                result.unexpected_exits.append(f"pid {proc.pid} hung and was killed")
                continue
            if proc.returncode == -signal.SIGKILL:
                result.kills += 1
            elif proc.returncode != 0:
                err = log.with_suffix(".stderr").read_text(errors="replace")[-2000:]
                result.unexpected_exits.append(f"pid {proc.pid} exit {proc.returncode}: {err}")
        result.seconds = time.monotonic() - started
        intervals: list[tuple[float, float, bool, int]] = []
        for _proc, log in procs:
            if not log.exists():
                continue
            open_at: tuple[float, bool] | None = None
            for ev in _events(log):
                kind = ev["event"]
                if kind == "enter":
                    result.acquisitions += 1
                    if ev["exclusive"]:
                        result.exclusive += 1
                    else:
                        result.shared += 1
                    method = ev.get("method", "?")
                    result.methods[method] = result.methods.get(method, 0) + 1
                    result.max_wait = max(result.max_wait, ev.get("waited", 0.0))
                    open_at = (ev["t"], ev["exclusive"])
                elif kind == "exit":
                    if ev["problems"]:
                        result.witness_violations += 1
                        result.details.append(f"pid {ev['pid']}: {ev['problems']}")
                    if open_at is not None:
                        intervals.append((open_at[0], ev["t"], open_at[1], ev["pid"]))
                    open_at = None
                elif kind == "kill":
                    if open_at is not None:
                        intervals.append((open_at[0], ev["t"], open_at[1], ev["pid"]))
                    open_at = None
                elif kind == "done":
                    result.finished += 1
                elif kind == "timeout":
                    result.timeouts += 1
                elif kind == "error":
                    result.errors.append(f"pid {ev['pid']} {ev['where']}: {ev['error']}")
        intervals.sort()
        for i, (s1, e1, x1, p1) in enumerate(intervals):
            for s2, e2, x2, p2 in intervals[i + 1 :]:
                if s2 >= e1:
                    break
                if (x1 or x2) and p1 != p2:
                    result.overlap_violations += 1
                    result.details.append(
                        f"overlap: pid {p1} [{s1:.3f},{e1:.3f}] x={x1} "
                        f"and pid {p2} [{s2:.3f},{e2:.3f}] x={x2}"
                    )
        return result


if __name__ == "__main__":
    sys.exit(worker())

"""The long correctness campaign for ``ObjectLock`` (the CI test runs a short one).

For each configuration, ``--workers`` processes (default 8) acquire and release one lock for
``--duration`` seconds, mixing shared and exclusive acquisitions; every holder checks an
external witness (an ``O_EXCL`` file for exclusive holders, per-holder files for shared ones,
plus an interval log checked for overlaps afterwards). Worker 0 and 1 SIGKILL themselves while
holding their 3rd and 5th lock and the driver SIGKILLs one more worker at a random moment;
``--rounds`` repeats everything with new seeds. Worker code: ``tests/lock_campaign.py``.

Configurations (``--configs``):

* ``s3-listing``: SeaweedFS, listing method (whole-second timestamps);
* ``s3-conditional``: SeaweedFS, conditional method (when the probe passes);
* ``s3-mixed``: SeaweedFS, half the workers on each method;
* ``b2-listing``: the B2 emulator (native API, millisecond timestamps), listing method.

Usage::

    uv run python benchmarks/lock_campaign.py --duration 120 --rounds 2
    uv run python benchmarks/lock_campaign.py --configs s3-listing --duration 600 --lease 5

Exit status 0 when every configuration has 0 violations and every surviving worker finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from lock_campaign import CampaignResult, run_campaign  # noqa: E402
from s3func import lock as L  # noqa: E402

CONFIGS = {
    "s3-listing": ("s3", ("listing",)),
    "s3-conditional": ("s3", ("conditional",)),
    "s3-mixed": ("s3", ("listing", "conditional")),
    "b2-listing": ("b2", ("listing",)),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--lease", type=float, default=3.0)
    ap.add_argument("--poll", type=float, default=0.1)
    ap.add_argument("--shared", type=float, default=0.3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    wanted = args.configs.split(",")
    unknown = set(wanted) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown configurations: {sorted(unknown)}")
    results: dict[str, list[dict[str, Any]]] = {}
    ok = True
    with contextlib.ExitStack() as stack:
        specs: dict[str, dict[str, Any]] = {}
        support: L.ConditionalWriteSupport | None = None
        if any(CONFIGS[c][0] == "s3" for c in wanted):
            from s3func.testing import SeaweedFS

            server = stack.enter_context(SeaweedFS())
            probe = server.session(server.new_bucket("probe"))
            support = L.probe_conditional_writes(probe, "probe.lock/")
            probe.close()
            print(f"SeaweedFS conditional-write probe: {support}")

            def s3_spec() -> dict[str, Any]:
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

            specs["s3"] = {"make": s3_spec}
        if any(CONFIGS[c][0] == "b2" for c in wanted):
            from b2emu.server import B2Emulator

            emu = stack.enter_context(B2Emulator())

            def b2_spec() -> dict[str, Any]:
                # One bucket; every round uses its own lock key.
                return {
                    "kind": "b2",
                    "kwargs": {
                        "access_key_id": emu.key_id,
                        "access_key": emu.key,
                        "endpoint_url": emu.url,
                        "bucket": emu.bucket_name,
                    },
                }

            specs["b2"] = {"make": b2_spec}
        for config in wanted:
            kind, methods = CONFIGS[config]
            if "conditional" in methods and not (support and support.supported):
                print(f"{config}: skipped, conditional writes unusable: {support}")
                continue
            for r in range(args.rounds):
                spec = specs[kind]["make"]()
                if "conditional" in methods:
                    spec["assume_conditional"] = True
                with tempfile.TemporaryDirectory() as work:
                    res: CampaignResult = run_campaign(
                        spec,
                        f"campaign-{config}-{r}",
                        workers=args.workers,
                        duration=args.duration,
                        methods=methods,
                        lease=args.lease,
                        poll=args.poll,
                        shared=args.shared,
                        seed=1000 + r,
                        workdir=Path(work),
                    )
                good = (
                    res.violations == 0
                    and not res.unexpected_exits
                    and res.finished == args.workers - res.kills
                )
                ok = ok and good
                print(f"{config} round {r + 1}: {res.summary()} -> {'OK' if good else 'FAIL'}")
                for line in res.details[:20] + res.unexpected_exits[:5] + res.errors[:5]:
                    print("   ", line)
                results.setdefault(config, []).append(
                    {
                        "acquisitions": res.acquisitions,
                        "exclusive": res.exclusive,
                        "shared": res.shared,
                        "protocols": res.methods,
                        "violations": res.violations,
                        "kills": res.kills,
                        "finished": res.finished,
                        "workers": res.workers,
                        "timeouts": res.timeouts,
                        "errors": len(res.errors),
                        "max_wait_s": res.max_wait,
                        "seconds": res.seconds,
                    }
                )
    total = {
        c: {
            "acquisitions": sum(r["acquisitions"] for r in rs),
            "violations": sum(r["violations"] for r in rs),
            "kills": sum(r["kills"] for r in rs),
        }
        for c, rs in results.items()
    }
    print(json.dumps(total, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"rounds": results, "total": total}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

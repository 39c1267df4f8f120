"""Client CPU per small request, LIST cost and import time: s3func next to boto3 and a floor.

Everything runs in one invocation against one local SeaweedFS server (started here through
``s3func.testing``), so the ratios compare like with like. Client CPU is measured with
``time.process_time()`` in this process (the server is another process).

Run::

    python3 -m uv run --group bench python benchmarks/small_requests.py [--requests 200 --rounds 15]

Targets (issue "Foundation", item 11): CPU per small request <= 0.30x boto3 and within 1.15x
of the floor; LIST of 1000 keys <= 0.15x boto3; ``import s3func`` adds <= 15 ms over
``import urllib3``; import + session + first request <= 0.35x boto3's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floor import Floor

from s3func import S3Session
from s3func.testing import seaweedfs

BODY = os.urandom(1024)


def cpu_per_call(
    fn: Callable[[int], object], n: int, rounds: int = 5, *, warmup: bool = True
) -> float:
    """Median client CPU microseconds per call over several rounds."""
    if warmup:
        for i in range(min(50, n)):
            fn(i)
    results = []
    for _ in range(rounds):
        start = time.process_time()
        for i in range(n):
            fn(i)
        results.append((time.process_time() - start) / n * 1e6)
    return statistics.median(results)


def boto3_client(server: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.access_key,
        region_name=server.region,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


def minio_client(server: Any) -> Any:
    try:
        from minio import Minio
    except ImportError:
        return None
    host = server.endpoint_url.split("://", 1)[1]
    return Minio(
        host,
        access_key=server.access_key_id,
        secret_key=server.access_key,
        secure=False,
        region=server.region,
    )


Samples = dict[str, dict[str, list[float]]]  # client -> operation -> per-round values


def small_requests(server: Any, n: int, rounds: int) -> Samples:
    bucket = server.bucket
    ours = S3Session(
        access_key_id=server.access_key_id,
        access_key=server.access_key,
        bucket=bucket,
        endpoint_url=server.endpoint_url,
        region=server.region,
    )
    boto = boto3_client(server)
    floor = Floor(
        server.endpoint_url, server.access_key_id, server.access_key, bucket, server.region
    )
    mini = minio_client(server)
    for i in range(60):
        ours.put_object(f"small/{i}", BODY)
    keys = [f"small/{i % 50}" for i in range(n)]

    clients: dict[str, dict[str, Callable[[int], object]]] = {
        "s3func": {
            "PUT": lambda i: ours.put_object(keys[i], BODY),
            "GET": lambda i: ours.get_object(keys[i]).data,
            "HEAD": lambda i: ours.head_object(keys[i]),
        },
        "boto3": {
            "PUT": lambda i: boto.put_object(Bucket=bucket, Key=keys[i], Body=BODY),
            "GET": lambda i: boto.get_object(Bucket=bucket, Key=keys[i])["Body"].read(),
            "HEAD": lambda i: boto.head_object(Bucket=bucket, Key=keys[i]),
        },
        "floor (urllib3)": {
            "PUT": lambda i: floor.request("PUT", keys[i], body=BODY),
            "GET": lambda i: floor.request("GET", keys[i]).data,
            "HEAD": lambda i: floor.request("HEAD", keys[i]),
        },
    }
    if mini is not None:
        import io

        def minio_get(i: int) -> bytes:
            r = mini.get_object(bucket, keys[i])
            try:
                return bytes(r.read())
            finally:
                r.close()
                r.release_conn()

        clients["minio"] = {
            "PUT": lambda i: mini.put_object(bucket, keys[i], io.BytesIO(BODY), len(BODY)),
            "GET": minio_get,
            "HEAD": lambda i: mini.stat_object(bucket, keys[i]),
        }
    out: Samples = {name: {} for name in clients}
    for op in ("PUT", "GET", "HEAD"):
        # Interleave the clients round by round so that drifting background load (the
        # server settling after writes, other processes) hits them all alike.
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for name in clients:
            cpu_per_call(clients[name][op], 50, rounds=1)  # warm up
        for r in range(rounds):
            order = list(clients)
            order = order[r % len(order):] + order[: r % len(order)]
            for name in order:
                samples[name].append(cpu_per_call(clients[name][op], n, rounds=1, warmup=False))
        for name in clients:
            out[name][op] = samples[name]

    # LIST of 1000 keys (one page)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: ours.put_object(f"list/{i:04d}", b"x"), range(1000)))
    lists: dict[str, Callable[[int], object]] = {
        "s3func": lambda i: [o.key for o in ours.list_objects(prefix="list/")],
        "boto3": lambda i: [
            o["Key"] for o in boto.list_objects_v2(Bucket=bucket, Prefix="list/")["Contents"]
        ],
        "floor (urllib3)": lambda i: floor.list_keys("list/"),
    }
    if mini is not None:
        lists["minio"] = lambda i: [
            o.object_name for o in mini.list_objects(bucket, prefix="list/")
        ]
    list_samples: dict[str, list[float]] = {name: [] for name in lists}
    for fn in lists.values():
        cpu_per_call(fn, 2, rounds=1)
    for _ in range(max(5, rounds // 2)):
        for name, fn in lists.items():
            list_samples[name].append(cpu_per_call(fn, 5, rounds=1, warmup=False) / 1000)
    for name in lists:
        out[name]["LIST1000 (ms)"] = list_samples[name]
    return out


def paired_ratio(ours: list[float], other: list[float]) -> float:
    """Median over rounds of ours/other measured back to back (robust to slow drift)."""
    return statistics.median(a / b for a, b in zip(ours, other, strict=True))


def wall_ms(code: str, runs: int, env: dict[str, str]) -> float:
    """Median wall milliseconds of a fresh interpreter running ``code``."""
    times = []
    subprocess.run([sys.executable, "-c", code], env=env, check=True)  # warm .pyc files
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def import_times(server: Any, runs: int) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    first_ours = textwrap.dedent(f"""
        import s3func
        s = s3func.S3Session(access_key_id={server.access_key_id!r}, access_key={server.access_key!r},
            bucket={server.bucket!r}, endpoint_url={server.endpoint_url!r}, region={server.region!r})
        s.head_object("small/1")
    """)
    first_boto = textwrap.dedent(f"""
        import boto3
        c = boto3.client("s3", endpoint_url={server.endpoint_url!r}, aws_access_key_id={server.access_key_id!r},
            aws_secret_access_key={server.access_key!r}, region_name={server.region!r})
        c.head_object(Bucket={server.bucket!r}, Key="small/1")
    """)
    return {
        "python -c pass": wall_ms("pass", runs, env),
        "import urllib3": wall_ms("import urllib3", runs, env),
        "import s3func": wall_ms("import s3func", runs, env),
        "import s3func; S3Session": wall_ms("import s3func; s3func.S3Session", runs, env),
        "import boto3": wall_ms("import boto3", runs, env),
        "s3func: import + session + HEAD": wall_ms(first_ours, runs, env),
        "boto3: import + client + HEAD": wall_ms(first_boto, runs, env),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per op per round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per op")
    parser.add_argument("--import-runs", type=int, default=15)
    args = parser.parse_args()
    with seaweedfs(bucket="bench-small") as server:
        cpu = small_requests(server, args.requests, args.rounds)
        imports = import_times(server, args.import_runs)

    print("\nClient CPU per request (µs; LIST in ms), 1 KiB bodies, sequential, median of rounds")
    ops = ["PUT", "GET", "HEAD", "LIST1000 (ms)"]
    print(f"{'client':<18}" + "".join(f"{op:>15}" for op in ops))
    for name, row in cpu.items():
        print(f"{name:<18}" + "".join(f"{statistics.median(row[op]):>15.1f}" for op in ops))
    print(
        "\nRatios of s3func to boto3 / to the floor, median of back-to-back rounds"
        " (targets: <= 0.30 / <= 1.15; LIST <= 0.15)"
    )
    for op in ops:
        ours, boto, floor = cpu["s3func"][op], cpu["boto3"][op], cpu["floor (urllib3)"][op]
        print(
            f"  {op:<14} vs boto3 {paired_ratio(ours, boto):5.2f}x"
            f"   vs floor {paired_ratio(ours, floor):5.2f}x"
        )
    print("\nWall time of a fresh interpreter (ms, median)")
    for name, ms in imports.items():
        print(f"  {name:<36} {ms:7.1f}")
    extra = imports["import s3func"] - imports["import urllib3"]
    first = imports["s3func: import + session + HEAD"] / imports["boto3: import + client + HEAD"]
    print(f"\n`import s3func` minus `import urllib3`: {extra:+.1f} ms (target <= 15 ms)")
    print(f"import + first request, s3func / boto3: {first:.2f}x (target <= 0.35x)")


if __name__ == "__main__":
    main()

"""Directory sync: S3Object next to a boto3 thread loop, s5cmd and rclone.

2000 files of 4 KiB (by default) are uploaded to and downloaded from one local server, then
synced again with nothing changed. The server is SeaweedFS (started through
``s3func.testing``), or with ``--server rclone`` an ``rclone serve s3`` over /dev/shm, the
setup of ``PERF-BASELINE.md`` (needs ``rclone`` on PATH). Files and server data live on
/dev/shm by default (``--workdir``). Each round runs every client once,
interleaved, so a busy machine slows them alike; the table shows the median over the rounds.
The server shares the machine's CPUs with the clients: on a small machine it is often the
bottleneck, which caps every client's files/s, so the CPU per file is printed as well.

* **s3func**: ``S3Object(prefix, local_path=dir).upload()`` / ``.download()`` (``max_workers=8``:
  small files go 8 at a time over 8 connections, multiplexed on the calling thread).
* **boto3**: ``put_object`` / ``get_object`` on a ThreadPoolExecutor of 8, writing each file
  (no change detection: it is the "loop" users write by hand).
* **floor**: a minimal SigV4 client on one urllib3 pool (``_floor.py``), 8 threads, doing
  the file work a sync cannot skip (read and PUT; GET, temporary file, remote mtime, rename)
  and nothing else (no listing of the destination, no hashes, no state, no error handling):
  what any Python client can reach on this machine and server.
* **s5cmd** / **rclone**, when on ``PATH`` (``--numworkers 8`` / ``--transfers 8``).

"no change" rows re-run the same sync at once (the state file cannot trust mtimes that young,
so every file is hashed) and after ``--settle`` seconds (the common case: size + mtime match
the state file, nothing is read).

Run::

    uv run --group bench python benchmarks/sync_bench.py
    uv run --group bench python benchmarks/sync_bench.py --server rclone

Targets (S3Object issue, item 8): upload and download files/s >= 3x boto3's; a no-change
re-sync of 2000 files <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floor import Floor
from _rclone import RcloneServer

from s3func.sync import S3Object
from s3func.testing import seaweedfs


def make_files(root: Path, count: int, size: int) -> list[str]:
    rels = []
    for i in range(count):
        rel = f"d{i % 20:02d}/f{i:05d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        rels.append(rel)
    return rels


class Timer:
    """Wall time and this process's CPU (user + system, including waited-for children)."""

    def __enter__(self) -> Timer:
        self._wall = time.perf_counter()
        self._cpu = os.times()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        now = os.times()
        self.cpu = sum(now[:4]) - sum(self._cpu[:4])


FLOOR = "floor (urllib3, 8 thr.)"


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
            max_pool_connections=16,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def boto3_upload(client: Any, bucket: str, src: Path, rels: list[str], prefix: str) -> None:
    def one(rel: str) -> None:
        client.put_object(Bucket=bucket, Key=prefix + rel, Body=(src / rel).read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, rels))


def boto3_download(client: Any, bucket: str, dst: Path, prefix: str) -> None:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))

    def one(key: str) -> None:
        path = dst / key[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, keys))


def floor_upload(floor: Floor, src: Path, rels: list[str], prefix: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda rel: floor.request("PUT", prefix + rel, body=(src / rel).read_bytes()),
                      rels))


def floor_download(floor: Floor, dst: Path, prefix: str) -> None:
    """What a download must do at least: GET, temp file, remote mtime, rename into place."""

    def one(key: str) -> None:
        resp = floor.request("GET", key)
        mtime = parsedate_to_datetime(resp.headers["last-modified"]).timestamp()
        path = dst / key[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, resp.data)
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)
        os.replace(tmp, path)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, floor.list_all(prefix)))


def tool_env(server: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=server.access_key_id,
        AWS_SECRET_ACCESS_KEY=server.access_key,
        AWS_REGION=server.region,
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=server.access_key_id,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=server.access_key,
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint_url,
        RCLONE_CONFIG_BENCH_REGION=server.region,
    )
    return env


def run(cmd: list[str], env: dict[str, str]) -> None:
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def s5cmd_cmds(server: Any, bucket: str) -> dict[str, Callable[[Path, str], list[str]]]:
    base = ["s5cmd", "--endpoint-url", server.endpoint_url, "--numworkers", "8"]
    return {
        "upload": lambda d, p: [*base, "cp", f"{d}/", f"s3://{bucket}/{p}"],
        "download": lambda d, p: [*base, "cp", f"s3://{bucket}/{p}*", f"{d}/"],
        "resync": lambda d, p: [*base, "sync", f"s3://{bucket}/{p}*", f"{d}/"],
    }


def rclone_cmds(bucket: str) -> dict[str, Callable[[Path, str], list[str]]]:
    base = ["rclone", "--transfers", "8", "--checkers", "8", "--s3-no-check-bucket"]
    return {
        "upload": lambda d, p: [*base, "copy", str(d), f"bench:{bucket}/{p}"],
        "download": lambda d, p: [*base, "copy", f"bench:{bucket}/{p}", str(d)],
        "resync": lambda d, p: [*base, "sync", f"bench:{bucket}/{p}", str(d)],
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="s3func-syncbench-", dir=args.workdir))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def record(client: str, what: str, timer: Timer) -> None:
        results.setdefault(client, {}).setdefault(what, []).append((timer.wall, timer.cpu))

    src = work / "src"
    rels = make_files(src, args.files, args.size)
    server_cm: Any = (
        RcloneServer(args.workdir)
        if args.server == "rclone"
        else seaweedfs(data_dir=work / "seaweedfs")
    )
    with server_cm as server:
        bucket = server.new_bucket("syncbench")
        session = server.session(bucket)
        client = boto3_client(server)
        floor = Floor(server.endpoint_url, server.access_key_id, server.access_key, bucket,
                      server.region)
        env = tool_env(server)
        tools: dict[str, dict[str, Callable[[Path, str], list[str]]]] = {}
        if shutil.which("s5cmd") and not args.no_tools:
            tools["s5cmd"] = s5cmd_cmds(server, bucket)
        if shutil.which("rclone") and not args.no_tools:
            tools["rclone"] = rclone_cmds(bucket)

        for rnd in range(args.rounds):
            # boto3
            with Timer() as t:
                boto3_upload(client, bucket, src, rels, f"boto3-{rnd}/")
            record("boto3 (8 threads)", "upload", t)
            with Timer() as t:
                boto3_download(client, bucket, work / f"boto3-dl-{rnd}", f"boto3-{rnd}/")
            record("boto3 (8 threads)", "download", t)

            # the floor: a minimal signed urllib3 client doing the same file work, no checks
            with Timer() as t:
                floor_upload(floor, src, rels, f"floor-{rnd}/")
            record(FLOOR, "upload", t)
            with Timer() as t:
                floor_download(floor, work / f"floor-dl-{rnd}", f"floor-{rnd}/")
            record(FLOOR, "download", t)

            # s3func
            up = S3Object(f"s3://{bucket}/s3func-{rnd}/", local_path=src, session=session)
            with Timer() as t:
                up.upload()
            assert up.last_result is not None and len(up.last_result.transferred) == args.files
            record("s3func S3Object", "upload", t)
            with Timer() as t:
                up.upload()
            assert up.last_result is not None and not up.last_result.transferred
            record("s3func S3Object", "upload, no change (at once)", t)
            down = S3Object(
                f"s3://{bucket}/s3func-{rnd}/", local_path=work / f"s3func-dl-{rnd}",
                session=session,
            )
            with Timer() as t:
                down.download()
            assert len(down.last_result.transferred) == args.files  # type: ignore[union-attr]
            record("s3func S3Object", "download", t)
            with Timer() as t:
                down.download()
            assert not down.last_result.transferred  # type: ignore[union-attr]
            record("s3func S3Object", "download, no change (at once)", t)
            if args.settle > 0:
                time.sleep(args.settle)
                with Timer() as t:
                    up.upload()
                record("s3func S3Object", "upload, no change (settled)", t)
                with Timer() as t:
                    down.download()
                record("s3func S3Object", "download, no change (settled)", t)

            for name, cmds in tools.items():
                prefix = f"{name}-{rnd}/"
                dst = work / f"{name}-dl-{rnd}"
                dst.mkdir()
                with Timer() as t:
                    run(cmds["upload"](src, prefix), env)
                record(name, "upload", t)
                with Timer() as t:
                    run(cmds["download"](dst, prefix), env)
                record(name, "download", t)
                with Timer() as t:
                    run(cmds["resync"](dst, prefix), env)
                record(name, "download, no change (at once)", t)
        session.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        client: {
            what: {
                "wall_s": statistics.median(w for w, _ in runs),
                "files_per_s": args.files / statistics.median(w for w, _ in runs),
                "cpu_us_per_file": statistics.median(c for _, c in runs) / args.files * 1e6,
                "runs": len(runs),
            }
            for what, runs in by_what.items()
        }
        for client, by_what in results.items()
    }


def report(res: dict[str, Any], files: int) -> int:
    print(f"\n{'client':20} {'operation':32} {'wall s':>8} {'files/s':>9} {'CPU us/file':>12}")
    for client, by_what in res.items():
        for what, r in by_what.items():
            print(
                f"{client:20} {what:32} {r['wall_s']:8.3f} {r['files_per_s']:9.0f} "
                f"{r['cpu_us_per_file']:12.0f}"
            )
    ours, boto = res["s3func S3Object"], res["boto3 (8 threads)"]
    failures = 0
    print()
    for what in ("upload", "download"):
        ratio = ours[what]["files_per_s"] / boto[what]["files_per_s"]
        cpu_ratio = boto[what]["cpu_us_per_file"] / ours[what]["cpu_us_per_file"]
        ok = ratio >= 3.0
        failures += not ok
        print(
            f"{what:8}: {ratio:4.2f}x boto3's files/s (target >= 3x: {'PASS' if ok else 'FAIL'});"
            f" {cpu_ratio:4.2f}x less client CPU per file"
        )
    if FLOOR in res:
        for what in ("upload", "download"):
            ratio = res[FLOOR][what]["files_per_s"] / boto[what]["files_per_s"]
            print(f"{what:8}: the floor (a minimal client) reaches {ratio:4.2f}x boto3's files/s")
    for what in [w for w in ours if "no change" in w]:
        wall = ours[what]["wall_s"]
        ok = wall <= 1.0
        failures += not ok
        print(f"{what:32}: {wall:5.3f} s for {files} files (target <= 1 s: "
              f"{'PASS' if ok else 'FAIL'})")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.5,
                        help="seconds to wait before the settled no-change re-sync (0: skip)")
    parser.add_argument("--no-tools", action="store_true", help="skip s5cmd and rclone")
    parser.add_argument("--server", choices=["seaweedfs", "rclone"], default="seaweedfs",
                        help="the S3 server: SeaweedFS (the test server) or `rclone serve s3` "
                        "(the server of PERF-BASELINE.md)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--workdir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the files and the server's data go (default /dev/shm: creating files on "
        "a disk-backed /tmp can cost more CPU than the request itself)",
    )
    args = parser.parse_args()
    res = bench(args)
    print(f"server: {args.server}; {args.files} files of {args.size} bytes; "
          f"median of {args.rounds} rounds; load average now {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    failures = report(res, args.files)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

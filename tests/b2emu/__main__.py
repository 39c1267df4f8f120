"""Run the B2 emulator standalone: ``python -m tests.b2emu --port 0``.

Prints one JSON line (url, key_id, key, account_id, bucket_name, bucket_id, pid) on stdout once
the server accepts connections, then serves until SIGTERM or SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType

from .server import B2Emulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.b2emu", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 (default) picks a free port")
    p.add_argument("--bucket-name", default="b2emu-bucket")
    p.add_argument("--key-id", default=None)
    p.add_argument("--key", default=None)
    p.add_argument("--account-id", default=None)
    p.add_argument("--min-part-size", type=int, default=5_000_000)
    p.add_argument("--recommended-part-size", type=int, default=None)
    p.add_argument("--max-copy-size", type=int, default=5_000_000_000)
    p.add_argument("--token-lifetime", type=float, default=86_400.0)
    p.add_argument("--upload-token-lifetime", type=float, default=86_400.0)
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    return p.parse_args(argv)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emulator = B2Emulator(
        host=args.host,
        port=args.port,
        bucket_name=args.bucket_name,
        key_id=args.key_id,
        key=args.key,
        account_id=args.account_id,
        min_part_size=args.min_part_size,
        recommended_part_size=args.recommended_part_size,
        max_copy_size=args.max_copy_size,
        token_lifetime=args.token_lifetime,
        upload_token_lifetime=args.upload_token_lifetime,
    )
    emulator.start()
    try:
        sys.stdout.write(json.dumps({**emulator.info(), "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            if args.parent_pid is not None and not _alive(args.parent_pid):
                break
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

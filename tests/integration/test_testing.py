"""s3func.testing: the SeaweedFS launcher and its pytest fixtures."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import s3func.testing as testing
from proxy import FaultProxy
from s3func import AuthenticationError, ConfigurationError, S3Session
from s3func.testing import SeaweedFS, SeaweedFSError, find_weed, seaweedfs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fake_weed(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-weed"
    script.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


# -- the shared server --------------------------------------------------------------------


def test_server_is_up_on_loopback(seaweedfs: SeaweedFS) -> None:
    assert seaweedfs.running and _alive(seaweedfs.pid)
    assert seaweedfs.endpoint_url == f"http://127.0.0.1:{seaweedfs.ports['s3.port']}"
    assert len(set(seaweedfs.ports.values())) == len(seaweedfs.ports) == 10
    assert seaweedfs.region == "us-east-1"
    assert seaweedfs.data_dir.is_dir()
    assert seaweedfs.log_path.parent == seaweedfs.data_dir and seaweedfs.log_path.is_file()
    identity = seaweedfs.data_dir / "s3-identity.json"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert seaweedfs.startup_seconds > 0
    assert seaweedfs.access_key not in repr(seaweedfs)
    assert seaweedfs.access_key not in seaweedfs.log_tail(max_lines=10_000)


def test_default_bucket_exists(seaweedfs: SeaweedFS) -> None:
    session = seaweedfs.session()
    try:
        assert session.bucket == seaweedfs.bucket == "s3func-test"
        assert seaweedfs.bucket in session.list_buckets()
    finally:
        session.close()


def test_wrong_secret_is_refused(seaweedfs: SeaweedFS) -> None:
    session = seaweedfs.session(access_key="not-the-secret")
    try:
        with pytest.raises(AuthenticationError) as info:
            session.list_buckets()
        assert info.value.code == "SignatureDoesNotMatch"
        with pytest.raises(AuthenticationError):
            session.put_object("k", b"v")
    finally:
        session.close()


def test_unknown_key_id_is_refused(seaweedfs: SeaweedFS) -> None:
    session = seaweedfs.session(access_key_id="AKNOSUCHKEY000000000")
    try:
        with pytest.raises(AuthenticationError) as info:
            session.list_buckets()
        assert info.value.code == "InvalidAccessKeyId"
    finally:
        session.close()


def test_new_bucket(seaweedfs: SeaweedFS) -> None:
    first = seaweedfs.new_bucket()
    second = seaweedfs.new_bucket("other-prefix")
    assert first != second
    assert first.startswith("test-") and second.startswith("other-prefix-")
    session = seaweedfs.session(second)
    try:
        assert {first, second} <= set(session.list_buckets())
        session.put_object("k", b"in the second bucket")
        assert session.get_object("k").data == b"in the second bucket"
        assert [o.key for o in session.list_objects().iter_objects()] == ["k"]
    finally:
        session.close()


@pytest.mark.parametrize("prefix", ["", "UPPER", "under_score", "-lead", "x" * 41])
def test_new_bucket_rejects_bad_prefix(seaweedfs: SeaweedFS, prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        seaweedfs.new_bucket(prefix)


def test_session_kwargs_override(seaweedfs: SeaweedFS) -> None:
    session = seaweedfs.session(read_timeout=7.0, region="us-east-1")
    try:
        assert isinstance(session, S3Session)
        assert session.endpoint_url == seaweedfs.endpoint_url
    finally:
        session.close()


def test_env_points_at_server(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    with S3Session(bucket=seaweedfs.bucket) as session:
        assert seaweedfs.bucket in session.list_buckets()


def test_public_fixture(
    s3func_session: S3Session, s3func_server: SeaweedFS, seaweedfs: SeaweedFS
) -> None:
    assert s3func_server is seaweedfs  # one server for the whole run
    assert s3func_session.bucket != s3func_server.bucket
    assert list(s3func_session.list_objects().iter_objects()) == []
    s3func_session.put_object("a", b"1")
    assert s3func_session.get_object("a").data == b"1"


def test_s3_session_fixture_is_fresh(s3_session: S3Session, seaweedfs: SeaweedFS) -> None:
    assert s3_session.bucket != seaweedfs.bucket
    assert list(s3_session.list_objects().iter_objects()) == []


# -- own servers: lifecycle ---------------------------------------------------------------


def test_stop_ends_the_process_and_removes_the_data_dir() -> None:
    with seaweedfs(bucket="lifecycle") as server:
        pid, data_dir = server.pid, server.data_dir
        assert _alive(pid)
        session = server.session()
        session.put_object("k", b"v")
        session.close()
    assert not server.running
    assert not _alive(pid)
    assert not data_dir.exists()
    server.stop()  # idempotent


def test_caller_data_dir_is_kept_and_reusable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with seaweedfs(data_dir=data_dir, bucket="kept") as server:
        first_key = server.access_key_id
        session = server.session()
        session.put_object("survivor", b"still here")
        session.close()
    assert not _alive(server.pid)
    assert (data_dir / "weed.log").is_file()
    with seaweedfs(data_dir=data_dir, bucket="kept") as again:
        assert again.access_key_id != first_key  # fresh keys per run
        session = again.session()
        try:
            assert session.get_object("survivor").data == b"still here"
        finally:
            session.close()


def test_atexit_stops_a_forgotten_server(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from s3func.testing import SeaweedFS
        server = SeaweedFS()
        print(server.pid, server.data_dir, flush=True)
        raise KeyboardInterrupt  # an interrupted run that never calls stop()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    pid_text, data_dir = proc.stdout.split()
    assert not _alive(int(pid_text))
    assert not Path(data_dir).exists()


def test_atexit_skips_servers_of_another_process(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[str] = []

    class Fake:
        def __init__(self, name: str, owner: int) -> None:
            self.name, self._owner_pid = name, owner

        def stop(self) -> None:
            stopped.append(self.name)

    fakes = {Fake("ours", os.getpid()), Fake("parents", os.getpid() + 1)}
    monkeypatch.setattr(testing, "_live", fakes)
    testing._stop_all()
    assert stopped == ["ours"]


def test_port_taken_before_weed_binds_it_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    real_free_ports = testing._free_ports
    picks: list[list[int]] = []

    def racing_free_ports(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not picks:  # first pick: someone else grabs the master port meanwhile
            ports[testing._PORTS.index("master.port")] = held.getsockname()[1]
        picks.append(ports)
        return ports

    monkeypatch.setattr(testing, "_free_ports", racing_free_ports)
    try:
        with seaweedfs() as server:
            assert len(picks) == 2
            assert server.ports["master.port"] != held.getsockname()[1]
            session = server.session()
            assert server.bucket in session.list_buckets()
            session.close()
    finally:
        held.close()


# -- failures -----------------------------------------------------------------------------


def test_startup_failure_reports_the_log_tail(tmp_path: Path) -> None:
    weed = _fake_weed(tmp_path, 'echo "fatal: something went badly wrong" >&2\nexit 3\n')
    data_dir = tmp_path / "d"
    with pytest.raises(SeaweedFSError) as info:
        SeaweedFS(weed_binary=weed, data_dir=data_dir)
    message = str(info.value)
    assert "exited with code 3" in message
    assert "fatal: something went badly wrong" in message
    assert data_dir.is_dir()  # the caller's directory is kept, with the log
    assert "badly wrong" in (data_dir / "weed.log").read_text()


def test_startup_timeout_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    weed = _fake_weed(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60\n")
    with pytest.raises(SeaweedFSError) as info:
        SeaweedFS(weed_binary=weed, startup_timeout=0.5)
    assert "did not answer" in str(info.value)
    assert not _alive(int(pid_file.read_text()))


def test_missing_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3FUNC_WEED", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ConfigurationError) as info:
        find_weed()
    assert 'pip install "s3func[testing]"' in str(info.value)
    with pytest.raises(ConfigurationError), seaweedfs():
        pass


def test_find_weed_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _fake_weed(tmp_path, "exit 0\n")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    from_env = _fake_weed(env_dir, "exit 0\n")
    monkeypatch.setenv("S3FUNC_WEED", str(from_env))
    assert find_weed(explicit) == explicit
    assert find_weed() == from_env
    monkeypatch.setenv("S3FUNC_WEED", str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError) as info:
        find_weed()
    assert "S3FUNC_WEED" in str(info.value)
    with pytest.raises(ConfigurationError):
        find_weed(tmp_path / "nope")
    monkeypatch.delenv("S3FUNC_WEED")
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        assert find_weed() == beside.absolute()


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError):
        SeaweedFS(bucket="No_Such")
    with pytest.raises(ConfigurationError):
        SeaweedFS(startup_timeout=0)


def test_module_imports_without_s3_loaded() -> None:
    code = "import sys, s3func.testing; print('s3func.s3' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
    assert testing.REGION == "us-east-1"


# -- the suite's proxy fixtures -----------------------------------------------------------


def test_proxied_session_goes_through_the_proxy(
    proxied_s3_session: S3Session, s3_session: S3Session, fault_proxy: FaultProxy
) -> None:
    assert proxied_s3_session.bucket == s3_session.bucket
    assert proxied_s3_session.endpoint_url == fault_proxy.url
    rule = fault_proxy.fail(503, "SlowDown", method="PUT", times=2, retry_after=0)
    proxied_s3_session.put_object("through/proxy", b"payload")
    assert rule.hits == 2
    puts = [r for r in fault_proxy.records if r.method == "PUT"]
    assert [r.status for r in puts] == [503, 503, 200]
    assert puts[-1].path == f"/{s3_session.bucket}/through/proxy"
    assert puts[-1].body_length == len(b"payload")
    assert fault_proxy.forwarded == 1
    # the direct session sees what went through the proxy (signatures survive the proxy)
    assert s3_session.get_object("through/proxy").data == b"payload"


def test_module_works_without_pytest() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pytest"] = None  # make `import pytest` fail
        import s3func.testing as t
        assert "s3func_server" not in t.__all__ and "seaweedfs" in t.__all__
        try:
            t.s3func_server
        except AttributeError as exc:
            print("no fixtures:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "no fixtures:" in out.stdout and "needs pytest" in out.stdout


def test_fixtures_registered_when_imported_before_pytest(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    code = textwrap.dedent(
        f"""
        import sys
        import s3func.testing  # before pytest: fixtures are not defined yet
        assert "pytest" not in sys.modules
        import pytest
        sys.exit(pytest.main(["--fixtures", "-p", "s3func.testing", "-p", "no:cacheprovider",
                              {str(tmp_path)!r}]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "s3func_server" in out.stdout and "s3func_session" in out.stdout

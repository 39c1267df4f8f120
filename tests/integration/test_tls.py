"""HTTPS end to end: a TLS relay (self-signed certificate) in front of the real SeaweedFS.

The transport sends on pooled connections directly, so certificate checks, the TLS
handshake and the mapping of TLS failures to typed errors are checked here on the wire.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3func import ConnectError, RetryPolicy, S3Session

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


class TLSRelay:
    """Accept TLS on a free loopback port and pipe the plain bytes to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()
            return
        self.handshakes += 1
        up = socket.create_connection(self.upstream)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(1 << 16):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(up, tls), daemon=True)
        back.start()
        pump(tls, up)
        back.join()
        tls.close()
        up.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def relay(seaweedfs: Any, certificate: tuple[Path, Path]) -> Iterator[TLSRelay]:
    host, port = seaweedfs.endpoint_url.split("://", 1)[1].rsplit(":", 1)
    r = TLSRelay((host, int(port)), *certificate)
    yield r
    r.close()


def _session(seaweedfs: Any, relay: TLSRelay, **kwargs: Any) -> S3Session:
    return S3Session(
        access_key_id=seaweedfs.access_key_id,
        access_key=seaweedfs.access_key,
        bucket=seaweedfs.bucket,
        endpoint_url=f"https://127.0.0.1:{relay.port}",
        region=seaweedfs.region,
        retry=RetryPolicy(max_attempts=2, base_delay=0.0),
        **kwargs,
    )


def test_https_round_trip_with_a_ca_bundle(
    seaweedfs: Any, relay: TLSRelay, certificate: tuple[Path, Path]
) -> None:
    session = _session(seaweedfs, relay, ca_bundle=str(certificate[0]))
    data = bytes(range(256)) * 5000  # over one TLS record and several socket reads
    session.put_object("tls/obj", data, metadata={"via": "tls"})
    got = session.get_object("tls/obj")
    assert got.data == data and got.metadata == {"via": "tls"}
    assert session.head_object("tls/obj").content_length == len(data)
    assert [o.key for o in session.list_objects(prefix="tls/")] == ["tls/obj"]
    assert relay.handshakes == 1  # one kept-alive TLS connection served every request
    session.delete_object("tls/obj")


def test_untrusted_certificate_is_a_typed_connect_error(
    seaweedfs: Any, relay: TLSRelay
) -> None:
    session = _session(seaweedfs, relay)  # certifi's CAs do not include our certificate
    with pytest.raises(ConnectError) as info:
        session.head_object("tls/none")
    assert "TLS" in str(info.value) and info.value.attempts == 2
    assert not isinstance(info.value, ssl.SSLError)


def test_verify_tls_false_accepts_any_certificate(seaweedfs: Any, relay: TLSRelay) -> None:
    session = _session(seaweedfs, relay, verify_tls=False)
    session.put_object("tls/insecure", b"ok")
    assert session.get_object("tls/insecure").data == b"ok"
    session.delete_object("tls/insecure")


def test_many_small_transfers_over_tls(
    seaweedfs: Any, relay: TLSRelay, certificate: tuple[Path, Path]
) -> None:
    from s3func._transfer import PartReader

    session = _session(seaweedfs, relay, ca_bundle=str(certificate[0]))
    bodies = {f"tls/many/{i}": bytes([i]) * (1000 + 9000 * i) for i in range(12)}
    puts = ((k, (k, PartReader.from_view(memoryview(v)), {}, None)) for k, v in bodies.items())
    sent = dict(session._put_many(puts, concurrency=4))
    assert set(sent) == set(bodies) and not [r for r in sent.values() if isinstance(r, Exception)]
    got = dict(session._get_many(((k, k) for k in bodies), concurrency=4))
    assert {k: r.data for k, r in got.items()} == bodies
    assert relay.handshakes == 4  # four connections in flight, each kept alive
    session.delete_objects(prefix="tls/many/")

    # An untrusted certificate: every transfer ends in a typed error, none raises.
    untrusted = _session(seaweedfs, relay)
    failed = dict(untrusted._get_many(((k, k) for k in bodies), concurrency=4))
    assert all(isinstance(exc, ConnectError) and "TLS" in str(exc) for exc in failed.values())

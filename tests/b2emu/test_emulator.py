"""Tests of the B2 emulator itself, spoken to with plain urllib3 + json (and once with b2sdk)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import urllib3

from .control import EmulatorControl, EmulatorProcess
from .core import b2_encode
from .server import B2Emulator

MIN_PART = 100


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class Raw:
    """Minimal B2 client written against the wire protocol (urllib3 + json)."""

    def __init__(self, url: str, key_id: str, key: str, version: str = "v3") -> None:
        self.url = url
        self.key_id = key_id
        self.key = key
        self.version = version
        self.http = urllib3.PoolManager(maxsize=4, retries=False, timeout=30)
        self.auth: dict[str, Any] = {}
        self.token = ""

    def authorize(self, method: str = "GET") -> dict[str, Any]:
        basic = base64.b64encode(f"{self.key_id}:{self.key}".encode()).decode()
        r = self.http.request(
            method,
            f"{self.url}/b2api/{self.version}/b2_authorize_account",
            headers={"Authorization": f"Basic {basic}"},
        )
        assert r.status == 200, r.data
        self.auth = json.loads(r.data)
        self.token = self.auth["authorizationToken"]
        return self.auth

    @property
    def api_url(self) -> str:
        return str(self.auth["apiInfo"]["storageApi"]["apiUrl"])

    @property
    def download_url(self) -> str:
        return str(self.auth["apiInfo"]["storageApi"]["downloadUrl"])

    def request(
        self, name: str, token: str | None = None, method: str = "POST", **params: Any
    ) -> urllib3.BaseHTTPResponse:
        url = f"{self.api_url}/b2api/{self.version}/{name}"
        headers = {"Authorization": self.token if token is None else token}
        if method == "GET":
            return self.http.request("GET", url, fields=params, headers=headers)
        return self.http.request("POST", url, body=json.dumps(params), headers=headers)

    def call(self, name: str, **params: Any) -> dict[str, Any]:
        r = self.request(name, **params)
        assert r.status == 200, (name, r.status, r.data)
        result: dict[str, Any] = json.loads(r.data)
        return result

    def fail(self, name: str, status: int, code: str, **params: Any) -> dict[str, Any]:
        r = self.request(name, **params)
        return expect_error(r, status, code)

    def upload_url(self, bucket_id: str) -> dict[str, Any]:
        return self.call("b2_get_upload_url", bucketId=bucket_id)

    def upload_raw(
        self,
        target: dict[str, Any],
        name: str,
        data: bytes,
        *,
        sha1_header: str | None = None,
        content_type: str = "application/octet-stream",
        extra: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {
            "Authorization": target["authorizationToken"],
            "X-Bz-File-Name": b2_encode(name),
            "Content-Type": content_type,
            "X-Bz-Content-Sha1": sha1_header or sha1(data),
        }
        headers.update(extra or {})
        return self.http.request(
            "POST", target["uploadUrl"], body=data if body is None else body, headers=headers
        )

    def upload(self, bucket_id: str, name: str, data: bytes, **kw: Any) -> dict[str, Any]:
        r = self.upload_raw(self.upload_url(bucket_id), name, data, **kw)
        assert r.status == 200, r.data
        result: dict[str, Any] = json.loads(r.data)
        return result

    def download(
        self,
        bucket_name: str,
        name: str,
        *,
        token: str | None = None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> urllib3.BaseHTTPResponse:
        h = dict(headers or {})
        if token is None:
            h["Authorization"] = self.token
        elif token:
            h["Authorization"] = token
        url = f"{self.download_url}/file/{bucket_name}/{b2_encode(name)}{query}"
        return self.http.request(method, url, headers=h)


def expect_error(r: urllib3.BaseHTTPResponse, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, (r.status, r.data)
    body: dict[str, Any] = json.loads(r.data)
    assert body["status"] == status, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    return body


@pytest.fixture
def emu() -> Iterator[B2Emulator]:
    with B2Emulator(min_part_size=MIN_PART) as e:
        yield e
        assert e.stats()["internal_errors"] == []


@pytest.fixture
def b2(emu: B2Emulator) -> Raw:
    client = Raw(emu.url, emu.key_id, emu.key)
    client.authorize()
    return client


# --------------------------------------------------------------------------------------------
# authorize


def test_authorize_v3_shape_get_and_post(emu: B2Emulator) -> None:
    client = Raw(emu.url, emu.key_id, emu.key)
    for method in ("GET", "POST"):
        auth = client.authorize(method)
        assert auth["accountId"] == emu.account_id != emu.key_id
        assert auth["applicationKeyExpirationTimestamp"] is None
        storage = auth["apiInfo"]["storageApi"]
        assert storage["apiUrl"] == storage["downloadUrl"] == emu.url
        assert storage["absoluteMinimumPartSize"] == MIN_PART
        assert storage["recommendedPartSize"] >= MIN_PART
        assert storage["bucketId"] is None and storage["bucketName"] is None
        assert storage["namePrefix"] is None
        assert {"listBuckets", "writeFiles", "readFiles", "deleteFiles", "shareFiles"} <= set(
            storage["capabilities"]
        )
        assert "allowed" not in storage
    assert emu.authorize_count == 2
    # The account id works in place of the master key id.
    Raw(emu.url, emu.account_id, emu.key).authorize()


def test_authorize_defaults_match_b2() -> None:
    with B2Emulator() as e:
        client = Raw(e.url, e.key_id, e.key)
        storage = client.authorize()["apiInfo"]["storageApi"]
        assert storage["absoluteMinimumPartSize"] == 5_000_000
        assert storage["recommendedPartSize"] == 100_000_000


def test_authorize_v4_allowed_shape(emu: B2Emulator) -> None:
    key_id, key = emu.create_restricted_key(emu.bucket_name, name_prefix="p/")
    client = Raw(emu.url, key_id, key, version="v4")
    storage = client.authorize()["apiInfo"]["storageApi"]
    assert storage["allowed"]["buckets"] == [{"id": emu.bucket_id, "name": emu.bucket_name}]
    assert storage["allowed"]["namePrefix"] == "p/"
    assert "writeFiles" in storage["allowed"]["capabilities"]


def test_authorize_bad_credentials(emu: B2Emulator) -> None:
    http = urllib3.PoolManager(retries=False)
    url = f"{emu.url}/b2api/v3/b2_authorize_account"
    for creds in (f"{emu.key_id}:wrong", f"nobody:{emu.key}"):
        basic = base64.b64encode(creds.encode()).decode()
        r = http.request("GET", url, headers={"Authorization": f"Basic {basic}"})
        expect_error(r, 401, "unauthorized")
    expect_error(http.request("GET", url), 401, "bad_auth_token")


def test_multi_bucket_key_needs_v4(emu: B2Emulator) -> None:
    emu.create_bucket("second-bucket")
    key_id, key = emu.create_key(bucket_names=[emu.bucket_name, "second-bucket"])
    client = Raw(emu.url, key_id, key)
    basic = base64.b64encode(f"{key_id}:{key}".encode()).decode()
    r = client.http.request(
        "GET",
        f"{emu.url}/b2api/v3/b2_authorize_account",
        headers={"Authorization": f"Basic {basic}"},
    )
    expect_error(r, 401, "unsupported")
    client.version = "v4"
    assert len(client.authorize()["apiInfo"]["storageApi"]["allowed"]["buckets"]) == 2


# --------------------------------------------------------------------------------------------
# tokens and capabilities


def test_bad_missing_and_expired_tokens(emu: B2Emulator, b2: Raw) -> None:
    params = {"accountId": emu.account_id}
    expect_error(b2.request("b2_list_buckets", token="nope", **params), 401, "bad_auth_token")
    expect_error(b2.request("b2_list_buckets", token="", **params), 401, "missing_auth_token")
    assert emu.expire_account_tokens() == 1
    expect_error(b2.request("b2_list_buckets", **params), 401, "expired_auth_token")
    b2.authorize()
    b2.call("b2_list_buckets", **params)


def test_token_lifetime_is_configurable(emu: B2Emulator, b2: Raw) -> None:
    emu.configure(token_lifetime=0.2)
    b2.authorize()
    b2.call("b2_list_buckets", accountId=emu.account_id)
    time.sleep(0.3)
    b2.fail("b2_list_buckets", 401, "expired_auth_token", accountId=emu.account_id)


def test_expired_upload_token(emu: B2Emulator, b2: Raw) -> None:
    target = b2.upload_url(emu.bucket_id)
    assert emu.expire_upload_tokens() == 1
    r = b2.upload_raw(target, "x", b"data")
    expect_error(r, 401, "expired_auth_token")
    # A fresh upload URL works.
    b2.upload(emu.bucket_id, "x", b"data")


def test_upload_token_is_bound_to_its_url(emu: B2Emulator, b2: Raw) -> None:
    emu.create_bucket("other-bucket")
    other_id = b2.call("b2_list_buckets", accountId=emu.account_id, bucketName="other-bucket")[
        "buckets"
    ][0]["bucketId"]
    a = b2.upload_url(emu.bucket_id)
    b = b2.upload_url(other_id)
    mixed = {"uploadUrl": a["uploadUrl"], "authorizationToken": b["authorizationToken"]}
    expect_error(b2.upload_raw(mixed, "x", b"data"), 401, "bad_auth_token")
    account = {"uploadUrl": a["uploadUrl"], "authorizationToken": b2.token}
    expect_error(b2.upload_raw(account, "x", b"data"), 401, "bad_auth_token")


def test_list_buckets_filters_and_accountid(emu: B2Emulator, b2: Raw) -> None:
    emu.create_bucket("public-bucket", "allPublic")
    names = [
        b["bucketName"] for b in b2.call("b2_list_buckets", accountId=emu.account_id)["buckets"]
    ]
    assert names == sorted([emu.bucket_name, "public-bucket"])
    one = b2.call("b2_list_buckets", accountId=emu.account_id, bucketName="public-bucket")
    assert [b["bucketType"] for b in one["buckets"]] == ["allPublic"]
    none = b2.call("b2_list_buckets", accountId=emu.account_id, bucketName="no-such-bucket")
    assert none["buckets"] == []
    # The key id is not the account id: a client must store accountId from the response.
    b2.fail("b2_list_buckets", 401, "unauthorized", accountId=emu.key_id)


def test_restricted_key_works_on_its_bucket(emu: B2Emulator) -> None:
    emu.create_bucket("other-bucket")
    key_id, key = emu.create_restricted_key(emu.bucket_name)
    r = Raw(emu.url, key_id, key)
    storage = r.authorize()["apiInfo"]["storageApi"]
    assert storage["bucketId"] == emu.bucket_id
    assert storage["bucketName"] == emu.bucket_name
    acct = emu.account_id
    # list_buckets needs the bucket named; other buckets are refused.
    assert (
        len(r.call("b2_list_buckets", accountId=acct, bucketName=emu.bucket_name)["buckets"]) == 1
    )
    assert len(r.call("b2_list_buckets", accountId=acct, bucketId=emu.bucket_id)["buckets"]) == 1
    r.fail("b2_list_buckets", 401, "unauthorized", accountId=acct)
    r.fail("b2_list_buckets", 401, "unauthorized", accountId=acct, bucketName="other-bucket")
    # Upload, list, download, hide, delete and large files all work (the simulator refused them).
    up = r.upload(emu.bucket_id, "a.txt", b"hello")
    assert r.download(emu.bucket_name, "a.txt").data == b"hello"
    files = r.call("b2_list_file_names", bucketId=emu.bucket_id)["files"]
    assert [f["fileName"] for f in files] == ["a.txt"]
    r.call("b2_hide_file", bucketId=emu.bucket_id, fileName="a.txt")
    r.call("b2_delete_file_version", fileName="a.txt", fileId=up["fileId"])
    large = r.call(
        "b2_start_large_file", bucketId=emu.bucket_id, fileName="big", contentType="b2/x-auto"
    )
    part_url = r.call("b2_get_upload_part_url", fileId=large["fileId"])
    data = b"z" * 150
    resp = r.http.request(
        "POST",
        part_url["uploadUrl"],
        body=data,
        headers={
            "Authorization": part_url["authorizationToken"],
            "X-Bz-Part-Number": "1",
            "X-Bz-Content-Sha1": sha1(data),
        },
    )
    assert resp.status == 200, resp.data
    r.call("b2_list_parts", fileId=large["fileId"])
    r.call("b2_list_unfinished_large_files", bucketId=emu.bucket_id)
    done = r.call("b2_finish_large_file", fileId=large["fileId"], partSha1Array=[sha1(data)])
    assert done["action"] == "upload"
    # The other bucket is out of bounds.
    other = [
        b for b in emu.core.sim.bucket_id_to_bucket.values() if b.bucket_name == "other-bucket"
    ]
    r.fail("b2_get_upload_url", 401, "unauthorized", bucketId=other[0].bucket_id)
    r.fail("b2_list_file_names", 401, "unauthorized", bucketId=other[0].bucket_id)


def test_restricted_key_capabilities_and_prefix(emu: B2Emulator, b2: Raw) -> None:
    key_id, key = emu.create_restricted_key(
        emu.bucket_name, capabilities=["listBuckets", "listFiles", "readFiles"], name_prefix="ok/"
    )
    ro = Raw(emu.url, key_id, key)
    ro.authorize()
    assert ro.auth["apiInfo"]["storageApi"]["namePrefix"] == "ok/"
    b2.upload(emu.bucket_id, "ok/a", b"1")
    b2.upload(emu.bucket_id, "no/b", b"2")
    ro.fail("b2_get_upload_url", 401, "unauthorized", bucketId=emu.bucket_id)
    assert ro.download(emu.bucket_name, "ok/a").data == b"1"
    expect_error(ro.download(emu.bucket_name, "no/b"), 401, "unauthorized")
    ro.call("b2_list_file_names", bucketId=emu.bucket_id, prefix="ok/")
    ro.fail("b2_list_file_names", 401, "unauthorized", bucketId=emu.bucket_id)
    ro.fail("b2_list_file_names", 401, "unauthorized", bucketId=emu.bucket_id, prefix="no/")
    # Prefix-restricted writer.
    key_id, key = emu.create_restricted_key(emu.bucket_name, name_prefix="ok/")
    w = Raw(emu.url, key_id, key)
    w.authorize()
    w.upload(emu.bucket_id, "ok/c", b"3")
    r = w.upload_raw(w.upload_url(emu.bucket_id), "elsewhere", b"4")
    expect_error(r, 401, "unauthorized")
    w.fail(
        "b2_get_download_authorization",
        401,
        "unauthorized",
        bucketId=emu.bucket_id,
        fileNamePrefix="",
        validDurationInSeconds=60,
    )


# --------------------------------------------------------------------------------------------
# upload and download


def test_upload_and_download_round_trip(emu: B2Emulator, b2: Raw) -> None:
    name = "dir/caf\u00e9 + more &?#%.txt"
    data = b"hello world"
    before = int(time.time() * 1000)
    up = b2.upload(
        emu.bucket_id,
        name,
        data,
        content_type="b2/x-auto",
        extra={
            "X-Bz-Info-src_last_modified_millis": "1234",
            "X-Bz-Info-Note": quote("h\u00e9 there"),
            "X-Bz-Info-b2-content-disposition": quote("attachment; filename=x.txt"),
        },
    )
    after = int(time.time() * 1000)
    assert up["fileName"] == name
    assert up["action"] == "upload"
    assert up["contentLength"] == len(data)
    assert up["contentSha1"] == sha1(data)
    assert up["contentMd5"] == hashlib.md5(data).hexdigest()
    assert up["contentType"] == "text/plain"
    assert up["fileInfo"] == {
        "src_last_modified_millis": "1234",
        "note": "h\u00e9 there",
        "b2-content-disposition": "attachment; filename=x.txt",
    }
    assert before <= up["uploadTimestamp"] <= after
    r = b2.download(emu.bucket_name, name)
    assert r.status == 200
    assert r.data == data
    h = r.headers
    assert h["Content-Length"] == str(len(data))
    assert h["Content-Type"] == "text/plain"
    assert h["x-bz-file-id"] == up["fileId"]
    assert h["x-bz-file-name"] == b2_encode(name)
    assert h["x-bz-content-sha1"] == sha1(data)
    assert h["x-bz-upload-timestamp"] == str(up["uploadTimestamp"])
    assert h["x-bz-info-src_last_modified_millis"] == "1234"
    assert h["x-bz-info-note"] == quote("h\u00e9 there")
    assert h["Content-Disposition"] == "attachment; filename=x.txt"
    # By id, GET and POST.
    url = f"{b2.download_url}/b2api/v3/b2_download_file_by_id?fileId={up['fileId']}"
    r = b2.http.request("GET", url, headers={"Authorization": b2.token})
    assert r.status == 200 and r.data == data
    r = b2.http.request(
        "POST",
        f"{b2.download_url}/b2api/v3/b2_download_file_by_id",
        body=json.dumps({"fileId": up["fileId"]}),
        headers={"Authorization": b2.token},
    )
    assert r.status == 200 and r.data == data
    # Query overrides.
    r = b2.download(emu.bucket_name, name, query="?b2ContentType=application/x-test")
    assert r.headers["Content-Type"] == "application/x-test"


def test_file_name_decoding_plus_is_space(emu: B2Emulator, b2: Raw) -> None:
    target = b2.upload_url(emu.bucket_id)
    r = b2.http.request(
        "POST",
        target["uploadUrl"],
        body=b"x",
        headers={
            "Authorization": target["authorizationToken"],
            "X-Bz-File-Name": "a+b%2Bc%20d",
            "Content-Type": "text/plain",
            "X-Bz-Content-Sha1": sha1(b"x"),
        },
    )
    assert json.loads(r.data)["fileName"] == "a b+c d"
    raw = b2.http.request(
        "GET", f"{emu.url}/file/{emu.bucket_name}/a+b%2Bc%20d", headers={"Authorization": b2.token}
    )
    assert raw.status == 200 and raw.data == b"x"


def test_upload_checks(emu: B2Emulator, b2: Raw) -> None:
    target = b2.upload_url(emu.bucket_id)
    data = b"0123456789"
    # Wrong SHA-1; the upload URL stays usable afterwards (serially).
    expect_error(b2.upload_raw(target, "x", data, sha1_header="0" * 40), 400, "bad_request")
    # hex_digits_at_end: the last 40 bytes are the SHA-1 of what precedes them.
    r = b2.upload_raw(
        target, "x", data, sha1_header="hex_digits_at_end", body=data + sha1(data).encode()
    )
    assert r.status == 200, r.data
    up = json.loads(r.data)
    assert up["contentLength"] == len(data) and up["contentSha1"] == sha1(data)
    bad_tail = data + b"f" * 40
    r = b2.upload_raw(target, "x", data, sha1_header="hex_digits_at_end", body=bad_tail)
    expect_error(r, 400, "bad_request")
    # do_not_verify: stored as unverified.
    r = b2.upload_raw(target, "x", data, sha1_header="do_not_verify")
    assert json.loads(r.data)["contentSha1"] == "unverified:" + sha1(data)
    # Missing headers.
    for missing in ("X-Bz-File-Name", "X-Bz-Content-Sha1", "Content-Type"):
        headers = {
            "Authorization": target["authorizationToken"],
            "X-Bz-File-Name": "x",
            "Content-Type": "text/plain",
            "X-Bz-Content-Sha1": sha1(data),
        }
        del headers[missing]
        r = b2.http.request("POST", target["uploadUrl"], body=data, headers=headers)
        expect_error(r, 400, "bad_request")
    # Bad names, too many infos, raw UTF-8 in a header.
    for name in ("", "a\x01b", "x" * 1025):
        r = b2.upload_raw(target, name, data)
        expect_error(r, 400, "bad_request")
    infos = {f"X-Bz-Info-k{i}": "v" for i in range(11)}
    expect_error(b2.upload_raw(target, "x", data, extra=infos), 400, "bad_request")
    r = b2.http.request(
        "POST",
        target["uploadUrl"],
        body=data,
        headers={
            "Authorization": target["authorizationToken"],
            "X-Bz-File-Name": "caf\u00e9".encode().decode("latin-1"),
            "Content-Type": "text/plain",
            "X-Bz-Content-Sha1": sha1(data),
        },
    )
    expect_error(r, 400, "bad_request")
    assert emu.call_count("b2_upload_file") == 12


def test_upload_needs_content_length(emu: B2Emulator, b2: Raw) -> None:
    target = b2.upload_url(emu.bucket_id)
    r = b2.http.request(
        "POST",
        target["uploadUrl"],
        body=iter([b"abc"]),
        chunked=True,
        headers={
            "Authorization": target["authorizationToken"],
            "X-Bz-File-Name": "x",
            "Content-Type": "text/plain",
            "X-Bz-Content-Sha1": sha1(b"abc"),
        },
    )
    expect_error(r, 400, "bad_request")


def test_ranges_and_head(emu: B2Emulator, b2: Raw) -> None:
    data = bytes(range(100))
    b2.upload(emu.bucket_id, "r.bin", data)
    cases = {
        "bytes=10-19": (10, 19),
        "bytes=90-": (90, 99),
        "bytes=-5": (95, 99),
        "bytes=95-500": (95, 99),
        "bytes=0-99": (0, 99),
    }
    for spec, (a, z) in cases.items():
        r = b2.download(emu.bucket_name, "r.bin", headers={"Range": spec})
        assert r.status == 206, spec
        assert r.data == data[a : z + 1]
        assert r.headers["Content-Range"] == f"bytes {a}-{z}/100"
        assert r.headers["Content-Length"] == str(z - a + 1)
    r = b2.download(emu.bucket_name, "r.bin", headers={"Range": "bytes=100-"})
    expect_error(r, 416, "range_not_satisfiable")
    assert r.headers["Content-Range"] == "bytes */100"
    r = b2.download(emu.bucket_name, "r.bin", headers={"Range": "bytes=5-1"})
    assert r.status == 200 and r.data == data  # invalid syntax is ignored
    # HEAD: same headers, no body.
    r = b2.download(emu.bucket_name, "r.bin", method="HEAD")
    assert r.status == 200 and r.data == b""
    assert r.headers["Content-Length"] == "100"
    assert r.headers["x-bz-content-sha1"] == sha1(data)
    # HEAD errors have no body.
    r = b2.download(emu.bucket_name, "missing", method="HEAD")
    assert r.status == 404 and r.data == b""
    r = b2.download(emu.bucket_name, "r.bin", method="HEAD", token="bad")
    assert r.status == 401 and r.data == b""


def test_download_errors(emu: B2Emulator, b2: Raw) -> None:
    expect_error(b2.download(emu.bucket_name, "missing"), 404, "not_found")
    expect_error(b2.download("no-such-bucket", "x"), 404, "not_found")
    url = f"{b2.download_url}/b2api/v3/b2_download_file_by_id?fileId="
    fake = emu.core.id_sequence.next_id()
    r = b2.http.request("GET", url + fake, headers={"Authorization": b2.token})
    expect_error(r, 404, "not_found")
    r = b2.http.request("GET", url + "garbage", headers={"Authorization": b2.token})
    expect_error(r, 400, "bad_request")


def test_download_authorization_is_checked(emu: B2Emulator, b2: Raw) -> None:
    up = b2.upload(emu.bucket_id, "pub/a", b"A")
    b2.upload(emu.bucket_id, "priv/b", b"B")
    expect_error(b2.download(emu.bucket_name, "pub/a", token=""), 401, "missing_auth_token")
    expect_error(b2.download(emu.bucket_name, "pub/a", token="junk"), 401, "bad_auth_token")
    # Account token in the query string.
    r = b2.download(emu.bucket_name, "pub/a", token="", query=f"?Authorization={b2.token}")
    assert r.status == 200 and r.data == b"A"
    auth = b2.call(
        "b2_get_download_authorization",
        bucketId=emu.bucket_id,
        fileNamePrefix="pub/",
        validDurationInSeconds=60,
    )
    assert auth["fileNamePrefix"] == "pub/" and auth["bucketId"] == emu.bucket_id
    dl = auth["authorizationToken"]
    assert b2.download(emu.bucket_name, "pub/a", token=dl).data == b"A"
    r = b2.download(emu.bucket_name, "pub/a", token="", query=f"?Authorization={dl}")
    assert r.data == b"A"
    expect_error(b2.download(emu.bucket_name, "priv/b", token=dl), 401, "unauthorized")
    url = f"{b2.download_url}/b2api/v3/b2_download_file_by_id?fileId={up['fileId']}"
    expect_error(b2.http.request("GET", url, headers={"Authorization": dl}), 401, "unauthorized")
    b2.fail(
        "b2_get_download_authorization",
        400,
        "bad_request",
        bucketId=emu.bucket_id,
        fileNamePrefix="",
        validDurationInSeconds=604_801,
    )
    assert emu.expire_download_authorizations() == 1
    expect_error(b2.download(emu.bucket_name, "pub/a", token=dl), 401, "expired_auth_token")
    # Public buckets need no authorization.
    emu.create_bucket("open-bucket", "allPublic")
    emu.put_file("x", b"public", bucket_name="open-bucket")
    assert b2.download("open-bucket", "x", token="").data == b"public"


# --------------------------------------------------------------------------------------------
# listing


def names_of(result: dict[str, Any]) -> list[str]:
    return [f["fileName"] for f in result["files"]]


def test_list_prefix_without_start_name(emu: B2Emulator, b2: Raw) -> None:
    for name in ("a", "b/1", "b/2", "c"):
        emu.put_file(name, b"x")
    r = b2.call("b2_list_file_names", bucketId=emu.bucket_id, prefix="b/")
    assert names_of(r) == ["b/1", "b/2"]
    assert r["nextFileName"] is None
    r = b2.call("b2_list_file_versions", bucketId=emu.bucket_id, prefix="c")
    assert names_of(r) == ["c"]


def test_list_order_is_utf8_bytes(emu: B2Emulator, b2: Raw) -> None:
    names = ["\U0001f600", "\uffff", "Z", "a", "\u00e9", "a/b", "a b"]
    for name in names:
        emu.put_file(name, b"x")
    got = names_of(b2.call("b2_list_file_names", bucketId=emu.bucket_id))
    assert got == sorted(names, key=lambda n: n.encode("utf-8"))
    # UTF-16 order would put the emoji (a surrogate pair) before U+FFFF.
    assert got.index("\uffff") < got.index("\U0001f600")


def test_list_pagination_and_limits(emu: B2Emulator, b2: Raw) -> None:
    names = [f"f{i:03d}" for i in range(250)]
    for name in names:
        emu.put_file(name, b"x")
    r = b2.call("b2_list_file_names", bucketId=emu.bucket_id)
    assert names_of(r) == names[:100]  # default maxFileCount is 100
    assert r["nextFileName"] == names[100]
    seen: list[str] = []
    start = None
    while True:
        r = b2.call(
            "b2_list_file_names", bucketId=emu.bucket_id, startFileName=start, maxFileCount=7
        )
        seen += names_of(r)
        start = r["nextFileName"]
        if start is None:
            break
    assert seen == names
    r = b2.call("b2_list_file_names", bucketId=emu.bucket_id, maxFileCount=10000)
    assert len(r["files"]) == 250 and r["nextFileName"] is None
    for bad in (10001, -1):
        b2.fail("b2_list_file_names", 400, "out_of_range", bucketId=emu.bucket_id, maxFileCount=bad)
    # GET with query parameters works too.
    r = b2.request(
        "b2_list_file_names", method="GET", bucketId=emu.bucket_id, maxFileCount="3", prefix="f1"
    )
    assert names_of(json.loads(r.data)) == ["f100", "f101", "f102"]


def test_list_delimiter_folders(emu: B2Emulator, b2: Raw) -> None:
    for name in ("top.txt", "a/1", "a/2", "a/sub/3", "b/4", "c/hidden", "d"):
        emu.put_file(name, b"x")
    b2.call("b2_hide_file", bucketId=emu.bucket_id, fileName="c/hidden")
    r = b2.call("b2_list_file_names", bucketId=emu.bucket_id, delimiter="/")
    assert names_of(r) == ["a/", "b/", "d", "top.txt"]  # c/ holds only a hidden file
    assert [f["action"] for f in r["files"]] == ["folder", "folder", "upload", "upload"]
    assert r["files"][0]["fileId"] is None
    r = b2.call("b2_list_file_names", bucketId=emu.bucket_id, delimiter="/", prefix="a/")
    assert names_of(r) == ["a/1", "a/2", "a/sub/"]
    # Pagination over folders: one entry per page.
    seen: list[str] = []
    start = None
    while True:
        r = b2.call(
            "b2_list_file_names",
            bucketId=emu.bucket_id,
            delimiter="/",
            maxFileCount=1,
            startFileName=start,
        )
        seen += names_of(r)
        start = r["nextFileName"]
        if start is None:
            break
    assert seen == ["a/", "b/", "d", "top.txt"]
    # Versions listing shows c/ (it has versions).
    r = b2.call("b2_list_file_versions", bucketId=emu.bucket_id, delimiter="/")
    assert names_of(r) == ["a/", "b/", "c/", "d", "top.txt"]


def test_versions_hide_and_delete(emu: B2Emulator, b2: Raw) -> None:
    v1 = b2.upload(emu.bucket_id, "doc", b"one")
    v2 = b2.upload(emu.bucket_id, "doc", b"two")
    assert v1["fileId"] != v2["fileId"]
    assert b2.download(emu.bucket_name, "doc").data == b"two"
    hide = b2.call("b2_hide_file", bucketId=emu.bucket_id, fileName="doc")
    assert hide["action"] == "hide"
    b2.fail("b2_hide_file", 400, "already_hidden", bucketId=emu.bucket_id, fileName="doc")
    b2.fail("b2_hide_file", 400, "no_such_file", bucketId=emu.bucket_id, fileName="nothing")
    expect_error(b2.download(emu.bucket_name, "doc"), 404, "not_found")
    assert names_of(b2.call("b2_list_file_names", bucketId=emu.bucket_id)) == []
    r = b2.call("b2_list_file_versions", bucketId=emu.bucket_id)
    assert [f["action"] for f in r["files"]] == ["hide", "upload", "upload"]
    assert [f["fileId"] for f in r["files"]] == [hide["fileId"], v2["fileId"], v1["fileId"]]
    # Pagination with nextFileId.
    r = b2.call("b2_list_file_versions", bucketId=emu.bucket_id, maxFileCount=2)
    assert r["nextFileName"] == "doc" and r["nextFileId"] == v1["fileId"]
    r = b2.call(
        "b2_list_file_versions",
        bucketId=emu.bucket_id,
        startFileName=r["nextFileName"],
        startFileId=r["nextFileId"],
    )
    assert [f["fileId"] for f in r["files"]] == [v1["fileId"]]
    assert r["nextFileName"] is None and r["nextFileId"] is None
    # Delete the hide marker: the newest upload is visible again.
    b2.call("b2_delete_file_version", fileName="doc", fileId=hide["fileId"])
    assert b2.download(emu.bucket_name, "doc").data == b"two"
    b2.fail(
        "b2_delete_file_version", 400, "file_not_present", fileName="doc", fileId=hide["fileId"]
    )
    b2.fail(
        "b2_delete_file_version", 400, "file_not_present", fileName="other", fileId=v1["fileId"]
    )
    b2.call("b2_delete_file_version", fileName="doc", fileId=v2["fileId"])
    assert b2.download(emu.bucket_name, "doc").data == b"one"


def test_get_file_info(emu: B2Emulator, b2: Raw) -> None:
    up = b2.upload(emu.bucket_id, "info", b"abc", extra={"X-Bz-Info-color": "blue"})
    info = b2.call("b2_get_file_info", fileId=up["fileId"])
    assert info == up
    b2.fail("b2_get_file_info", 404, "not_found", fileId=emu.core.id_sequence.next_id())
    b2.fail("b2_get_file_info", 400, "bad_request", fileId="nonsense")


def test_ids_unique_and_upload_url_limit_lifted(emu: B2Emulator, b2: Raw) -> None:
    ids = set()
    for i in range(260):  # the simulator allowed 200 upload URLs per bucket
        target = b2.upload_url(emu.bucket_id)
        r = b2.upload_raw(target, f"n{i % 7}", b"%d" % i)
        assert r.status == 200, r.data
        ids.add(json.loads(r.data)["fileId"])
    assert len(ids) == 260
    stamps = [f["uploadTimestamp"] for f in emu.list_versions()]
    assert all(abs(s - time.time() * 1000) < 60_000 for s in stamps)


# --------------------------------------------------------------------------------------------
# large files and copies


def upload_part(
    b2: Raw, target: dict[str, Any], number: int, data: bytes
) -> urllib3.BaseHTTPResponse:
    return b2.http.request(
        "POST",
        target["uploadUrl"],
        body=data,
        headers={
            "Authorization": target["authorizationToken"],
            "X-Bz-Part-Number": str(number),
            "X-Bz-Content-Sha1": sha1(data),
        },
    )


def test_large_file_lifecycle(emu: B2Emulator, b2: Raw) -> None:
    start = b2.call(
        "b2_start_large_file",
        bucketId=emu.bucket_id,
        fileName="big.bin",
        contentType="application/octet-stream",
        fileInfo={"large_file_sha1": "x" * 40},
    )
    assert start["action"] == "start" and start["contentSha1"] == "none"
    fid = start["fileId"]
    # Unfinished large files are not visible by name.
    assert names_of(b2.call("b2_list_file_names", bucketId=emu.bucket_id)) == []
    parts = [b"a" * 120, b"b" * 130, b"c" * 10]
    target = b2.call("b2_get_upload_part_url", fileId=fid)
    for n in (3, 1):  # any order
        assert upload_part(b2, target, n, parts[n - 1]).status == 200
    b2.fail(
        "b2_finish_large_file",
        400,
        "missing_part",
        fileId=fid,
        partSha1Array=[sha1(p) for p in parts],
    )
    r = upload_part(b2, target, 2, parts[1])
    assert r.status == 200
    assert json.loads(r.data)["contentLength"] == 130
    expect_error(upload_part(b2, target, 10001, b"x"), 400, "bad_request")
    listed = b2.call("b2_list_parts", fileId=fid, maxPartCount=2)
    assert [p["partNumber"] for p in listed["parts"]] == [1, 2]
    assert listed["nextPartNumber"] == 3
    unfinished = b2.call("b2_list_unfinished_large_files", bucketId=emu.bucket_id)
    assert [f["fileId"] for f in unfinished["files"]] == [fid]
    bad = [sha1(parts[0]), sha1(b"wrong"), sha1(parts[2])]
    b2.fail("b2_finish_large_file", 400, "part_sha1_mismatch", fileId=fid, partSha1Array=bad)
    done = b2.call("b2_finish_large_file", fileId=fid, partSha1Array=[sha1(p) for p in parts])
    assert done["action"] == "upload" and done["contentSha1"] == "none"
    assert done["contentLength"] == 260 and done["fileId"] == fid
    r = b2.download(emu.bucket_name, "big.bin")
    assert r.data == b"".join(parts)
    assert r.headers["x-bz-content-sha1"] == "none"
    assert r.headers["x-bz-info-large_file_sha1"] == "x" * 40
    b2.fail("b2_finish_large_file", 400, "bad_request", fileId=fid, partSha1Array=[])
    assert b2.call("b2_list_unfinished_large_files", bucketId=emu.bucket_id)["files"] == []


def test_large_file_part_size_and_cancel(emu: B2Emulator, b2: Raw) -> None:
    fid = b2.call(
        "b2_start_large_file", bucketId=emu.bucket_id, fileName="f", contentType="text/plain"
    )["fileId"]
    target = b2.call("b2_get_upload_part_url", fileId=fid)
    small = [b"a" * 50, b"b" * 200]
    for n, p in enumerate(small, 1):
        assert upload_part(b2, target, n, p).status == 200
    b2.fail(
        "b2_finish_large_file",
        400,
        "bad_request",
        fileId=fid,
        partSha1Array=[sha1(p) for p in small],
    )
    cancelled = b2.call("b2_cancel_large_file", fileId=fid)
    assert cancelled["fileId"] == fid and cancelled["fileName"] == "f"
    b2.fail("b2_cancel_large_file", 400, "bad_request", fileId=fid)
    expect_error(upload_part(b2, target, 1, b"x"), 400, "bad_request")
    # The part size minimum is a setting.
    emu.configure(min_part_size=10)
    assert (
        Raw(emu.url, emu.key_id, emu.key).authorize()["apiInfo"]["storageApi"][
            "absoluteMinimumPartSize"
        ]
        == 10
    )


def test_copy_file_and_copy_part(emu: B2Emulator, b2: Raw) -> None:
    src = b2.upload(
        emu.bucket_id, "src", b"0123456789", content_type="text/x-src", extra={"X-Bz-Info-a": "1"}
    )
    c = b2.call("b2_copy_file", sourceFileId=src["fileId"], fileName="copy")
    assert c["action"] == "copy" and c["contentType"] == "text/x-src"
    assert c["fileInfo"] == {"a": "1"} and c["contentSha1"] == src["contentSha1"]
    assert b2.download(emu.bucket_name, "copy").data == b"0123456789"
    c = b2.call(
        "b2_copy_file",
        sourceFileId=src["fileId"],
        fileName="part",
        range="bytes=2-5",
        metadataDirective="REPLACE",
        contentType="text/plain",
        fileInfo={},
    )
    assert c["fileInfo"] == {} and c["contentLength"] == 4
    assert b2.download(emu.bucket_name, "part").data == b"2345"
    b2.fail(
        "b2_copy_file",
        400,
        "bad_request",
        sourceFileId=src["fileId"],
        fileName="x",
        contentType="text/plain",
    )
    b2.fail(
        "b2_copy_file",
        400,
        "bad_request",
        sourceFileId=src["fileId"],
        fileName="x",
        metadataDirective="REPLACE",
    )
    # Across buckets.
    emu.create_bucket("dest-bucket")
    dest_id = emu.core.sim.bucket_name_to_bucket["dest-bucket"].bucket_id
    c = b2.call(
        "b2_copy_file", sourceFileId=src["fileId"], fileName="moved", destinationBucketId=dest_id
    )
    assert c["bucketId"] == dest_id
    assert b2.call("b2_get_file_info", fileId=c["fileId"])["bucketId"] == dest_id
    assert b2.download("dest-bucket", "moved").data == b"0123456789"
    # Size limit (configurable, 5 GB by default).
    emu.configure(max_copy_size=5)
    body = b2.fail(
        "b2_copy_file", 400, "source_too_large", sourceFileId=src["fileId"], fileName="y"
    )
    assert re.match(r"^Copy source too big: (\d+)$", body["message"])
    emu.configure(max_copy_size=5_000_000_000)
    # copy_part assembles a large file from ranges of existing files.
    big = b2.upload(emu.bucket_id, "big-src", b"x" * 150 + b"y" * 150)
    fid = b2.call(
        "b2_start_large_file",
        bucketId=emu.bucket_id,
        fileName="assembled",
        contentType="text/plain",
    )["fileId"]
    p1 = b2.call(
        "b2_copy_part",
        sourceFileId=big["fileId"],
        largeFileId=fid,
        partNumber=1,
        range="bytes=0-149",
    )
    p2 = b2.call("b2_copy_part", sourceFileId=big["fileId"], largeFileId=fid, partNumber=2)
    assert p1["contentLength"] == 150 and p2["contentLength"] == 300
    b2.call(
        "b2_finish_large_file", fileId=fid, partSha1Array=[p1["contentSha1"], p2["contentSha1"]]
    )
    assert b2.download(emu.bucket_name, "assembled").data == b"x" * 150 + b"x" * 150 + b"y" * 150


# --------------------------------------------------------------------------------------------
# concurrency, keep-alive, failure injection, controls


def test_concurrent_use_of_upload_token(emu: B2Emulator, b2: Raw) -> None:
    target = b2.upload_url(emu.bucket_id)
    token = target["authorizationToken"]
    path = target["uploadUrl"][len(emu.url) :]
    data = b"q" * 100_000
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    conn.putrequest("POST", path)
    for name, value in {
        "Authorization": token,
        "X-Bz-File-Name": "slow",
        "Content-Type": "text/plain",
        "X-Bz-Content-Sha1": sha1(data),
        "Content-Length": str(len(data)),
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(data[:1000])
    deadline = time.monotonic() + 5
    while not emu.core.upload_tokens[token].in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert not emu.upload_token_concurrent_use
    r = b2.upload_raw(target, "fast", b"abc")
    body = expect_error(r, 400, "auth_token_limit")
    match = re.match(r"^more than one upload using auth token (?P<token>[^)]+)$", body["message"])
    assert match and match.group("token") == token
    conn.send(data[1000:])
    first = conn.getresponse()
    assert first.status == 200
    first.read()
    conn.close()
    assert emu.upload_token_concurrent_use
    assert emu.stats()["auth_token_limit_errors"] == 1
    # Serial reuse of the same token is fine.
    assert b2.upload_raw(target, "again", b"abc").status == 200


def test_parallel_uploads_with_own_tokens(emu: B2Emulator) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            client = Raw(emu.url, emu.key_id, emu.key)
            client.authorize()
            target = client.upload_url(emu.bucket_id)
            for i in range(25):
                r = client.upload_raw(target, f"w{n}/f{i}", b"%d-%d" % (n, i))
                assert r.status == 200, r.data
                client.call("b2_list_file_names", bucketId=emu.bucket_id, prefix=f"w{n}/")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not emu.upload_token_concurrent_use
    assert len(emu.list_versions()) == 200


def test_keep_alive_including_after_errors(emu: B2Emulator, b2: Raw) -> None:
    pool = urllib3.HTTPConnectionPool("127.0.0.1", emu.port, maxsize=1, block=True, retries=False)
    target = b2.upload_url(emu.bucket_id)
    path = target["uploadUrl"][len(emu.url) :]
    for i in range(20):
        token = "bad" if i % 2 else target["authorizationToken"]
        r = pool.request(
            "POST",
            path,
            body=b"z" * 5000,
            headers={
                "Authorization": token,
                "X-Bz-File-Name": f"k{i}",
                "Content-Type": "text/plain",
                "X-Bz-Content-Sha1": sha1(b"z" * 5000),
            },
        )
        assert r.status == (401 if i % 2 else 200)
    assert pool.num_connections == 1
    with emu._server.connections_lock:  # type: ignore[union-attr]
        assert len(emu._server.connections) >= 1  # type: ignore[union-attr]


def test_inject_failures(emu: B2Emulator, b2: Raw) -> None:
    emu.inject_failure("b2_upload_file", 2)
    target = b2.upload_url(emu.bucket_id)
    for _ in range(2):
        expect_error(b2.upload_raw(target, "x", b"1"), 503, "service_unavailable")
    assert b2.upload_raw(target, "x", b"1").status == 200
    emu.inject_failure("b2_list_file_names", status=429, retry_after=3)
    r = b2.request("b2_list_file_names", bucketId=emu.bucket_id)
    expect_error(r, 429, "too_many_requests")
    assert r.headers["Retry-After"] == "3"
    emu.inject_failure("download", status=500)
    expect_error(b2.download(emu.bucket_name, "x"), 500, "internal_error")
    emu.inject_failure("*", status=408)
    expect_error(b2.request("b2_list_buckets", accountId=emu.account_id), 408, "request_timeout")
    emu.inject_failure("b2_authorize_account", status=503, message="no tomes available")
    basic = base64.b64encode(f"{emu.key_id}:{emu.key}".encode()).decode()
    r = b2.http.request(
        "GET",
        f"{emu.url}/b2api/v3/b2_authorize_account",
        headers={"Authorization": f"Basic {basic}"},
    )
    assert expect_error(r, 503, "service_unavailable")["message"] == "no tomes available"
    emu.inject_failure("download", status=503, code="custom_code")
    r = b2.download(emu.bucket_name, "x", method="HEAD")
    assert r.status == 503 and r.data == b""
    assert emu.pending_failures() == []
    emu.inject_failure("b2_hide_file", 5)
    emu.clear_failures()
    assert emu.pending_failures() == []
    assert emu.stats()["injected_failures"] == 7
    with pytest.raises(ValueError):
        emu.inject_failure("b2_no_such_call")


def test_inject_drop_truncate_delay(emu: B2Emulator, b2: Raw) -> None:
    emu.put_file("blob", b"x" * 10_000)
    emu.inject_failure("download", mode="drop")
    with pytest.raises(urllib3.exceptions.HTTPError):
        b2.download(emu.bucket_name, "blob")
    emu.inject_failure("download", mode="truncate")
    with pytest.raises(urllib3.exceptions.HTTPError):
        b2.download(emu.bucket_name, "blob")
    emu.inject_failure("b2_get_upload_url", mode="drop")
    with pytest.raises(urllib3.exceptions.HTTPError):
        b2.upload_url(emu.bucket_id)
    emu.inject_failure("b2_list_buckets", mode="delay", delay=0.3)
    t0 = time.monotonic()
    b2.call("b2_list_buckets", accountId=emu.account_id)
    assert time.monotonic() - t0 >= 0.3
    assert b2.download(emu.bucket_name, "blob").data == b"x" * 10_000


def test_counters_and_reset(emu: B2Emulator, b2: Raw) -> None:
    b2.upload(emu.bucket_id, "a", b"1")
    b2.call("b2_list_file_names", bucketId=emu.bucket_id)
    b2.download(emu.bucket_name, "a")
    stats = emu.stats()
    assert stats["calls"] == {
        "b2_authorize_account": 1,
        "b2_get_upload_url": 1,
        "b2_upload_file": 1,
        "b2_list_file_names": 1,
        "b2_download_file_by_name": 1,
    }
    assert stats["authorize_count"] == 1
    old_token = b2.token
    bucket_id = emu.bucket_id
    emu.reset()
    assert emu.stats()["calls"] == {}
    assert emu.bucket_id == bucket_id
    b2.fail("b2_list_buckets", 401, "bad_auth_token", accountId=emu.account_id)
    assert b2.token == old_token
    b2.authorize()
    assert names_of(b2.call("b2_list_file_names", bucketId=emu.bucket_id)) == []
    emu.reset_stats()
    assert emu.authorize_count == 0


def test_http_controls(emu: B2Emulator, b2: Raw) -> None:
    control = EmulatorControl(emu.url)
    info = control.info()
    assert info["url"] == emu.url and info["key_id"] == emu.key_id
    assert info["bucket_name"] == emu.bucket_name and info["bucket_id"] == emu.bucket_id
    control.inject_failure("b2_list_buckets", status=429, retry_after=1)
    assert control.pending_failures()[0]["call"] == "b2_list_buckets"
    r = b2.request("b2_list_buckets", accountId=emu.account_id)
    expect_error(r, 429, "too_many_requests")
    assert control.call_count("b2_list_buckets") == 1
    assert control.authorize_count == 1
    assert control.expire_account_tokens() == 1
    b2.fail("b2_list_buckets", 401, "expired_auth_token", accountId=emu.account_id)
    b2.authorize()
    target = b2.upload_url(emu.bucket_id)
    assert control.expire_upload_tokens() == 1
    expect_error(b2.upload_raw(target, "x", b"1"), 401, "expired_auth_token")
    bucket_id = control.create_bucket("ctl-bucket")
    key_id, key = control.create_restricted_key("ctl-bucket", name_prefix="p/")
    restricted = Raw(emu.url, key_id, key)
    assert restricted.authorize()["apiInfo"]["storageApi"]["bucketId"] == bucket_id
    assert control.configure(min_part_size=1234)["min_part_size"] == 1234
    assert not control.upload_token_concurrent_use
    control.reset()
    assert control.stats()["calls"] == {}


def test_subprocess_emulator_stops_on_sigterm() -> None:
    proc = EmulatorProcess(min_part_size=1000, bucket_name="proc-bucket")
    with proc:
        assert proc.bucket_name == "proc-bucket"
        assert proc.info["pid"] == proc.process.pid  # type: ignore[union-attr]
        client = Raw(proc.url, proc.key_id, proc.key)
        storage = client.authorize()["apiInfo"]["storageApi"]
        assert storage["absoluteMinimumPartSize"] == 1000
        client.upload(proc.bucket_id, "a", b"from another process")
        assert client.download(proc.bucket_name, "a").data == b"from another process"
        proc.control.inject_failure("b2_list_file_names", status=503)
        r = client.request("b2_list_file_names", bucketId=proc.bucket_id)
        expect_error(r, 503, "service_unavailable")
        assert proc.control.stats()["internal_errors"] == []
    # stop() sent SIGTERM; the process exits cleanly with status 0.
    assert proc.stop() is None
    with EmulatorProcess() as p2:
        code = p2.stop()
    assert code == 0


# --------------------------------------------------------------------------------------------
# b2sdk's own high-level API over real HTTP


def test_b2sdk_b2api_end_to_end() -> None:
    from b2sdk.v2 import B2Api, InMemoryAccountInfo

    with B2Emulator(min_part_size=5000, recommended_part_size=10_000) as emu:
        api = B2Api(InMemoryAccountInfo())
        api.authorize_account(emu.url, emu.key_id, emu.key)
        bucket = api.get_bucket_by_name(emu.bucket_name)
        small = b"small file contents"
        fv = bucket.upload_bytes(small, "dir/small.txt", file_info={"color": "red"})
        assert fv.file_name == "dir/small.txt"
        big = bytes(range(256)) * 250  # 64000 bytes: a large file of several parts
        big_fv = bucket.upload_bytes(big, "dir/big.bin")
        assert emu.call_count("b2_start_large_file") == 1
        assert emu.call_count("b2_upload_part") >= 2
        for name, expected in (("dir/small.txt", small), ("dir/big.bin", big)):
            out = io.BytesIO()
            bucket.download_file_by_name(name).save(out)
            assert out.getvalue() == expected
        info = bucket.get_file_info_by_name("dir/small.txt")  # HEAD
        assert info.file_info == {"color": "red"}
        assert info.size == len(small)
        listed = sorted(fv.file_name for fv, _ in bucket.ls("dir", recursive=True))
        assert listed == ["dir/big.bin", "dir/small.txt"]
        copied = bucket.copy(fv.id_, "dir/copy.txt")
        out = io.BytesIO()
        bucket.download_file_by_id(copied.id_).save(out)
        assert out.getvalue() == small
        bucket.hide_file("dir/copy.txt")
        api.delete_file_version(big_fv.id_, "dir/big.bin")
        listed = sorted(fv.file_name for fv, _ in bucket.ls("dir", recursive=True))
        assert listed == ["dir/small.txt"]
        # Token expiry: b2sdk re-authorizes by itself.
        emu.expire_account_tokens()
        assert [b.name for b in api.list_buckets(bucket_name=emu.bucket_name)] == [emu.bucket_name]
        assert emu.authorize_count == 2
        # A key restricted to the bucket.
        key_id, key = emu.create_restricted_key(emu.bucket_name)
        api2 = B2Api(InMemoryAccountInfo())
        api2.authorize_account(emu.url, key_id, key)
        b2 = api2.get_bucket_by_name(emu.bucket_name)
        b2.upload_bytes(b"restricted", "r.txt")
        out = io.BytesIO()
        b2.download_file_by_name("r.txt").save(out)
        assert out.getvalue() == b"restricted"
        assert emu.stats()["internal_errors"] == []


def test_b2sdk_exceptions_map_to_b2_answers() -> None:
    from b2sdk._internal.exception import CopySourceTooBig, FileNotPresent, InvalidAuthToken

    from ._sim import b2sdk_error_answer

    assert b2sdk_error_answer(FileNotPresent(file_id_or_name="x"))[:2] == (404, "not_found")
    assert b2sdk_error_answer(InvalidAuthToken("m", "auth_token_expired"))[:2] == (
        401,
        "expired_auth_token",
    )
    assert b2sdk_error_answer(CopySourceTooBig("m", "bad_request", 7)) == (
        400,
        "source_too_large",
        "Copy source too big: 7",
    )

"""The "floor": a minimal SigV4-signed S3 client on one urllib3 connection pool.

It does only what a request needs (sign, send, read) and nothing a real client must do
(errors, retries, metadata, validation). Client CPU per request of this is the yardstick that
PERF-BASELINE.md calls "floor (urllib3)".
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

import urllib3

EMPTY = hashlib.sha256(b"").hexdigest()


class Floor:
    def __init__(self, endpoint: str, key_id: str, secret: str, bucket: str, region: str) -> None:
        _, rest = endpoint.split("://", 1)
        self.host = rest.rstrip("/")
        hostname, _, port = self.host.partition(":")
        self.pool = urllib3.HTTPConnectionPool(hostname, int(port or 80), maxsize=16, retries=False)
        self.key_id, self.secret, self.bucket, self.region = key_id, secret, bucket, region
        self._keys: dict[str, bytes] = {}

    def _key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            k = hmac.new(("AWS4" + self.secret).encode(), day.encode(), "sha256").digest()
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), "sha256").digest()
            self._keys[day] = key = k
        return key

    def request(
        self, method: str, key: str, query: str = "", body: bytes = b""
    ) -> urllib3.HTTPResponse:
        path = f"/{self.bucket}/{quote(key, safe='/~')}" if key else f"/{self.bucket}/"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY
        creq = (
            f"{method}\n{path}\n{query}\nhost:{self.host}\nx-amz-content-sha256:{payload}\n"
            f"x-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}"
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        sts = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
        sig = hmac.new(self._key(day), sts.encode(), "sha256").hexdigest()
        headers = {
            "host": self.host,
            "x-amz-date": stamp,
            "x-amz-content-sha256": payload,
            "authorization": (
                f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"
            ),
        }
        target = f"{path}?{query}" if query else path
        resp = self.pool.urlopen(method, target, body=body or None, headers=headers)
        assert resp.status < 300, (resp.status, resp.data[:200])
        return resp

    def list_all(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2 pages of 1000, ``start-after``)."""
        keys: list[str] = []
        while True:
            page, truncated = self._page(prefix, keys[-1] if keys else None)
            keys += page
            if not truncated:
                return keys

    def list_keys(self, prefix: str) -> list[str]:
        """One ListObjectsV2 page: keys only, parsed with ElementTree."""
        return self._page(prefix, None)[0]

    def _page(self, prefix: str, after: str | None) -> tuple[list[str], bool]:
        from xml.etree import ElementTree

        query = f"list-type=2&prefix={quote(prefix, safe='')}"
        if after is not None:
            query += f"&start-after={quote(after, safe='')}"
        root = ElementTree.fromstring(self.request("GET", "", query).data)
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        keys = [el.text or "" for el in root.iter(f"{ns}Key")]
        return keys, root.findtext(f"{ns}IsTruncated") == "true"

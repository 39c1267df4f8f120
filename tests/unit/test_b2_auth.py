"""The process-wide B2 token cache and upload-URL pool (no network)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from s3func import ServerError
from s3func._b2_auth import (
    DEFAULT_TOKEN_LIFETIME,
    TOKENS,
    UPLOAD_URLS,
    B2Authorization,
    TokenCache,
    UploadUrlPool,
)
from s3func.b2 import b2_decode, b2_encode

VECTORS = Path(__file__).resolve().parents[1] / "data" / "b2-string-encoding-vectors.json"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def v3_doc(token: str = "tok-1", **storage: Any) -> dict[str, Any]:
    api: dict[str, Any] = {
        "infoType": "storageApi",
        "apiUrl": "https://api002.example.com/",
        "downloadUrl": "https://f002.example.com",
        "s3ApiUrl": "https://s3.example.com",
        "absoluteMinimumPartSize": 5_000_000,
        "recommendedPartSize": 100_000_000,
        "bucketId": None,
        "bucketName": None,
        "capabilities": ["listFiles", "readFiles"],
        "namePrefix": None,
    }
    api.update(storage)
    return {
        "accountId": "acc",
        "authorizationToken": token,
        "applicationKeyExpirationTimestamp": None,
        "apiInfo": {"storageApi": api, "groupsApi": {}},
    }


# -- B2Authorization.from_json ----------------------------------------------------------------


def test_from_json_v3_unrestricted() -> None:
    auth = B2Authorization.from_json(v3_doc(), obtained_at=10.0, lifetime=100.0)
    assert auth.account_id == "acc"
    assert auth.token == "tok-1"
    assert auth.api_url == "https://api002.example.com"  # trailing slash dropped
    assert auth.download_url == "https://f002.example.com"
    assert auth.absolute_minimum_part_size == 5_000_000
    assert auth.recommended_part_size == 100_000_000
    assert auth.buckets is None
    assert auth.capabilities == {"listFiles", "readFiles"}
    assert auth.expires_at == 110.0
    assert auth.allows("readFiles") and not auth.allows("writeFiles")
    assert "tok-1" not in repr(auth)


def test_from_json_v3_restricted() -> None:
    doc = v3_doc(bucketId="b1", bucketName="one", namePrefix="logs/", absoluteMinimumPartSize=1000)
    auth = B2Authorization.from_json(doc, obtained_at=0.0)
    assert auth.buckets == (("b1", "one"),)
    assert auth.name_prefix == "logs/"
    assert auth.absolute_minimum_part_size == 1000
    text = auth.describe_restrictions()
    assert "'one'" in text and "'logs/'" in text and "listFiles" in text


def test_from_json_v4_allowed() -> None:
    doc = v3_doc()
    storage = doc["apiInfo"]["storageApi"]
    for name in ("bucketId", "bucketName", "capabilities", "namePrefix"):
        del storage[name]
    storage["allowed"] = {
        "buckets": [{"id": "b1", "name": "one"}, {"id": "b2", "name": "two"}],
        "capabilities": ["writeFiles"],
        "namePrefix": None,
    }
    auth = B2Authorization.from_json(doc, obtained_at=0.0)
    assert auth.buckets == (("b1", "one"), ("b2", "two"))
    assert auth.capabilities == {"writeFiles"}
    assert auth.name_prefix is None


def test_from_json_v2_flat() -> None:
    doc = {
        "accountId": "acc",
        "authorizationToken": "t",
        "apiUrl": "https://api",
        "downloadUrl": "https://f",
        "absoluteMinimumPartSize": 42,
        "allowed": {"bucketId": "b", "bucketName": "n", "capabilities": ["listFiles"]},
    }
    auth = B2Authorization.from_json(doc, obtained_at=0.0)
    assert auth.buckets == (("b", "n"),)
    assert auth.absolute_minimum_part_size == 42
    assert auth.recommended_part_size == 100_000_000  # default when absent


@pytest.mark.parametrize("doc", [[], {"accountId": "a"}, v3_doc(token="")])
def test_from_json_rejects_incomplete_answers(doc: Any) -> None:
    with pytest.raises(ServerError) as info:
        B2Authorization.from_json(doc, obtained_at=0.0)
    assert info.value.code == "non_json_response"


def test_capabilities_unknown_allows_everything() -> None:
    doc = v3_doc()
    del doc["apiInfo"]["storageApi"]["capabilities"]
    assert B2Authorization.from_json(doc, obtained_at=0.0).allows("anything")


# -- TokenCache -------------------------------------------------------------------------------


def test_cache_key_never_holds_the_secret() -> None:
    cache = TokenCache()
    key = cache.key("https://api.example.com:443", "kid", "very-secret-key")
    assert "very-secret-key" not in repr(key)
    assert key[:2] == ("https://api.example.com:443", "kid")
    # A different secret for the same key id is a different entry (a wrong key never reuses
    # a good token); the same secret maps to the same entry.
    assert cache.key("https://api.example.com:443", "kid", "other") != key
    assert cache.key("https://api.example.com:443", "kid", "very-secret-key") == key
    # Salted per cache: the fingerprint is not a plain hash of the secret.
    assert TokenCache().key("https://api.example.com:443", "kid", "very-secret-key") != key


def test_cache_authorizes_once_and_respects_lifetime() -> None:
    clock = FakeClock()
    cache = TokenCache(lifetime=3600.0, clock=clock)
    key = cache.key("realm", "kid", "secret")
    calls: list[int] = []

    def authorize() -> dict[str, Any]:
        calls.append(1)
        return v3_doc(token=f"tok-{len(calls)}")

    assert cache.get(key, authorize).token == "tok-1"
    clock.now += 3599.0
    assert cache.get(key, authorize).token == "tok-1"
    assert cache.peek(key) is not None
    clock.now += 1.0  # lifetime reached: renewed before B2 would refuse it
    assert cache.peek(key) is None
    assert cache.get(key, authorize).token == "tok-2"
    assert len(calls) == 2
    assert cache.authorizations == 2


def test_default_lifetime_is_under_a_day() -> None:
    assert 0 < DEFAULT_TOKEN_LIFETIME < 24 * 3600


def test_invalidate_only_drops_the_token_that_failed() -> None:
    cache = TokenCache()
    key = cache.key("realm", "kid", "secret")
    tokens = iter(["tok-1", "tok-2", "tok-3"])
    authorize = lambda: v3_doc(token=next(tokens))  # noqa: E731
    first = cache.get(key, authorize)
    assert cache.invalidate(key, first.token)
    second = cache.get(key, authorize)
    assert second.token == "tok-2"
    # A second thread that also saw tok-1 fail must not throw tok-2 away.
    assert not cache.invalidate(key, first.token)
    assert cache.get(key, authorize).token == "tok-2"
    assert cache.invalidate(key)  # unconditional
    assert not cache.invalidate(cache.key("realm", "unknown", "x"))


def test_failures_are_not_cached() -> None:
    cache = TokenCache()
    key = cache.key("realm", "kid", "secret")
    attempts: list[int] = []

    def authorize() -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ServerError("boom")
        return v3_doc()

    with pytest.raises(ServerError):
        cache.get(key, authorize)
    assert cache.get(key, authorize).token == "tok-1"
    assert len(attempts) == 2


def test_many_threads_authorize_once() -> None:
    cache = TokenCache()
    key = cache.key("realm", "kid", "secret")
    release = threading.Event()
    entered = threading.Event()
    calls: list[int] = []

    def authorize() -> dict[str, Any]:
        calls.append(1)
        entered.set()
        assert release.wait(10)
        return v3_doc()

    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        token = cache.get(key, authorize).token
        with lock:
            results.append(token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    assert entered.wait(10)
    release.set()
    for t in threads:
        t.join(10)
    assert results == ["tok-1"] * 8
    assert len(calls) == 1


def test_other_keys_do_not_wait_for_a_slow_authorization() -> None:
    cache = TokenCache()
    slow_key = cache.key("realm", "slow", "s")
    fast_key = cache.key("realm", "fast", "s")
    release = threading.Event()
    entered = threading.Event()

    def slow() -> dict[str, Any]:
        entered.set()
        assert release.wait(10)
        return v3_doc(token="slow")

    t = threading.Thread(target=lambda: cache.get(slow_key, slow))
    t.start()
    assert entered.wait(10)
    assert cache.get(fast_key, lambda: v3_doc(token="fast")).token == "fast"
    release.set()
    t.join(10)
    assert cache.peek(slow_key) is not None


def test_after_fork_keeps_tokens_with_fresh_locks() -> None:
    cache = TokenCache()
    key = cache.key("realm", "kid", "secret")
    cache.get(key, v3_doc)
    cache._after_fork()
    assert cache.peek(key) is not None
    cache.clear()
    assert cache.peek(key) is None


def test_process_wide_singletons() -> None:
    assert isinstance(TOKENS, TokenCache)
    assert isinstance(UPLOAD_URLS, UploadUrlPool)


# -- UploadUrlPool ----------------------------------------------------------------------------


def test_pool_hands_each_url_to_one_upload_at_a_time() -> None:
    pool = UploadUrlPool()
    key = ("realm", "kid", "fp", "file", "bucket")
    assert pool.take(key) is None
    pool.put(key, "https://up/1", "t1")
    assert pool.size(key) == 1
    assert pool.take(key) == ("https://up/1", "t1")
    assert pool.take(key) is None  # taken: nobody else gets it until it is put back
    pool.put(key, "https://up/1", "t1")
    pool.put(key, "https://up/2", "t2")
    taken = {pool.take(key), pool.take(key)}
    assert taken == {("https://up/1", "t1"), ("https://up/2", "t2")}
    assert pool.take(("other",)) is None


def test_pool_drops_stale_urls_and_discards() -> None:
    clock = FakeClock()
    pool = UploadUrlPool(lifetime=100.0, clock=clock)
    key = ("k",)
    pool.put(key, "u-old", "t-old", obtained=clock.now - 150.0)
    pool.put(key, "u-new", "t-new")
    assert pool.take(key) == ("u-new", "t-new")
    assert pool.take(key) is None  # the stale one was thrown away
    pool.put(key, "u", "t")
    clock.now += 100.0
    assert pool.take(key) is None
    pool.put(key, "u", "t")
    pool.discard(key)
    assert pool.size(key) == 0
    pool.put(key, "u", "t")
    pool._after_fork()  # a child never reuses the parent's URLs
    assert pool.take(key) is None
    pool.put(key, "u", "t")
    pool.clear()
    assert pool.size(key) == 0


def test_pool_is_thread_safe() -> None:
    pool = UploadUrlPool()
    key = ("k",)
    for i in range(50):
        pool.put(key, f"u{i}", f"t{i}")
    got: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            slot = pool.take(key)
            if slot is None:
                return
            with lock:
                got.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(got) == sorted((f"u{i}", f"t{i}") for i in range(50))


# -- string encoding (Backblaze's official vectors) -------------------------------------------


def _cases() -> list[dict[str, str]]:
    cases: list[dict[str, str]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
    return cases


@pytest.mark.parametrize("case", _cases(), ids=lambda c: repr(c["string"]))
def test_b2_string_encoding_vectors(case: dict[str, str]) -> None:
    assert b2_encode(case["string"]) in (case["fullyEncoded"], case["minimallyEncoded"])
    assert b2_decode(case["fullyEncoded"]) == case["string"]
    assert b2_decode(case["minimallyEncoded"]) == case["string"]


def test_b2_encoding_of_whole_names() -> None:
    assert b2_encode("a b+c/d%e/é") == "a%20b%2Bc/d%25e/%C3%A9"
    assert b2_decode("a+b%2Bc") == "a b+c"

"""B2 account authorizations shared by the whole process, and the upload-URL pool.

Two process-wide objects live here:

* :data:`TOKENS`, a :class:`TokenCache`: one ``b2_authorize_account`` result per
  (realm, application key id, key fingerprint). Every :class:`~s3func.B2Session` of the process
  that uses the same key shares it, so opening many sessions (or many threads) costs one
  authorization. The secret itself is never stored here: entries are keyed by a salted HMAC of
  it (so a wrong secret never reuses a good token).
* :data:`UPLOAD_URLS`, an :class:`UploadUrlPool`: upload URL/token pairs handed out to one
  upload at a time (B2 rejects concurrent use of an upload token with ``auth_token_limit``).
  A pair goes back into the pool only after a successful upload; after any failure it is
  dropped and the next attempt gets a fresh one.

Both are fork-safe: a child process starts with new locks and an empty upload pool.

This module does no I/O: the caller passes the function that performs the authorization.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ServerError

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "TOKENS",
    "UPLOAD_URLS",
    "UPLOAD_URL_LIFETIME",
    "B2Authorization",
    "CacheKey",
    "TokenCache",
    "UploadUrlPool",
]

#: How long an account token is used before it is renewed proactively (B2 tokens live at most
#: 24 hours; a ``401 expired_auth_token`` before that also renews it).
DEFAULT_TOKEN_LIFETIME = 23 * 3600.0

#: How long a pooled upload URL is reused (B2: valid for 24 hours or until an upload fails).
UPLOAD_URL_LIFETIME = 23 * 3600.0

#: ``(realm, key id, salted fingerprint of the key)``: never the plaintext key.
CacheKey = tuple[str, str, str]


def _bad_answer(what: str) -> ServerError:
    return ServerError(
        f"b2_authorize_account: unexpected answer ({what})",
        provider="b2",
        operation="b2_authorize_account",
        code="non_json_response",
    )


def _text(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) and value else None


def _int(doc: Mapping[str, Any], name: str, default: int) -> int:
    value = doc.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


@dataclass(frozen=True, slots=True)
class B2Authorization:
    """One ``b2_authorize_account`` result, in the v3 or v4 shape.

    Attributes:
        account_id: The account id from the response (not the key id the user typed).
        token: The account authorization token.
        api_url: Base URL of the API calls.
        download_url: Base URL of downloads.
        recommended_part_size: B2's recommended large-file part size in bytes.
        absolute_minimum_part_size: The smallest part B2 accepts (but the last).
        buckets: ``((bucket_id, bucket_name), ...)`` when the key is restricted to buckets,
            else ``None``.
        capabilities: What the key may do (``writeFiles``, ``listFiles``...).
        name_prefix: The file-name prefix the key is restricted to, if any.
        obtained_at: When the token was obtained (cache clock).
        expires_at: When the cache stops handing the token out (cache clock).
    """

    account_id: str
    token: str
    api_url: str
    download_url: str
    recommended_part_size: int = 100_000_000
    absolute_minimum_part_size: int = 5_000_000
    buckets: tuple[tuple[str, str | None], ...] | None = None
    capabilities: frozenset[str] = frozenset()
    name_prefix: str | None = None
    obtained_at: float = 0.0
    expires_at: float = float("inf")
    s3_api_url: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return (
            f"B2Authorization(account_id={self.account_id!r}, api_url={self.api_url!r}, "
            f"buckets={self.buckets!r}, name_prefix={self.name_prefix!r})"
        )

    @classmethod
    def from_json(
        cls, doc: Any, *, obtained_at: float, lifetime: float = DEFAULT_TOKEN_LIFETIME
    ) -> B2Authorization:
        """Build an authorization from the JSON answer of ``b2_authorize_account``.

        Accepts the v3/v4 shape (``apiInfo.storageApi``, with ``allowed`` in v4) and the older
        flat v1/v2 shape.

        Raises:
            ServerError: the answer lacks the token, account id or URLs.
        """
        if not isinstance(doc, Mapping):
            raise _bad_answer("not a JSON object")
        storage: Mapping[str, Any] = doc
        api_info = doc.get("apiInfo")
        if isinstance(api_info, Mapping) and isinstance(api_info.get("storageApi"), Mapping):
            storage = api_info["storageApi"]
        allowed: Mapping[str, Any] = storage
        if isinstance(storage.get("allowed"), Mapping):
            allowed = storage["allowed"]
        elif isinstance(doc.get("allowed"), Mapping):
            allowed = doc["allowed"]
        account_id = _text(doc, "accountId")
        token = _text(doc, "authorizationToken")
        api_url = _text(storage, "apiUrl")
        download_url = _text(storage, "downloadUrl")
        if not (account_id and token and api_url and download_url):
            raise _bad_answer("missing accountId, authorizationToken, apiUrl or downloadUrl")
        buckets: tuple[tuple[str, str | None], ...] | None = None
        listed = allowed.get("buckets")
        if isinstance(listed, list):
            buckets = tuple(
                (str(b["id"]), _text(b, "name"))
                for b in listed
                if isinstance(b, Mapping) and b.get("id")
            )
        elif _text(allowed, "bucketId"):
            buckets = ((str(allowed["bucketId"]), _text(allowed, "bucketName")),)
        caps = allowed.get("capabilities")
        capabilities = frozenset(
            c for c in (caps if isinstance(caps, list) else ()) if isinstance(c, str)
        )
        return cls(
            account_id=account_id,
            token=token,
            api_url=api_url.rstrip("/"),
            download_url=download_url.rstrip("/"),
            recommended_part_size=_int(storage, "recommendedPartSize", 100_000_000),
            absolute_minimum_part_size=_int(storage, "absoluteMinimumPartSize", 5_000_000),
            buckets=buckets,
            capabilities=capabilities,
            name_prefix=_text(allowed, "namePrefix"),
            obtained_at=obtained_at,
            expires_at=obtained_at + lifetime,
            s3_api_url=_text(storage, "s3ApiUrl"),
        )

    def allows(self, capability: str) -> bool:
        """Return whether the key has ``capability`` (True when the answer listed none)."""
        return not self.capabilities or capability in self.capabilities

    def describe_restrictions(self) -> str:
        """Return a short, secret-free description of what the key is limited to."""
        parts = []
        if self.buckets is not None:
            names = ", ".join(repr(name or bucket_id) for bucket_id, name in self.buckets)
            parts.append(f"bucket(s) {names}" if names else "no bucket")
        if self.name_prefix:
            parts.append(f"names starting with {self.name_prefix!r}")
        if self.capabilities:
            parts.append("capabilities " + ", ".join(sorted(self.capabilities)))
        return "; ".join(parts) if parts else "no restrictions"


class _Entry:
    __slots__ = ("auth", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.auth: B2Authorization | None = None


class TokenCache:
    """Thread-safe cache of account authorizations, one per (realm, key id, key fingerprint).

    When many threads ask for the same key at once, one of them authorizes and the others wait
    for its result. Different keys never wait for each other.

    Args:
        lifetime: Seconds a token is handed out before it is renewed (at most B2's 24 hours).
        clock: A monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        lifetime: float = DEFAULT_TOKEN_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[CacheKey, _Entry] = {}
        self._salt = os.urandom(32)
        self.authorizations = 0  # how many times ``authorize`` was called (for diagnostics)

    def key(self, realm: str, key_id: str, secret: str) -> CacheKey:
        """Return the cache key of a credential: the secret enters only as a salted HMAC."""
        digest = hmac.new(self._salt, secret.encode("utf-8"), hashlib.sha256).hexdigest()
        return (realm, key_id, digest)

    def _entry(self, key: CacheKey) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None:
                    entry = _Entry()
                    self._entries[key] = entry
        return entry

    def _fresh(self, auth: B2Authorization | None) -> bool:
        return auth is not None and self._clock() < auth.expires_at

    def get(self, key: CacheKey, authorize: Callable[[], Any]) -> B2Authorization:
        """Return a valid authorization for ``key``, calling ``authorize()`` when needed.

        Args:
            key: From :meth:`key`.
            authorize: Performs ``b2_authorize_account`` and returns its JSON document.

        Raises:
            S3FuncError: whatever ``authorize`` raised (failures are not cached).
        """
        entry = self._entry(key)
        auth = entry.auth
        if auth is not None and self._fresh(auth):
            return auth
        with entry.lock:
            auth = entry.auth
            if auth is not None and self._fresh(auth):
                return auth
            started = self._clock()
            doc = authorize()
            auth = B2Authorization.from_json(doc, obtained_at=started, lifetime=self.lifetime)
            self.authorizations += 1
            entry.auth = auth
            return auth

    def peek(self, key: CacheKey) -> B2Authorization | None:
        """Return the cached authorization for ``key`` if it is still fresh (no I/O)."""
        entry = self._entries.get(key)
        auth = entry.auth if entry is not None else None
        return auth if self._fresh(auth) else None

    def invalidate(self, key: CacheKey, token: str | None = None) -> bool:
        """Forget the authorization of ``key``.

        Args:
            key: The cache key.
            token: Only forget it if it is still this token. Threads that all saw the same
                expired token then cause a single re-authorization, not one each.

        Returns:
            Whether something was forgotten.
        """
        entry = self._entries.get(key)
        if entry is None:
            return False
        with entry.lock:
            auth = entry.auth
            if auth is None or (token is not None and auth.token != token):
                return False
            entry.auth = None
            return True

    def clear(self) -> None:
        """Forget every authorization."""
        with self._lock:
            self._entries = {}

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        old, self._entries = self._entries, {}
        for key, entry in old.items():
            fresh = _Entry()
            fresh.auth = entry.auth
            self._entries[key] = fresh


class UploadUrlPool:
    """Upload URL/token pairs, each used by one upload at a time.

    ``take`` removes a pair from the pool (or returns ``None``: get a new one from B2), and
    ``put`` returns it after a *successful* upload. A pair that saw any failure is simply not
    put back.

    Args:
        lifetime: Seconds a pair is reused (B2 upload URLs are valid for 24 hours).
        clock: A monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        lifetime: float = UPLOAD_URL_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, ...], list[tuple[str, str, float]]] = {}

    def take(self, key: tuple[str, ...]) -> tuple[str, str] | None:
        """Remove and return a pooled ``(upload_url, upload_token)`` for ``key``, or None."""
        now = self._clock()
        with self._lock:
            slots = self._pools.get(key)
            while slots:
                url, token, obtained = slots.pop()
                if now - obtained < self.lifetime:
                    return url, token
            return None

    def put(
        self, key: tuple[str, ...], url: str, token: str, obtained: float | None = None
    ) -> None:
        """Return a pair after a successful upload (``obtained``: when B2 issued it)."""
        with self._lock:
            self._pools.setdefault(key, []).append(
                (url, token, self._clock() if obtained is None else obtained)
            )

    def now(self) -> float:
        """Return the pool clock's current time (to stamp newly obtained pairs)."""
        return self._clock()

    def discard(self, key: tuple[str, ...]) -> None:
        """Drop every pair of ``key`` (for example when a large file is finished)."""
        with self._lock:
            self._pools.pop(key, None)

    def size(self, key: tuple[str, ...]) -> int:
        """Return how many idle pairs ``key`` has."""
        with self._lock:
            return len(self._pools.get(key, ()))

    def clear(self) -> None:
        """Drop every pair."""
        with self._lock:
            self._pools = {}

    def _after_fork(self) -> None:
        # Pairs copied from the parent may be in use there: never share them.
        self._lock = threading.Lock()
        self._pools = {}


#: The process-wide token cache shared by every B2Session.
TOKENS = TokenCache()

#: The process-wide pool of upload URLs.
UPLOAD_URLS = UploadUrlPool()


def _reinit_after_fork() -> None:  # pragma: no cover - runs in forked children
    TOKENS._after_fork()
    UPLOAD_URLS._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)

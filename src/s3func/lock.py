"""``ObjectLock``: a distributed shared/exclusive lock on object storage.

Two methods implement the same lock:

* **listing** (the default; works everywhere, including B2): the two-object bakery election.
  Every contender writes ``seq-0`` (registration, later rewritten as its lease), lists the
  lock prefix once to pick a bakery number, writes ``seq-1`` (its ticket) and then lists the
  prefix until :func:`decide`, a pure function of one listing snapshot, says
  :attr:`Decision.ACQUIRED`. Tickets are ordered by ``(seq-1 listing time, bakery number,
  lock id, nonce)``; a contender waits for every live conflicting contender ahead of it, and
  for every live conflicting contender whose ``seq-0`` is visible but whose ``seq-1`` is not.
* **conditional** (only where a probe shows that conditional writes work and are atomic): an
  exclusive holder creates the object ``slot`` with ``If-None-Match: *``; a shared holder
  writes its own ``reader-<id>-<lease>`` object and then checks the slot, while an exclusive
  holder creates the slot and then waits for the readers to leave (a Dekker-style handshake).
  ``If-Match`` is used only on the holder's own slot (lease refresh and release).

Both methods keep a lease alive in a daemon thread, so a holder killed with ``SIGKILL`` stops
blocking others after its lease (plus a grace) expires, and each method looks for the other's
contenders, so processes using different methods on one key still exclude each other.

The protocol, its safety argument and its limits are in ``docs/locking.md``. This module has a
pure half (:func:`parse_listing`, :func:`contenders`, :func:`decide`, :func:`bakery_number`,
:func:`parse_slot` and friends: no I/O, table-tested) and a thin I/O half (:class:`ObjectLock`)
that uses only :class:`~s3func.session.BaseSession` operations.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import random
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from .errors import (
    ConfigurationError,
    ConflictError,
    LockError,
    LockLostError,
    LockTimeoutError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    S3FuncError,
    ServiceError,
)
from .models import parse_http_date

if TYPE_CHECKING:
    from types import TracebackType

    from .session import BaseSession

__all__ = [
    "BODY",
    "LOCK_SUFFIX",
    "SLOT_NAME",
    "ConditionalWriteSupport",
    "Contender",
    "Decision",
    "LockInfo",
    "Me",
    "ObjectLock",
    "ReaderObject",
    "SlotHolder",
    "SlotView",
    "Snapshot",
    "TicketObject",
    "Verdict",
    "bakery_number",
    "contenders",
    "decide",
    "grace_for",
    "is_stale",
    "listing_blockers",
    "live_readers",
    "lock_prefix",
    "parse_listing",
    "parse_reader_name",
    "parse_slot",
    "parse_ticket_name",
    "probe_conditional_writes",
    "reader_name",
    "reader_stale",
    "render_slot",
    "seq0_name",
    "seq1_name",
]

_log = logging.getLogger("s3func.lock")
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)

#: Appended to the lock key to form the prefix under which every lock object lives.
LOCK_SUFFIX = ".lock/"
#: Name (under the prefix) of the conditional method's exclusive slot.
SLOT_NAME = "slot"
#: The body of every ticket and reader object. Objects of another size are never ours.
BODY = b"s3func lock ticket\n"

_SLOT_FORMAT = "s3func-lock-slot/1"
_ID_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
_NAME_RE = re.compile(
    r"(?P<id>[A-Za-z0-9_]{1,64})-(?P<nonce>[0-9a-f]{8})-(?P<seq>[01])(?P<mode>[xs])"
    r"-(?P<value>0|[1-9][0-9]{0,17})"
)
_READER_RE = re.compile(r"reader-(?P<id>[A-Za-z0-9_]{1,64})-(?P<lease>[1-9][0-9]{2,9})")
_MIN_LEASE_MS = 100
_MAX_LEASE_MS = 7 * 24 * 3600 * 1000


def grace_for(lease: float) -> float:
    """Return how long past its lease an observer still waits before ignoring a contender.

    The grace covers whole-second timestamps (1 s) and clock-rate differences between
    machines (5 % of the lease), with a second to spare.
    """
    return 2.0 + lease / 20.0


def lock_prefix(key: str) -> str:
    """Return the prefix of lock ``key``'s objects: ``key + ".lock/"``.

    Locks ``"k"`` and ``"k.lock"`` use the disjoint prefixes ``"k.lock/"`` and
    ``"k.lock.lock/"``; a nested lock such as ``"k.lock/x"`` lives under
    ``"k.lock/x.lock/"``, whose object names never parse as objects of ``"k"``.
    """
    return key + LOCK_SUFFIX


def seq0_name(lock_id: str, nonce: str, exclusive: bool, lease_ms: int) -> str:
    """Return the name (under the prefix) of a ticket's ``seq-0`` object."""
    return f"{lock_id}-{nonce}-0{'x' if exclusive else 's'}-{lease_ms}"


def seq1_name(lock_id: str, nonce: str, exclusive: bool, number: int) -> str:
    """Return the name (under the prefix) of a ticket's ``seq-1`` object."""
    return f"{lock_id}-{nonce}-1{'x' if exclusive else 's'}-{number}"


def reader_name(lock_id: str, lease_ms: int) -> str:
    """Return the name (under the prefix) of a conditional-method reader's object."""
    return f"reader-{lock_id}-{lease_ms}"


# -- the pure half: parsing -------------------------------------------------------------


class Decision(enum.Enum):
    """What one listing snapshot says about a contender."""

    #: Nobody that conflicts is ahead: the contender holds the lock.
    ACQUIRED = "acquired"
    #: Someone that conflicts is ahead, or still registering: list again later.
    WAIT = "wait"
    #: The contender's own ticket vanished or its lease expired: it must start over.
    LOST = "lost"
    #: The contender's own ticket is not visible yet (eventually consistent listing).
    PENDING = "pending"


@dataclass(frozen=True)
class TicketObject:
    """One parsed ticket object of a listing.

    Attributes:
        key: The full object key.
        lock_id: The contender's id.
        nonce: The acquisition's nonce (a new one for every acquisition).
        seq: 0 (registration and lease) or 1 (the ticket proper).
        exclusive: The mode requested.
        value: For ``seq-0`` the declared lease in milliseconds, for ``seq-1`` the bakery
            number.
        last_modified: The listing's timestamp (server time).
        version_id: The version id, when the listing gives one.
    """

    key: str
    lock_id: str
    nonce: str
    seq: int
    exclusive: bool
    value: int
    last_modified: datetime
    version_id: str | None = None


@dataclass(frozen=True)
class ReaderObject:
    """One conditional-method shared holder (or would-be holder) seen in a listing.

    Attributes:
        key: The full object key.
        lock_id: The reader's id.
        lease: Its declared lease in seconds.
        last_modified: The listing's timestamp (its last lease refresh).
        version_id: The version id, when the listing gives one.
    """

    key: str
    lock_id: str
    lease: float
    last_modified: datetime
    version_id: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """One listing of a lock prefix, parsed.

    Attributes:
        tickets: The objects that parse as listing-method tickets.
        readers: The conditional method's reader objects.
        slot_present: Whether the conditional method's exclusive slot exists.
        ignored: Keys under the prefix that are not ours (foreign objects, probes, objects of
            nested locks): they never take part in anything.
        newest: The newest timestamp among our objects: a lower bound of the server's clock
            when the listing was taken.
    """

    tickets: tuple[TicketObject, ...] = ()
    readers: tuple[ReaderObject, ...] = ()
    slot_present: bool = False
    ignored: tuple[str, ...] = ()
    newest: datetime | None = None


def parse_ticket_name(name: str) -> tuple[str, str, int, bool, int] | None:
    """Parse a name under the lock prefix as ``(lock_id, nonce, seq, exclusive, value)``.

    Returns ``None`` for anything that is not exactly a ticket name.
    """
    m = _NAME_RE.fullmatch(name)
    if m is None:
        return None
    seq = int(m["seq"])
    value = int(m["value"])
    if seq == 0 and not _MIN_LEASE_MS <= value <= _MAX_LEASE_MS:
        return None
    return m["id"], m["nonce"], seq, m["mode"] == "x", value


def parse_reader_name(name: str) -> tuple[str, int] | None:
    """Parse a name under the lock prefix as a reader's ``(lock_id, lease_ms)``, or ``None``."""
    m = _READER_RE.fullmatch(name)
    if m is None:
        return None
    lease_ms = int(m["lease"])
    if not _MIN_LEASE_MS <= lease_ms <= _MAX_LEASE_MS:
        return None
    return m["id"], lease_ms


def _version(obj: Any) -> str | None:
    version = getattr(obj, "version_id", None)
    return version if isinstance(version, str) and version and version != "null" else None


def parse_listing(prefix: str, objects: Iterable[Any]) -> Snapshot:
    """Parse the objects of one listing of ``prefix`` into a :class:`Snapshot`.

    Items need ``key``, ``last_modified`` and ``content_length`` (``version_id`` and
    ``is_delete_marker`` are used when present). Anything that does not parse strictly (wrong
    name, wrong size, no timestamp) is ignored.
    """
    tickets: list[TicketObject] = []
    readers: list[ReaderObject] = []
    ignored: list[str] = []
    slot_present = False
    newest: datetime | None = None
    for obj in objects:
        key = getattr(obj, "key", None)
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        if getattr(obj, "is_delete_marker", False):
            continue
        name = key[len(prefix) :]
        stamp = getattr(obj, "last_modified", None)
        size = getattr(obj, "content_length", None)
        if not isinstance(stamp, datetime) or stamp.tzinfo is None:
            ignored.append(key)
            continue
        if name == SLOT_NAME:
            slot_present = True
        elif (reader := parse_reader_name(name)) is not None and size == len(BODY):
            readers.append(ReaderObject(key, reader[0], reader[1] / 1000, stamp, _version(obj)))
        elif (parsed := parse_ticket_name(name)) is not None and size == len(BODY):
            lock_id, nonce, seq, exclusive, value = parsed
            tickets.append(
                TicketObject(key, lock_id, nonce, seq, exclusive, value, stamp, _version(obj))
            )
        else:
            ignored.append(key)
            continue
        newest = stamp if newest is None or stamp > newest else newest
    return Snapshot(tuple(tickets), tuple(readers), slot_present, tuple(ignored), newest)


@dataclass(frozen=True)
class Contender:
    """Everything one snapshot shows about one acquisition (one ``lock_id`` and nonce).

    Attributes:
        lock_id: The contender's id.
        nonce: The acquisition's nonce.
        exclusive: Whether it wants (or holds) the lock exclusively.
        registered_at: Timestamp of ``seq-0`` (refreshed by its lease), or ``None`` when
            ``seq-0`` is not visible (then the contender is ignored).
        lease: The lease it declared, in seconds (from ``seq-0``'s name).
        ticket_at: Timestamp of ``seq-1``, or ``None`` while it is still registering.
        number: Its bakery number (from ``seq-1``'s name).
        objects: Its ticket objects in the snapshot.
    """

    lock_id: str
    nonce: str
    exclusive: bool
    registered_at: datetime | None
    lease: float | None
    ticket_at: datetime | None
    number: int | None
    objects: tuple[TicketObject, ...]

    @property
    def last_seen(self) -> datetime | None:
        """The newest timestamp of its objects: its last sign of life."""
        stamps = [t for t in (self.registered_at, self.ticket_at) if t is not None]
        return max(stamps) if stamps else None

    @property
    def order(self) -> tuple[datetime, int, str, str] | None:
        """Its place in the queue: ``(seq-1 time, bakery number, lock id, nonce)``."""
        if self.ticket_at is None or self.number is None:
            return None
        return (self.ticket_at, self.number, self.lock_id, self.nonce)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of its objects."""
        return tuple(o.key for o in self.objects)


def contenders(snapshot: Snapshot) -> dict[tuple[str, str], Contender]:
    """Group a snapshot's ticket objects by ``(lock_id, nonce)``.

    Duplicates (which only a foreign writer could create) are merged conservatively: the
    contender counts as exclusive if any object says so, its lease is the longest declared
    and its newest registration counts, and its most senior ``seq-1`` is its ticket.
    """
    groups: dict[tuple[str, str], list[TicketObject]] = {}
    for t in snapshot.tickets:
        groups.setdefault((t.lock_id, t.nonce), []).append(t)
    out: dict[tuple[str, str], Contender] = {}
    for (lock_id, nonce), objs in groups.items():
        seq0 = [o for o in objs if o.seq == 0]
        seq1 = [o for o in objs if o.seq == 1]
        best1 = min(seq1, key=lambda o: (o.last_modified, o.value)) if seq1 else None
        out[(lock_id, nonce)] = Contender(
            lock_id=lock_id,
            nonce=nonce,
            exclusive=any(o.exclusive for o in objs),
            registered_at=max(o.last_modified for o in seq0) if seq0 else None,
            lease=max(o.value for o in seq0) / 1000.0 if seq0 else None,
            ticket_at=best1.last_modified if best1 else None,
            number=best1.value if best1 else None,
            objects=tuple(objs),
        )
    return out


def is_stale(contender: Contender, now: datetime | None) -> bool:
    """Whether ``contender``'s lease has expired (plus grace) at server time ``now``.

    A contender whose ``seq-0`` is not visible is never called stale (it is ignored anyway).
    """
    seen = contender.last_seen
    if now is None or seen is None or contender.lease is None or contender.registered_at is None:
        return False
    return (now - seen).total_seconds() > contender.lease + grace_for(contender.lease)


def reader_stale(reader: ReaderObject, now: datetime | None) -> bool:
    """Whether a reader's lease has expired (plus grace) at server time ``now``."""
    if now is None:
        return False
    return (now - reader.last_modified).total_seconds() > reader.lease + grace_for(reader.lease)


def bakery_number(snapshot: Snapshot, lock_id: str) -> int:
    """Return the bakery number for a new ticket: one more than any visible ``seq-1``.

    Only the doorway listing (taken after the contender's own ``seq-0`` is written) may be
    used. Every ticket counts, stale or not, except the contender's own leftovers.
    """
    numbers = [t.value for t in snapshot.tickets if t.seq == 1 and t.lock_id != lock_id]
    return 1 + max(numbers, default=0)


def _conflicts(a_exclusive: bool, b_exclusive: bool) -> bool:
    return a_exclusive or b_exclusive


def listing_blockers(snapshot: Snapshot, lock_id: str, exclusive: bool) -> tuple[Contender, ...]:
    """Return the live listing-method contenders that a conditional-method holder yields to.

    Any contender whose ``seq-0`` is visible, whose lease has not expired and whose mode
    conflicts counts, whether or not its ``seq-1`` is visible yet.
    """
    out = []
    for c in contenders(snapshot).values():
        if c.lock_id == lock_id or c.registered_at is None:
            continue
        if is_stale(c, snapshot.newest) or not _conflicts(exclusive, c.exclusive):
            continue
        out.append(c)
    return tuple(out)


def live_readers(snapshot: Snapshot, lock_id: str) -> tuple[ReaderObject, ...]:
    """Return the conditional-method readers other than ``lock_id`` whose lease is live."""
    return tuple(
        r for r in snapshot.readers if r.lock_id != lock_id and not reader_stale(r, snapshot.newest)
    )


# -- the pure half: the conditional method's slot ----------------------------------------


@dataclass(frozen=True)
class SlotHolder:
    """The content of the exclusive slot.

    Attributes:
        lock_id: The holder's id.
        lease: Its lease in seconds.
        refreshed: Server time (epoch seconds, from ``Date`` headers) of its last refresh,
            never later than the real time at which that refresh was sent.
    """

    lock_id: str
    lease: float
    refreshed: float

    def stale(self, now: float | None) -> bool:
        """Whether its lease (plus grace) has expired at server time ``now``."""
        return now is not None and now - self.refreshed > self.lease + grace_for(self.lease)


@dataclass(frozen=True)
class SlotView:
    """The slot as read: its holder (``None`` when absent), ETag and the server time."""

    holder: SlotHolder | None
    etag: str | None
    now: float | None

    def live_holder(self, exclude: str | None = None) -> SlotHolder | None:
        """The holder, unless it is ``exclude``, absent or stale."""
        h = self.holder
        if h is None or h.lock_id == exclude or h.stale(self.now):
            return None
        return h


def parse_slot(data: bytes) -> SlotHolder:
    """Parse the slot object.

    Raises:
        LockError: the object is not an s3func slot.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != _SLOT_FORMAT:
            raise ValueError("format")
        lock_id = doc["lock_id"]
        lease = float(doc["lease"])
        refreshed = float(doc["refreshed"])
        if not isinstance(lock_id, str) or not _ID_RE.fullmatch(lock_id):
            raise ValueError("lock_id")
        if not (math.isfinite(lease) and math.isfinite(refreshed) and lease > 0):
            raise ValueError("numbers")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise LockError(
            f"the lock's slot object is not an s3func lock slot ({exc!r}); "
            "another program may be using the same key"
        ) from exc
    return SlotHolder(lock_id, lease, refreshed)


def render_slot(holder: SlotHolder) -> bytes:
    """Serialise the slot (a new ``refreshed`` gives new bytes, hence a new ETag)."""
    doc = {
        "format": _SLOT_FORMAT,
        "lock_id": holder.lock_id,
        "lease": holder.lease,
        "refreshed": round(holder.refreshed, 3),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# -- the pure half: the election ---------------------------------------------------------


@dataclass(frozen=True)
class Me:
    """The contender running the election.

    Attributes:
        lock_id: Its id.
        nonce: The nonce of its current acquisition.
        exclusive: The mode it wants.
        confirmed: Whether it has already seen both of its own objects in a listing (then a
            listing without them means they were deleted, not that they are late).
    """

    lock_id: str
    nonce: str
    exclusive: bool
    confirmed: bool = False


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`decide`.

    Attributes:
        decision: What to do.
        reason: A human-readable explanation (used in error messages).
        blockers: ``lock_id`` of every contender we wait for.
        stale: ``(lock_id, nonce)`` of every contender ignored because its lease expired.
    """

    decision: Decision
    reason: str
    blockers: tuple[str, ...] = ()
    stale: tuple[tuple[str, str], ...] = ()


def decide(
    snapshot: Snapshot,
    me: Me,
    *,
    holding: bool = False,
    slot: SlotView | None = None,
) -> Verdict:
    """Run the bakery election for ``me`` over one listing snapshot.

    Rules, in order:

    1. Our own ``seq-0`` and ``seq-1`` must be visible: otherwise :attr:`Decision.PENDING`
       (not seen yet) or :attr:`Decision.LOST` (seen before, so deleted).
    2. Our own lease must not look expired in the snapshot: otherwise ``LOST``.
    3. Every other contender whose ``seq-0`` is visible, whose lease has not expired and
       whose mode conflicts with ours blocks us if its ``seq-1`` is not visible yet (it is
       still choosing) or if its order ``(seq-1 time, number, id, nonce)`` is below ours.
       Contenders with only ``seq-1`` visible are leaving (or were broken) and are ignored;
       so are other tickets carrying our own ``lock_id`` (leftovers of earlier attempts).
    4. A live holder of the conditional method's slot blocks us, and so does (when we want
       the lock exclusively) a live conditional-method reader.

    With ``holding=True`` (re-checking a lock already won), contenders still choosing and
    conditional-method holders are not counted: the protocol guarantees they yield.

    All times come from the snapshot itself (``snapshot.newest`` is the observer's "now"),
    so every observer compares the same values.
    """
    groups = contenders(snapshot)
    mine = groups.get((me.lock_id, me.nonce))
    if mine is None or mine.registered_at is None or mine.order is None:
        if me.confirmed:
            return Verdict(Decision.LOST, "our ticket is gone from the listing (broken?)")
        if mine is not None and mine.registered_at is None and mine.order is not None:
            # seq-0 is written before seq-1 and deleted before it: a visible seq-1 without
            # its seq-0 means the ticket was broken while we were still in the doorway.
            return Verdict(Decision.LOST, "our seq-0 was deleted (broken by another process)")
        return Verdict(Decision.PENDING, "our ticket is not visible in the listing yet")
    now = snapshot.newest
    if is_stale(mine, now):
        return Verdict(Decision.LOST, "our own lease looks expired in the listing")
    mine_order = mine.order
    blockers: list[str] = []
    stale: list[tuple[str, str]] = []
    for ident, other in sorted(groups.items()):
        if other.lock_id == me.lock_id or other.registered_at is None:
            continue
        if is_stale(other, now):
            stale.append(ident)
            continue
        if not _conflicts(me.exclusive, other.exclusive):
            continue
        order = other.order
        if order is None:
            if not holding:
                blockers.append(other.lock_id)
        elif order < mine_order:
            blockers.append(other.lock_id)
    if not holding:
        holder = slot.live_holder(me.lock_id) if slot is not None else None
        if holder is not None:
            blockers.append(holder.lock_id)
        if me.exclusive:
            blockers.extend(r.lock_id for r in live_readers(snapshot, me.lock_id))
    if blockers:
        return Verdict(
            Decision.WAIT, f"waiting for {', '.join(blockers)}", tuple(blockers), tuple(stale)
        )
    return Verdict(Decision.ACQUIRED, "no conflicting contender is ahead", (), tuple(stale))


# -- conditional-write capability probe --------------------------------------------------


@dataclass(frozen=True)
class ConditionalWriteSupport:
    """The result of :func:`probe_conditional_writes`.

    Attributes:
        supported: Whether the endpoint's conditional writes passed every check.
        reason: What failed (or ``"ok"``).
    """

    supported: bool
    reason: str


_PROBE_BY_SESSION: weakref.WeakKeyDictionary[Any, ConditionalWriteSupport] = (
    weakref.WeakKeyDictionary()
)
_PROBE_BY_ENDPOINT: dict[tuple[str, str, str], ConditionalWriteSupport] = {}
_PROBE_LOCK = threading.Lock()


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lname = name.lower()
        for k, v in headers.items():
            if k.lower() == lname:
                return v
    return value


def _server_date(headers: Mapping[str, str] | None) -> float | None:
    stamp = parse_http_date(_header(headers, "date"))
    return stamp.timestamp() if stamp is not None else None


def probe_conditional_writes(
    session: BaseSession, prefix: str, *, parallel: int = 8, rounds: int = 3
) -> ConditionalWriteSupport:
    """Check that the endpoint's conditional writes are real and atomic.

    Writes and deletes a few small objects under ``prefix + "probe-<random>-*"``. The checks:
    a create with ``If-None-Match: *`` succeeds and a second one fails with 412; ``If-Match``
    with a wrong ETag fails and with the right one succeeds, on PUT and on DELETE; ``parallel``
    concurrent creators of one key produce exactly one winner, ``rounds`` times;
    ``parallel`` concurrent ``If-Match`` writers of one ETag produce exactly one winner;
    responses carry a ``Date`` header. One 200 proves nothing, so support is never inferred
    from it. A probe can only show non-atomicity it happens to observe: see
    ``docs/locking.md``.

    Returns:
        Whether conditional writes can be used, and why not.
    """
    token = secrets.token_hex(6)
    base = f"{prefix}probe-{token}-"
    written: list[str] = []
    counter = iter(range(1 << 30))

    def body() -> bytes:
        return f"{token}-{next(counter)}".encode()

    def put(key: str, *, if_match: str | None = None, if_none_match: str | None = None) -> Any:
        written.append(key)
        return session.put_object(key, body(), if_match=if_match, if_none_match=if_none_match)

    def race(
        key: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> tuple[int, list[BaseException]]:
        barrier = threading.Barrier(parallel)
        wins: list[int] = []
        errors: list[BaseException] = []
        bodies = [body() for _ in range(parallel)]

        def worker(data: bytes) -> None:
            try:
                barrier.wait(timeout=30)
                session.put_object(key, data, if_match=if_match, if_none_match=if_none_match)
                wins.append(1)
            except (PreconditionFailedError, ConflictError):
                pass
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(b,), daemon=True) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        written.append(key)
        return len(wins), errors

    def fail(reason: str) -> ConditionalWriteSupport:
        return ConditionalWriteSupport(False, reason)

    try:
        try:
            first = put(base + "a", if_none_match="*")
        except NotSupportedError:
            return fail("the endpoint answers 501 to If-None-Match")
        except ServiceError as exc:
            return fail(f"If-None-Match was refused: {exc}")
        if _server_date(first.headers) is None:
            return fail("responses carry no usable Date header")
        if not first.etag:
            return fail("the PUT response carried no ETag")
        try:
            put(base + "a", if_none_match="*")
        except (PreconditionFailedError, ConflictError):
            pass
        else:
            return fail("If-None-Match: * did not stop an overwrite")
        try:
            put(base + "a", if_match="0" * 32)
        except PreconditionFailedError:
            pass
        except ServiceError as exc:
            return fail(f"If-Match was refused: {exc}")
        else:
            return fail("If-Match with a wrong ETag overwrote the object")
        try:
            second = put(base + "a", if_match=first.etag)
        except ServiceError as exc:
            return fail(f"If-Match with the right ETag failed: {exc}")
        try:
            session.delete_object(base + "a", if_match="0" * 32)
        except PreconditionFailedError:
            pass
        except ServiceError as exc:
            return fail(f"DELETE with If-Match was refused: {exc}")
        try:
            session.head_object(base + "a")
        except NotFoundError:
            return fail("DELETE with a wrong If-Match deleted the object")
        try:
            session.delete_object(base + "a", if_match=second.etag or "")
            session.head_object(base + "a")
        except NotFoundError:
            pass
        except ServiceError as exc:
            return fail(f"DELETE with the right If-Match failed: {exc}")
        else:
            return fail("DELETE with the right If-Match did not delete the object")
        for r in range(rounds):
            wins, errors = race(f"{base}race{r}", if_none_match="*")
            if errors:
                return fail(f"parallel creators failed: {errors[0]!r}")
            if wins != 1:
                return fail(
                    f"If-None-Match is not atomic: {wins} of {parallel} parallel creators won"
                )
        etag = put(base + "cas").etag or ""
        wins, errors = race(base + "cas", if_match=etag)
        if errors:
            return fail(f"parallel If-Match writers failed: {errors[0]!r}")
        if wins != 1:
            return fail(f"If-Match is not atomic: {wins} of {parallel} parallel writers won")
        return ConditionalWriteSupport(True, "ok")
    finally:
        for key in dict.fromkeys(written):
            try:
                session.delete_object(key)
            except S3FuncError as exc:
                _log.debug("could not delete probe object %s: %s", key, exc)


def _endpoint_key(session: BaseSession) -> tuple[str, str, str] | None:
    endpoint = getattr(session, "endpoint_url", None)
    if not isinstance(endpoint, str) or not endpoint:
        return None
    return (type(session).__name__, endpoint, session.bucket)


def _cached_probe(session: BaseSession, prefix: str) -> ConditionalWriteSupport:
    """Probe once per endpoint and bucket (per session when the endpoint is unknown)."""
    key = _endpoint_key(session)
    cached: ConditionalWriteSupport | None = None
    with _PROBE_LOCK:
        if key is not None:
            cached = _PROBE_BY_ENDPOINT.get(key)
        if cached is None:
            with contextlib.suppress(TypeError):
                cached = _PROBE_BY_SESSION.get(session)
    if cached is not None:
        return cached
    result = probe_conditional_writes(session, prefix)
    with _PROBE_LOCK:
        if key is not None:
            _PROBE_BY_ENDPOINT[key] = result
        with contextlib.suppress(TypeError):
            _PROBE_BY_SESSION[session] = result
    return result


# -- the I/O half: lease keeping ---------------------------------------------------------


class _Keeper:
    """Keeps one acquisition's lease alive from a daemon thread.

    Shared by the lock, its thread and its finalizer (it never refers to the lock, so an
    abandoned lock can still be collected and cleaned up).

    ``deadline`` is the local monotonic time until which no observer can consider the lease
    expired: the send time of the last successful refresh plus the lease. A refresh that
    completes after the deadline, or a deadline that passes with no successful refresh, loses
    the lock for good (``lost`` is set): others may have ignored us meanwhile. After the
    deadline nothing is written any more.
    """

    def __init__(
        self,
        refresh: Callable[[], None],
        lease: float,
        interval: float,
        clock: Callable[[], float],
        name: str,
    ) -> None:
        self._refresh = refresh
        self.lease = lease
        self.interval = interval
        self.clock = clock
        self.name = name
        self.mutex = threading.RLock()
        self.stopped = threading.Event()
        self.deadline = -math.inf
        self.lost: str | None = None
        self.thread: threading.Thread | None = None
        self.failures = 0

    def begin(self, sent: float) -> None:
        """Start the lease at local time ``sent`` (just before the first write was sent)."""
        self.deadline = sent + self.lease

    def valid(self, at: float | None = None) -> bool:
        """Whether the lease is still ours at local time ``at`` (default: now)."""
        when = self.clock() if at is None else at
        return self.lost is None and when < self.deadline

    def renew(self) -> bool:
        """Refresh the lease once; return whether the lease is still ours."""
        with self.mutex:
            if self.stopped.is_set() or self.lost is not None:
                return self.lost is None
            deadline = self.deadline
            sent = self.clock()
            if sent >= deadline:
                self.lost = "the lease expired before it could be refreshed"
                return False
            try:
                self._refresh()
            except LockLostError as exc:
                self.lost = str(exc)
                return False
            except Exception as exc:
                self.failures += 1
                if self.clock() >= deadline:
                    self.lost = f"the lease could not be refreshed before it expired ({exc})"
                _log.warning("lock %s: lease refresh failed: %s", self.name, exc)
                return self.lost is None
            if self.clock() >= deadline:
                self.lost = "a lease refresh completed only after the lease had expired"
                return False
            self.failures = 0
            self.deadline = sent + self.lease
            return True

    def start(self) -> None:
        """Start the daemon thread."""
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name=f"s3func-lock-lease-{self.name}", daemon=True
            )
            self.thread.start()

    def _run(self) -> None:
        while True:
            wait = self.interval if self.failures == 0 else min(self.interval, 1.0)
            if self.stopped.wait(wait):
                return
            if not self.renew():
                return

    def stop(self) -> None:
        """Stop refreshing; waits for a refresh in flight to finish."""
        self.stopped.set()
        with self.mutex:
            pass
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(self.interval, 1.0) + 1.0)


def _is_version(version: str | None) -> bool:
    return bool(version) and version != "null"


class _Owned:
    """Plain objects we write (with ``BODY``) and delete, with their version ids.

    On B2 and in versioned buckets every write is a new version: a rewrite deletes the older
    versions, and a delete removes every version we wrote, so no old version of ours can ever
    reappear.
    """

    def __init__(self, session: BaseSession) -> None:
        self.session = session
        self.versions: dict[str, list[str | None]] = {}

    def put(self, key: str) -> None:
        resp = self.session.put_object(key, BODY)
        self.versions.setdefault(key, []).append(
            resp.version_id if _is_version(resp.version_id) else None
        )

    def rewrite(self, key: str) -> None:
        old = list(self.versions.get(key, []))
        self.put(key)
        new = self.versions[key][-1]
        for version in old:
            if version is not None and version != new:
                try:
                    self.session.delete_object(key, version_id=version)
                except NotFoundError:
                    pass
                except S3FuncError as exc:
                    _log.debug("could not delete an old lease version: %s", exc)
                    continue
                self.versions[key].remove(version)

    def check(self, key: str, what: str) -> None:
        """Raise :class:`LockLostError` (after deleting our objects) if ``key`` is gone."""
        try:
            self.session.head_object(key)
        except NotFoundError as exc:
            self.delete(list(self.versions))
            raise LockLostError(
                f"our lock {what} was deleted (broken by another process)", key=key
            ) from exc

    def delete(self, keys: Iterable[str]) -> list[BaseException]:
        errors: list[BaseException] = []
        for key in keys:
            versions = self.versions.get(key) or [None]
            remaining: list[str | None] = []
            for version in dict.fromkeys(versions):
                try:
                    self.session.delete_object(key, version_id=version)
                except NotFoundError:
                    pass
                except Exception as exc:
                    errors.append(exc)
                    remaining.append(version)
            if remaining:
                self.versions[key] = remaining
            else:
                self.versions.pop(key, None)
        return errors


class _Ticket:
    """One acquisition of the listing method: its two objects and its lease refresh."""

    def __init__(
        self,
        session: BaseSession,
        prefix: str,
        lock_id: str,
        nonce: str,
        exclusive: bool,
        lease_ms: int,
    ) -> None:
        self.owned = _Owned(session)
        self.prefix = prefix
        self.lock_id = lock_id
        self.nonce = nonce
        self.exclusive = exclusive
        self.seq0_key = prefix + seq0_name(lock_id, nonce, exclusive, lease_ms)
        self.seq1_key: str | None = None
        self.confirmed = False

    def me(self) -> Me:
        return Me(self.lock_id, self.nonce, self.exclusive, self.confirmed)

    def write_seq0(self) -> None:
        self.owned.put(self.seq0_key)

    def write_seq1(self, number: int) -> None:
        self.seq1_key = self.prefix + seq1_name(self.lock_id, self.nonce, self.exclusive, number)
        self.owned.put(self.seq1_key)

    def refresh(self) -> None:
        """Rewrite ``seq-0`` (the lease); a missing ``seq-0`` or ``seq-1`` means it was broken.

        Checking ``seq-0`` first keeps a refresh from resurrecting a ticket that another
        process broke while we were still in the doorway.
        """
        self.owned.check(self.seq0_key, "ticket")
        if self.seq1_key is not None:
            self.owned.check(self.seq1_key, "ticket")
        self.owned.rewrite(self.seq0_key)

    def delete(self) -> list[BaseException]:
        """Delete our objects, ``seq-0`` first (a lone ``seq-1`` is ignored by everyone)."""
        return self.owned.delete([self.seq0_key] + ([self.seq1_key] if self.seq1_key else []))


class _Reader:
    """A conditional-method shared holder's object and its lease refresh."""

    def __init__(self, session: BaseSession, prefix: str, lock_id: str, lease_ms: int) -> None:
        self.owned = _Owned(session)
        self.key = prefix + reader_name(lock_id, lease_ms)

    def write(self) -> None:
        self.owned.put(self.key)

    def refresh(self) -> None:
        self.owned.check(self.key, "reader object")
        self.owned.rewrite(self.key)

    def delete(self) -> list[BaseException]:
        return self.owned.delete([self.key])


class _ServerClock:
    """A lower bound of the server's ``Date`` clock, carried forward with the local clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._offset: float | None = None
        self._mutex = threading.Lock()

    def observe(self, headers: Mapping[str, str] | None, received: float) -> None:
        stamp = _server_date(headers)
        if stamp is not None:
            with self._mutex:
                self._offset = stamp - received

    def now(self, at: float | None = None) -> float | None:
        with self._mutex:
            if self._offset is None:
                return None
            return (self._clock() if at is None else at) + self._offset


class _Slot:
    """The conditional method's exclusive slot, as one holder (or reader of it) sees it."""

    def __init__(
        self,
        session: BaseSession,
        key: str,
        lock_id: str,
        lease: float,
        server: _ServerClock,
        clock: Callable[[], float],
    ) -> None:
        self.session = session
        self.key = key
        self.lock_id = lock_id
        self.lease = lease
        self.server = server
        self.clock = clock
        self.etag: str | None = None

    def read(self) -> SlotView:
        """GET the slot, and the server time from the response."""
        try:
            with self.session.get_object(self.key) as resp:
                data = resp.data
                etag = resp.etag
                headers = resp.headers
        except NotFoundError as exc:
            self.server.observe(exc.headers, self.clock())
            return SlotView(None, None, self.server.now())
        self.server.observe(headers, self.clock())
        return SlotView(parse_slot(data), etag, self.server.now())

    def _body(self, sent: float) -> bytes:
        refreshed = self.server.now(sent)
        if refreshed is None:
            raise LockError("no server time is known; the conditional method needs Date headers")
        return render_slot(SlotHolder(self.lock_id, self.lease, refreshed))

    def _wrote(self, resp: Any) -> None:
        self.server.observe(resp.headers, self.clock())
        self.etag = resp.etag
        if not self.etag:
            raise LockError("the conditional PUT response carried no ETag", key=self.key)

    def create(self, sent: float) -> None:
        """Create the slot with ``If-None-Match: *`` (412 when somebody holds it)."""
        self._wrote(self.session.put_object(self.key, self._body(sent), if_none_match="*"))

    def refresh(self) -> None:
        """Rewrite our slot with ``If-Match``: only our own version may be replaced."""
        sent = self.clock()
        try:
            resp = self.session.put_object(self.key, self._body(sent), if_match=self.etag)
        except (PreconditionFailedError, ConflictError, NotFoundError) as exc:
            raise LockLostError(
                "our slot was deleted or replaced (broken by another process)", key=self.key
            ) from exc
        self._wrote(resp)

    def remove(self) -> None:
        """Delete our slot with ``If-Match`` (a slot that is no longer ours is left alone)."""
        if self.etag is None:
            return
        with contextlib.suppress(PreconditionFailedError, NotFoundError):
            self.session.delete_object(self.key, if_match=self.etag)
        self.etag = None

    def break_stale(self, etag: str) -> None:
        """Delete a stale holder's slot, only if it is still that version."""
        with contextlib.suppress(PreconditionFailedError, NotFoundError, ConflictError):
            self.session.delete_object(self.key, if_match=etag)


def _abandon(keeper: _Keeper | None, owned: list[Any]) -> None:
    """Finalizer: stop the lease and delete what is left (best effort)."""
    if keeper is not None:
        keeper.stop()
    for thing in owned:
        try:
            if isinstance(thing, _Slot):
                thing.remove()
            else:
                thing.delete()
        except Exception as exc:  # finalizers must not raise
            _log.debug("lock cleanup failed: %s", exc)


# -- the public lock ---------------------------------------------------------------------


@dataclass(frozen=True)
class LockInfo:
    """What :meth:`ObjectLock.other_locks` reports about one other contender or holder.

    Supports ``info["name"]`` for each attribute, like the seed's dictionaries.

    Attributes:
        lock_id: Its id.
        exclusive: Its mode.
        method: ``"listing"`` or ``"conditional"``.
        refreshed: Server time of its last sign of life (lease refresh).
        ticket_time: For the listing method, its ``seq-1`` timestamp (``None`` while it is
            registering, and for the conditional method).
        lease: Its lease in seconds.
        stale: Whether its lease has expired (it no longer blocks anybody).
        keys: The object keys that represent it.
    """

    lock_id: str
    exclusive: bool
    method: str
    refreshed: datetime | None
    ticket_time: datetime | None
    lease: float | None
    stale: bool
    keys: tuple[str, ...] = field(default=())

    @property
    def lock_type(self) -> str:
        """``"exclusive"`` or ``"shared"`` (the seed's name for the mode)."""
        return "exclusive" if self.exclusive else "shared"

    def __getitem__(self, name: str) -> Any:
        if name.startswith("_") or not hasattr(self, name):
            raise KeyError(name)
        return getattr(self, name)


Method = Literal["auto", "listing", "conditional"]
_Outcome = Literal["won", "wait", "yield"]


def _check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return number


class ObjectLock:
    """A distributed shared/exclusive lock named ``key``, kept in the session's bucket.

    Usually created with :meth:`BaseSession.lock <s3func.session.BaseSession.lock>`::

        with session.lock("nightly-job"):
            ...

        lock = session.lock("dataset", timeout=30)
        if lock.acquire(exclusive=False):      # shared: readers coexist
            try:
                ...
            finally:
                lock.release()

    Each ``ObjectLock`` is one contender with one ``lock_id``; use one object per thread or
    process. Objects live under ``key + ".lock/"``.

    Args:
        session: The session whose bucket holds the lock (any ``BaseSession``; every request
            goes through it, with its region, credentials, timeouts and retries).
        key: The lock's name (an object key; the lock's objects live under ``key.lock/``).
        lock_id: Our id (letters, digits and ``_``, at most 64). Give the id of an earlier
            contender to take over its ticket after a restart: a ticket whose lease is still
            live keeps its place in the queue (the election is still run; a ticket is never
            taken for the lock itself). Never give two live contenders the same id.
        method: ``"listing"`` (the default: the bakery election, works on every endpoint),
            ``"conditional"`` (conditional writes; refused with
            :class:`~s3func.errors.LockError` unless the endpoint passes the probe of
            :func:`probe_conditional_writes`), or ``"auto"`` (conditional when the probe
            passes, else listing). The probe runs once per endpoint and bucket.
        exclusive: The mode used by ``with``.
        timeout: The timeout used by ``with`` (``-1``: wait forever).
        lease: Seconds a holder (or waiter) stays valid without refreshing. A holder killed
            with ``SIGKILL`` blocks others for at most about ``lease + 2 + lease/20`` seconds
            plus one ``refresh_interval``.
        refresh_interval: Seconds between lease refreshes (default ``lease / 4``).
        poll_interval: Seconds between attempts while waiting (randomised by +-25 %).
        visibility_timeout: Seconds to wait for our own ticket to appear in listings.
        clock: A monotonic clock (for tests).
        sleep: A sleep function (for tests).

    Raises:
        ConfigurationError: an invalid argument.
    """

    def __init__(
        self,
        session: BaseSession,
        key: str,
        lock_id: str | None = None,
        *,
        method: Method = "listing",
        exclusive: bool = True,
        timeout: float = -1,
        lease: float = 30.0,
        refresh_interval: float | None = None,
        poll_interval: float = 0.25,
        visibility_timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        _autorefresh: bool = True,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigurationError("the lock key must be a non-empty string")
        if lock_id is None:
            lock_id = secrets.token_hex(8)
            self._user_id = False
        else:
            if not isinstance(lock_id, str) or not _ID_RE.fullmatch(lock_id):
                raise ConfigurationError(
                    f"lock_id must be 1-64 letters, digits or '_', got {lock_id!r}"
                )
            self._user_id = True
        if method not in ("auto", "listing", "conditional"):
            raise ConfigurationError(
                f"method must be 'auto', 'listing' or 'conditional', got {method!r}"
            )
        self._lease = _check_positive("lease", lease)
        lease_ms = round(self._lease * 1000)
        if not _MIN_LEASE_MS <= lease_ms <= _MAX_LEASE_MS:
            raise ConfigurationError("lease must be between 0.1 seconds and 7 days")
        self._lease_ms = lease_ms
        interval = self._lease / 4 if refresh_interval is None else refresh_interval
        self._refresh_interval = _check_positive("refresh_interval", interval)
        if self._refresh_interval >= self._lease / 2:
            raise ConfigurationError("refresh_interval must be less than half the lease")
        self._poll = _check_positive("poll_interval", poll_interval)
        self._visibility_timeout = _check_positive(
            "visibility_timeout", visibility_timeout, allow_zero=True
        )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or (timeout < 0 and timeout != -1)
        ):
            raise ConfigurationError("timeout must be -1 (forever) or a number >= 0")
        self._timeout = float(timeout)
        self._exclusive_default = bool(exclusive)
        self._session = session
        self._key = key
        self._prefix = lock_prefix(key)
        self._lock_id = lock_id
        self._method_option: Method = method
        self._method: Literal["listing", "conditional"] | None = (
            "listing" if method == "listing" else None
        )
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._autorefresh = _autorefresh
        self._server = _ServerClock(self._clock)
        self._state = threading.RLock()
        self._held = False
        self._held_exclusive = True
        self._ticket: _Ticket | None = None
        self._slot: _Slot | None = None
        self._reader: _Reader | None = None
        self._keeper: _Keeper | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._recover_pending = self._user_id
        self._rng = random.Random()

    # -- properties ------------------------------------------------------------------------

    @property
    def lock_id(self) -> str:
        """This contender's id (random unless given)."""
        return self._lock_id

    @property
    def key(self) -> str:
        """The lock's name."""
        return self._key

    @property
    def prefix(self) -> str:
        """The prefix under which the lock's objects live (``key + ".lock/"``)."""
        return self._prefix

    @property
    def method(self) -> str:
        """``"listing"``, ``"conditional"``, or ``"auto"`` until the first acquisition."""
        return self._method or self._method_option

    @property
    def held(self) -> bool:
        """Whether this object won the lock and has not released it (no request is made).

        Use :meth:`verify` to check with the server that the lock is still ours.
        """
        return self._held

    @property
    def lease(self) -> float:
        """The lease, in seconds."""
        return self._lease

    def __repr__(self) -> str:
        state = "held" if self._held else "not held"
        return f"ObjectLock({self._key!r}, lock_id={self._lock_id!r}, {self.method}, {state})"

    # -- acquire / release -------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1, exclusive: bool = True) -> bool:
        """Acquire the lock, like :meth:`threading.Lock.acquire`.

        Args:
            blocking: Wait for the lock (``False``: try once).
            timeout: With ``blocking``, the most seconds to wait (``-1``: forever; ``0``: try
                once).
            exclusive: ``True`` for an exclusive (writer) lock, ``False`` for a shared
                (reader) lock that coexists with other shared holders.

        Returns:
            Whether the lock was acquired. Acquiring a lock this object already holds in the
            same mode returns ``True`` at once.

        Raises:
            ConfigurationError: a timeout with ``blocking=False``, or a negative timeout.
            LockLostError: our ticket was deleted (broken) or our lease lapsed while we
                waited.
            LockError: the lock cannot work here (``method="conditional"`` on an endpoint
                without atomic conditional writes, our ticket never became visible, or a
                mode change while held).
            S3FuncError: a request failed; whatever was written is cleaned up (or expires).
        """
        if not blocking and timeout != -1:
            raise ConfigurationError("can't specify a timeout for a non-blocking call")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ConfigurationError("timeout must be a number")
        if timeout < 0 and timeout != -1:
            raise ConfigurationError("timeout value must be -1 or a non-negative number")
        exclusive = bool(exclusive)
        with self._state:
            if self._held:
                if self._keeper is not None and self._keeper.lost is not None:
                    self._drop(quiet=True)
                elif self._held_exclusive != exclusive:
                    raise LockError(
                        "this lock is already held in the other mode; release it first",
                        key=self._key,
                    )
                else:
                    return True
            deadline = math.inf if (timeout == -1 and blocking) else self._clock() + timeout
            method = self._resolve_method()
            try:
                if method == "conditional":
                    won = self._acquire_conditional(exclusive, blocking, deadline)
                else:
                    won = self._acquire_listing(exclusive, blocking, deadline)
            except BaseException:
                self._drop(quiet=True)
                raise
            if won:
                self._held = True
                self._held_exclusive = exclusive
            else:
                self._drop(quiet=True)
            return won

    def release(self) -> None:
        """Release the lock (a no-op when it is not held).

        The lease stops first, so even when the deletes fail (the error is raised) our
        objects stop blocking others once the lease expires.

        Raises:
            LockError: our objects could not be deleted; they expire after the lease.
        """
        with self._state:
            self._drop(quiet=False)

    def _drop(self, *, quiet: bool) -> None:
        keeper, ticket, slot, reader = self._keeper, self._ticket, self._slot, self._reader
        self._held = False
        self._keeper = None
        self._ticket = None
        self._slot = None
        self._reader = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if keeper is not None:
            keeper.stop()
        errors: list[BaseException] = []
        if ticket is not None:
            errors.extend(ticket.delete())
        if reader is not None:
            errors.extend(reader.delete())
        if slot is not None:
            try:
                slot.remove()
            except Exception as exc:
                errors.append(exc)
        if errors and not quiet:
            raise LockError(
                f"could not delete our lock objects ({errors[0]}); they stop blocking others "
                f"once the lease expires (about {self._lease + grace_for(self._lease):.0f} s)",
                key=self._key,
            ) from errors[0]
        if errors:
            _log.warning("lock %s: cleanup failed: %s", self._key, errors[0])

    def __enter__(self) -> ObjectLock:
        if not self.acquire(
            blocking=True, timeout=self._timeout, exclusive=self._exclusive_default
        ):
            raise LockTimeoutError(
                f"could not acquire lock {self._key!r} within {self._timeout:g} s",
                key=self._key,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lost = self._keeper.lost if self._keeper is not None else None
        try:
            self.release()
        except LockError:
            if exc_type is None:
                raise
            _log.warning("lock %s: release failed while an exception was propagating", self._key)
        if lost is not None and exc_type is None:
            raise LockLostError(f"lock {self._key!r} was lost while held: {lost}", key=self._key)

    # -- shared helpers ----------------------------------------------------------------------

    def _resolve_method(self) -> Literal["listing", "conditional"]:
        if self._method is not None:
            return self._method
        support = _cached_probe(self._session, self._prefix)
        if support.supported:
            self._method = "conditional"
        elif self._method_option == "conditional":
            raise LockError(
                f"method='conditional' refused: {support.reason}; use method='listing'",
                key=self._key,
            )
        else:
            _log.debug("lock %s: using the listing method: %s", self._key, support.reason)
            self._method = "listing"
        return self._method

    def _list(self) -> Snapshot:
        listing = self._session.list_objects(prefix=self._prefix)
        return parse_listing(self._prefix, listing.iter_objects())

    def _slot_handle(self) -> _Slot:
        return _Slot(
            self._session,
            self._prefix + SLOT_NAME,
            self._lock_id,
            self._lease,
            self._server,
            self._clock,
        )

    def _snapshot(self) -> tuple[Snapshot, SlotView | None]:
        snap = self._list()
        return snap, (self._slot_handle().read() if snap.slot_present else None)

    def _start_keeper(self, refresh: Callable[[], None], sent: float) -> _Keeper:
        keeper = _Keeper(refresh, self._lease, self._refresh_interval, self._clock, self._key)
        keeper.begin(sent)
        self._keeper = keeper
        owned = [x for x in (self._ticket, self._reader, self._slot) if x is not None]
        self._finalizer = weakref.finalize(self, _abandon, keeper, owned)
        if self._autorefresh:
            keeper.start()
        return keeper

    def _pause(self, deadline: float) -> None:
        delay = self._poll * self._rng.uniform(0.75, 1.25)
        remaining = deadline - self._clock()
        self._sleep(max(0.0, min(delay, remaining)))

    def _delete_objects(self, objects: Iterable[TicketObject | ReaderObject]) -> None:
        """Delete other contenders' objects (``seq-1`` first), ignoring failures."""
        for obj in sorted(objects, key=lambda o: -getattr(o, "seq", 0)):
            try:
                self._session.delete_object(obj.key, version_id=obj.version_id)
            except S3FuncError as exc:
                _log.debug("could not delete %s: %s", obj.key, exc)

    # -- the listing method ------------------------------------------------------------------

    def _recover(self, exclusive: bool) -> _Ticket | None:
        """Adopt our own live ticket left by an earlier process with the same ``lock_id``."""
        self._recover_pending = False
        snap = self._list()
        mine = [c for c in contenders(snap).values() if c.lock_id == self._lock_id]
        if not mine:
            return None
        usable = [
            c
            for c in mine
            if c.order is not None
            and c.exclusive == exclusive
            and c.lease is not None
            and round(c.lease * 1000) == self._lease_ms
            and c.last_seen is not None
        ]
        best = max(usable, key=lambda c: c.order or ()) if usable else None
        for c in mine:
            if c is not best:
                self._delete_objects(c.objects)
        if best is None or best.last_seen is None:
            return None
        ticket = _Ticket(
            self._session, self._prefix, self._lock_id, best.nonce, exclusive, self._lease_ms
        )
        for obj in best.objects:
            ticket.owned.versions.setdefault(obj.key, []).append(obj.version_id)
            if obj.seq == 1:
                ticket.seq1_key = obj.key
        self._ticket = ticket
        sent = self._clock()
        ticket.refresh()
        self._start_keeper(ticket.refresh, sent)
        after = contenders(self._list()).get((self._lock_id, best.nonce))
        if (
            after is None
            or after.registered_at is None
            or (after.registered_at - best.last_seen).total_seconds() > self._lease
        ):
            # The lease may have lapsed between the owner's last refresh and ours: somebody
            # may have ignored the ticket meanwhile, so it cannot keep its place.
            self._drop(quiet=True)
            return None
        ticket.confirmed = True
        return ticket

    def _doorway(self, exclusive: bool) -> _Ticket:
        """Write ``seq-0``, list once for the bakery number, write ``seq-1``."""
        if self._recover_pending:
            recovered = self._recover(exclusive)
            if recovered is not None:
                return recovered
        ticket = _Ticket(
            self._session,
            self._prefix,
            self._lock_id,
            secrets.token_hex(4),
            exclusive,
            self._lease_ms,
        )
        self._ticket = ticket
        sent = self._clock()
        ticket.write_seq0()
        self._start_keeper(ticket.refresh, sent)
        doorway = self._list()
        leftovers = [
            t for t in doorway.tickets if t.lock_id == self._lock_id and t.nonce != ticket.nonce
        ]
        if leftovers:
            self._delete_objects(leftovers)
        ticket.write_seq1(bakery_number(doorway, self._lock_id))
        return ticket

    def _acquire_listing(self, exclusive: bool, blocking: bool, deadline: float) -> bool:
        ticket = self._doorway(exclusive)
        keeper = self._keeper
        assert keeper is not None
        started = self._clock()
        while True:
            sent = self._clock()
            snap, slot = self._snapshot()
            verdict = decide(snap, ticket.me(), slot=slot)
            if verdict.decision is not Decision.LOST and not keeper.valid(sent):
                verdict = Verdict(Decision.LOST, keeper.lost or "our lease expired while waiting")
            if verdict.decision is Decision.LOST:
                raise LockLostError(f"lock {self._key!r}: {verdict.reason}", key=self._key)
            if verdict.decision is Decision.PENDING:
                if self._clock() - started > self._visibility_timeout:
                    raise LockError(
                        f"our lock ticket did not appear in listings within "
                        f"{self._visibility_timeout:g} s; listings here cannot be trusted",
                        key=self._key,
                    )
            else:
                ticket.confirmed = True
            if verdict.decision is Decision.ACQUIRED:
                groups = contenders(snap)
                for ident in verdict.stale:
                    if ident in groups:
                        self._delete_objects(groups[ident].objects)
                self._clean_stale_readers(snap)
                return True
            if not blocking or self._clock() >= deadline:
                return False
            self._pause(deadline)

    # -- the conditional method ----------------------------------------------------------------

    def _acquire_conditional(self, exclusive: bool, blocking: bool, deadline: float) -> bool:
        first = True
        while True:
            outcome = self._try_slot(blocking, deadline, first) if exclusive else self._try_reader()
            if outcome == "yield":
                # Listing-method contenders are registered: join their queue for this
                # acquisition instead of stepping back forever (the election also honours
                # the slot and readers, so both methods stay mutually exclusive).
                return self._acquire_listing(exclusive, blocking, deadline)
            if outcome == "won":
                return True
            first = False
            if not blocking or self._clock() >= deadline:
                return False
            self._pause(deadline)

    def _try_slot(self, blocking: bool, deadline: float, first: bool) -> _Outcome:
        """One attempt at the exclusive slot, then wait (holding it) for readers to leave."""
        slot = self._slot_handle()
        if not first or self._server.now() is None:
            # Waiting: poll with a GET (conditional PUTs that collide are slow on some
            # servers); the first GET also gives the server time for the slot's lease.
            view = slot.read()
            if view.live_holder() is not None and not self._adoptable(view):
                return "wait"
        for _ in range(4):
            sent = self._clock()
            try:
                slot.create(sent)
                break
            except (PreconditionFailedError, ConflictError):
                view = slot.read()
                if view.holder is None:
                    continue
                if self._adoptable(view):
                    slot.etag = view.etag
                    sent = self._clock()
                    slot.refresh()
                    break
                if view.etag is not None and view.holder.stale(view.now):
                    slot.break_stale(view.etag)
                    continue
                return "wait"
        else:
            return "wait"
        self._recover_pending = False
        self._slot = slot
        keeper = self._start_keeper(slot.refresh, sent)
        # Listing-method contenders already registered may be holding: yield to them. Those
        # registering after our slot was written will see it and wait.
        snap = self._list()
        if listing_blockers(snap, self._lock_id, True):
            self._drop(quiet=True)
            return "yield"
        # Readers registered before our slot may be reading: wait for them while holding
        # the slot (readers arriving later see the slot and step back).
        while live_readers(snap, self._lock_id):
            if not keeper.valid():
                raise LockLostError(f"lock {self._key!r}: {keeper.lost or 'lease lapsed'}")
            if not blocking or self._clock() >= deadline:
                self._drop(quiet=True)
                return "wait"
            self._pause(deadline)
            snap = self._list()
        self._clean_stale_readers(snap)
        return "won"

    def _clean_stale_readers(self, snap: Snapshot) -> None:
        """Delete reader objects whose lease expired (crashed readers), best effort."""
        stale = [r for r in snap.readers if reader_stale(r, snap.newest)]
        if stale:
            self._delete_objects(stale)

    def _adoptable(self, view: SlotView) -> bool:
        """Whether ``view`` is our own live slot from an earlier process (``lock_id=``)."""
        h = view.holder
        return (
            self._recover_pending
            and h is not None
            and h.lock_id == self._lock_id
            and view.now is not None
            and view.now - h.refreshed <= self._lease / 2
        )

    def _try_reader(self) -> _Outcome:
        """Register as a reader, then check the slot and listing-method writers."""
        reader = _Reader(self._session, self._prefix, self._lock_id, self._lease_ms)
        self._reader = reader
        sent = self._clock()
        reader.write()
        self._start_keeper(reader.refresh, sent)
        snap = self._list()
        if listing_blockers(snap, self._lock_id, False):
            self._drop(quiet=True)
            return "yield"
        if snap.slot_present and self._slot_handle().read().live_holder(self._lock_id):
            self._drop(quiet=True)
            return "wait"
        self._recover_pending = False
        return "won"

    # -- inspection --------------------------------------------------------------------------

    def locked(self) -> bool:
        """Whether anybody holds the lock or is acquiring it (one listing).

        True when this object holds it, or when a live ticket, reader or slot of another
        contender exists. Expired ones (crashed holders) do not count.
        """
        if self._held:
            return True
        snap, slot = self._snapshot()
        for c in contenders(snap).values():
            live = c.registered_at is not None and not is_stale(c, snap.newest)
            if c.lock_id != self._lock_id and live:
                return True
        if live_readers(snap, self._lock_id):
            return True
        return slot is not None and slot.live_holder(self._lock_id) is not None

    def verify(self) -> bool:
        """Check with the server that this object still holds the lock.

        Call it before committing work done under the lock: it returns ``False`` when the
        lease lapsed (the holder was paused or cut off for longer than the lease), when our
        ticket, reader object or slot was deleted (broken), or when the lock is not held.
        """
        with self._state:
            keeper = self._keeper
            if not self._held or keeper is None:
                return False
            sent = self._clock()
            if not keeper.valid(sent):
                return False
            if self._ticket is not None:
                snap = self._list()
                verdict = decide(snap, self._ticket.me(), holding=True)
                ok = verdict.decision is Decision.ACQUIRED
            elif self._slot is not None:
                view = self._slot_handle().read()
                ok = view.holder is not None and view.holder.lock_id == self._lock_id
            elif self._reader is not None:
                snap = self._list()
                ok = any(r.key == self._reader.key for r in snap.readers)
            else:
                ok = False
            return ok and keeper.valid(sent)

    def other_locks(self) -> dict[str, LockInfo]:
        """Describe the other contenders and holders, keyed by ``lock_id``.

        Includes those whose lease expired (``stale=True``) until somebody removes them.
        """
        snap, slot = self._snapshot()
        out: dict[str, LockInfo] = {}
        if slot is not None and slot.holder is not None:
            h = slot.holder
            if h.lock_id != self._lock_id:
                out[h.lock_id] = LockInfo(
                    lock_id=h.lock_id,
                    exclusive=True,
                    method="conditional",
                    refreshed=datetime.fromtimestamp(h.refreshed, _UTC),
                    ticket_time=None,
                    lease=h.lease,
                    stale=h.stale(slot.now),
                    keys=(self._prefix + SLOT_NAME,),
                )
        for r in snap.readers:
            if r.lock_id != self._lock_id:
                out[r.lock_id] = LockInfo(
                    lock_id=r.lock_id,
                    exclusive=False,
                    method="conditional",
                    refreshed=r.last_modified,
                    ticket_time=None,
                    lease=r.lease,
                    stale=reader_stale(r, snap.newest),
                    keys=(r.key,),
                )
        for c in sorted(contenders(snap).values(), key=lambda c: c.last_seen or _EPOCH):
            if c.lock_id == self._lock_id or c.registered_at is None:
                continue
            out[c.lock_id] = LockInfo(
                lock_id=c.lock_id,
                exclusive=c.exclusive,
                method="listing",
                refreshed=c.last_seen,
                ticket_time=c.ticket_at,
                lease=c.lease,
                stale=is_stale(c, snap.newest),
                keys=c.keys,
            )
        return out

    def _listing_server_now(self) -> datetime:
        """Server time in the listing clock: HEAD of a freshly written probe object."""
        probe = f"{self._prefix}probe-{secrets.token_hex(6)}-clock"
        resp = self._session.put_object(probe, BODY)
        try:
            head = self._session.head_object(probe)
        finally:
            try:
                self._session.delete_object(
                    probe, version_id=resp.version_id if _is_version(resp.version_id) else None
                )
            except S3FuncError as exc:
                _log.debug("could not delete clock probe: %s", exc)
        stamp = head.last_modified
        if stamp is None:
            raise LockError("the server gave no Last-Modified for the clock probe", key=probe)
        return stamp

    def break_other_locks(self, older_than: timedelta | datetime | None = None) -> list[str]:
        """Delete other contenders' tickets, reader objects and slot; return their ids.

        Our own objects are never touched. A broken holder notices at its next lease
        refresh or :meth:`verify`.

        Args:
            older_than: ``None`` (default): only those whose lease expired (crashed
                processes; safe at any time). A :class:`~datetime.timedelta`: those not
                refreshed for that long (measured with the server's clock). An aware
                :class:`~datetime.datetime`: those not refreshed since then.
                ``timedelta(0)`` breaks every other contender, live ones included.

        Returns:
            The ``lock_id`` of every contender broken, sorted.

        Raises:
            ConfigurationError: a naive datetime, a negative timedelta, or another type.
        """
        if isinstance(older_than, datetime):
            if older_than.tzinfo is None or older_than.utcoffset() is None:
                raise ConfigurationError(
                    "break_other_locks needs an aware datetime (e.g. with tzinfo=timezone.utc); "
                    "a naive datetime is ambiguous"
                )
        elif isinstance(older_than, timedelta):
            if older_than < timedelta(0):
                raise ConfigurationError("older_than must not be negative")
        elif older_than is not None:
            raise ConfigurationError(
                "older_than must be None, a timedelta or an aware datetime, "
                f"not {type(older_than).__name__}"
            )
        broken: set[str] = set()
        snap, slot = self._snapshot()
        groups = [c for c in contenders(snap).values() if c.lock_id != self._lock_id]
        readers = [r for r in snap.readers if r.lock_id != self._lock_id]
        cutoff: datetime | None = None
        if isinstance(older_than, datetime):
            cutoff = older_than.astimezone(_UTC)
        elif isinstance(older_than, timedelta) and (groups or readers):
            now = self._listing_server_now()
            if snap.newest is not None:
                now = max(now, snap.newest)
            cutoff = now - older_than
        for c in groups:
            seen = c.last_seen
            assert seen is not None
            if cutoff is None:
                doomed = is_stale(c, snap.newest) or c.registered_at is None
            else:
                doomed = seen <= cutoff
            if doomed:
                self._delete_objects(c.objects)
                broken.add(c.lock_id)
        for r in readers:
            if reader_stale(r, snap.newest) if cutoff is None else r.last_modified <= cutoff:
                self._delete_objects([r])
                broken.add(r.lock_id)
        if slot is not None and slot.holder is not None and slot.etag is not None:
            h = slot.holder
            if isinstance(older_than, datetime):
                doomed = h.refreshed <= older_than.timestamp()
            elif isinstance(older_than, timedelta):
                doomed = slot.now is not None and (
                    not older_than or h.refreshed <= slot.now - older_than.total_seconds()
                )
            else:
                doomed = h.stale(slot.now)
            if doomed and h.lock_id != self._lock_id:
                self._slot_handle().break_stale(slot.etag)
                broken.add(h.lock_id)
        return sorted(broken)

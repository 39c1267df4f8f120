"""The lock's pure election logic (table tests, an exhaustive interleaving check) and its I/O
shell against an in-memory fake session with an injected clock (no network, no sleeping)."""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from s3func import lock as L
from s3func.errors import (
    ConfigurationError,
    LockError,
    LockLostError,
    LockTimeoutError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    ServerError,
)
from s3func.lock import (
    BODY,
    Decision,
    Me,
    ObjectLock,
    ReaderObject,
    SlotHolder,
    SlotView,
    Snapshot,
    TicketObject,
    bakery_number,
    decide,
    grace_for,
    lock_prefix,
    parse_listing,
    parse_reader_name,
    parse_slot,
    parse_ticket_name,
    reader_name,
    render_slot,
    seq0_name,
    seq1_name,
)
from s3func.models import ListResult, ObjectInfo, Response

UTC = timezone.utc
T0 = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
PREFIX = lock_prefix("k")


# -- helpers for table tests -------------------------------------------------------------


def tk(
    lock_id: str,
    seq: int,
    at: float,
    *,
    mode: str = "x",
    value: int | None = None,
    nonce: str = "0000000a",
) -> TicketObject:
    """A ticket object at T0 + ``at`` seconds (seq-0 value: lease ms, seq-1: number)."""
    if value is None:
        value = 30_000 if seq == 0 else 1
    name = (seq0_name if seq == 0 else seq1_name)(lock_id, nonce, mode == "x", value)
    return TicketObject(
        key=PREFIX + name,
        lock_id=lock_id,
        nonce=nonce,
        seq=seq,
        exclusive=mode == "x",
        value=value,
        last_modified=T0 + timedelta(seconds=at),
    )


def both(lock_id: str, at: float, *, mode: str = "x", number: int = 1, **kw: Any) -> list:
    return [tk(lock_id, 0, at, mode=mode, **kw), tk(lock_id, 1, at, mode=mode, value=number, **kw)]


def snap(*groups: Any, readers: tuple = (), slot: bool = False) -> Snapshot:
    tickets = tuple(
        itertools.chain.from_iterable(g if isinstance(g, list) else [g] for g in groups)
    )
    newest = max((t.last_modified for t in tickets), default=None)
    stamps = [t.last_modified for t in tickets] + [r.last_modified for r in readers]
    newest = max(stamps, default=None)
    return Snapshot(tickets, tuple(readers), slot, (), newest)


ME = Me("m", "0000000a", True, confirmed=True)


# -- names and parsing -----------------------------------------------------------------------


def test_ticket_names_round_trip() -> None:
    assert parse_ticket_name(seq0_name("abc_1", "0123abcd", True, 30_000)) == (
        "abc_1",
        "0123abcd",
        0,
        True,
        30_000,
    )
    assert parse_ticket_name(seq1_name("Z", "ffffffff", False, 7)) == ("Z", "ffffffff", 1, False, 7)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "slot",
        "reader-abc-30000",
        "abc",
        "abc-0123abcd-0x",  # no value
        "abc-0123abcd-0x-30000/",  # trailing slash
        "abc-0123abcd-2x-1",  # bad seq
        "abc-0123abcd-1q-1",  # bad mode
        "abc-0123ABCD-1x-1",  # upper-case nonce
        "abc-0123abc-1x-1",  # short nonce
        "a-b-0123abcd-1x-1",  # '-' in id
        "abc-0123abcd-1x-01",  # leading zero
        "abc-0123abcd-1x-1 ",
        "abc-0123abcd-0x-99",  # lease below 100 ms
        "abc-0123abcd-0x-999999999999",  # absurd lease
        "x.lock/abc-0123abcd-1x-1",  # a nested lock's ticket
        "probe-0a0b0c0d0e0f-a",
        "a" * 65 + "-0123abcd-1x-1",  # id too long
        "abc.-0123abcd-1x-1",
    ],
)
def test_parse_rejects_anything_that_is_not_exactly_a_ticket(name: str) -> None:
    assert parse_ticket_name(name) is None


def _info(key: str, at: float, size: int = len(BODY), version: str | None = None) -> ObjectInfo:
    return ObjectInfo(
        key, content_length=size, last_modified=T0 + timedelta(seconds=at), version_id=version
    )


def test_parse_listing_ignores_foreign_objects_and_other_locks() -> None:
    good0 = PREFIX + seq0_name("a", "0000000a", True, 30_000)
    good1 = PREFIX + seq1_name("a", "0000000a", True, 3)
    objs = [
        _info(good0, 0),
        _info(good1, 1, version="v1"),
        _info(PREFIX + "README.txt", 5),
        _info(PREFIX + seq1_name("b", "0000000b", True, 1), 0, size=1),  # wrong size
        _info("k.lock.lock/" + seq1_name("c", "0000000c", True, 1), 0),  # lock "k.lock"
        _info(PREFIX + "x.lock/" + seq1_name("d", "0000000d", True, 1), 0),  # lock "k.lock/x"
        _info(PREFIX + "probe-0123456789ab-a", 9),
        _info("other/" + seq1_name("e", "0000000e", True, 1), 0),
        ObjectInfo(PREFIX + seq1_name("f", "0000000f", True, 1), content_length=len(BODY)),
    ]
    parsed = parse_listing(PREFIX, objs)
    assert [t.key for t in parsed.tickets] == [good0, good1]
    assert parsed.tickets[1].version_id == "v1" and parsed.tickets[1].value == 3
    assert parsed.newest == T0 + timedelta(seconds=1)  # foreign objects never move "now"
    assert PREFIX + "README.txt" in parsed.ignored
    assert not parsed.slot_present and parsed.readers == ()


def test_prefixes_of_k_and_k_dot_lock_are_disjoint() -> None:
    assert lock_prefix("k") == "k.lock/"
    assert lock_prefix("k.lock") == "k.lock.lock/"
    assert not lock_prefix("k.lock").startswith(lock_prefix("k"))
    nested = lock_prefix("k.lock/x")
    assert nested.startswith(lock_prefix("k"))  # listed under "k.lock/" ...
    name = nested[len(lock_prefix("k")) :] + seq1_name("d", "0000000d", True, 1)
    assert parse_ticket_name(name) is None  # ... but never parsed as a ticket of "k"


def test_slot_and_readers_are_parsed() -> None:
    objs = [
        _info(PREFIX + "slot", 42, size=123),
        _info(PREFIX + reader_name("r1", 5_000), 40, version="v9"),
        _info(PREFIX + reader_name("r2", 5_000), 40, size=3),  # wrong size: foreign
        _info(PREFIX + "reader-r3-99", 40),  # lease too short: foreign
    ]
    parsed = parse_listing(PREFIX, objs)
    assert parsed.slot_present and parsed.newest == T0 + timedelta(seconds=42)
    assert parsed.readers == (
        ReaderObject(PREFIX + "reader-r1-5000", "r1", 5.0, T0 + timedelta(seconds=40), "v9"),
    )
    assert parse_reader_name("reader-r1-5000") == ("r1", 5_000)
    assert parse_reader_name("reader-r1-5000x") is None


# -- the election: table tests ---------------------------------------------------------------

ACQ, WAIT, LOST, PEND = Decision.ACQUIRED, Decision.WAIT, Decision.LOST, Decision.PENDING

DECIDE_TABLE = [
    # (case, snapshot groups, me, expected decision, expected blockers)
    ("alone", [both("m", 0)], ME, ACQ, ()),
    ("older exclusive ahead", [both("a", 0), both("m", 1)], ME, WAIT, ("a",)),
    ("younger behind", [both("m", 0), both("a", 1)], ME, ACQ, ()),
    (
        "same second, lower bakery number is ahead",
        [both("z", 0, number=1), both("m", 0, number=2)],
        ME,
        WAIT,
        ("z",),
    ),
    (
        "same second, higher bakery number is behind",
        [both("a", 0, number=3), both("m", 0, number=2)],
        ME,
        ACQ,
        (),
    ),
    (
        "same second and number: lower id first",
        [both("a", 0), both("m", 0)],
        ME,
        WAIT,
        ("a",),
    ),
    ("same second and number: higher id after", [both("z", 0), both("m", 0)], ME, ACQ, ()),
    (
        "listing time wins over the bakery number",
        [both("a", 1, number=1), both("m", 0, number=9)],
        ME,
        ACQ,
        (),
    ),
    ("registering contender blocks", [tk("z", 0, 5), both("m", 0)], ME, WAIT, ("z",)),
    (
        "registering shared does not block a shared",
        [tk("z", 0, 5, mode="s"), both("m", 0, mode="s")],
        replace(ME, exclusive=False),
        ACQ,
        (),
    ),
    (
        "registering shared blocks an exclusive",
        [tk("z", 0, 5, mode="s"), both("m", 0)],
        ME,
        WAIT,
        ("z",),
    ),
    ("leaving contender (seq-1 only) ignored", [tk("a", 1, 0), both("m", 1)], ME, ACQ, ()),
    (
        "our seq-0 broken while in the doorway (seq-1 only, not yet confirmed)",
        [tk("m", 1, 0)],
        replace(ME, confirmed=False),
        LOST,
        (),
    ),
    ("our tickets not visible yet", [both("a", 0)], replace(ME, confirmed=False), PEND, ()),
    (
        "older shared does not block a shared",
        [both("a", 0, mode="s"), both("m", 1, mode="s")],
        replace(ME, exclusive=False),
        ACQ,
        (),
    ),
    (
        "older exclusive blocks a shared",
        [both("a", 0), both("m", 1, mode="s")],
        replace(ME, exclusive=False),
        WAIT,
        ("a",),
    ),
    ("older shared blocks an exclusive", [both("a", 0, mode="s"), both("m", 1)], ME, WAIT, ("a",)),
    (
        "every competitor is checked, not only the last",
        [both("a", 0), both("m", 2), both("y", 3), both("z", 4)],
        ME,
        WAIT,
        ("a",),
    ),
    (
        "older competitor listed last",
        [both("m", 2), both("y", 3), both("z", 4), both("0", 1)],
        ME,
        WAIT,
        ("0",),
    ),
    (
        "stale older ticket is ignored",
        [both("a", 0), both("m", 100), tk("z", 0, 100)],
        replace(ME, exclusive=False),
        WAIT,  # z is registering (and exclusive) -- a is stale and ignored
        ("z",),
    ),
    ("stale older ticket is ignored (alone)", [both("a", 0), both("m", 100)], ME, ACQ, ()),
    (
        "our own leftovers (same id, other nonce) are ignored",
        [both("m", 0, nonce="0000000b"), both("m", 5)],
        ME,
        ACQ,
        (),
    ),
    ("own ticket not visible yet", [both("a", 0)], replace(ME, confirmed=False), PEND, ()),
    ("own ticket deleted after being seen", [both("a", 0)], ME, LOST, ()),
    (
        "own seq-0 deleted (broken) while seq-1 remains: never a win",
        [tk("m", 1, 0)],
        ME,
        LOST,
        (),
    ),
    (
        "own seq-1 missing after being seen",
        [tk("m", 0, 0)],
        ME,
        LOST,
        (),
    ),
    ("own lease expired in the listing", [both("m", 0), both("z", 100)], ME, LOST, ()),
]


@pytest.mark.parametrize(
    ("groups", "me", "expected", "blockers"),
    [row[1:] for row in DECIDE_TABLE],
    ids=[row[0] for row in DECIDE_TABLE],
)
def test_decide_table(groups: list, me: Me, expected: Decision, blockers: tuple) -> None:
    verdict = decide(snap(*groups), me)
    assert verdict.decision is expected, verdict.reason
    assert verdict.blockers == blockers


def test_stale_tickets_are_reported() -> None:
    verdict = decide(snap(both("a", 0), both("m", 100)), ME)
    assert verdict.stale == (("a", "0000000a"),)


def test_staleness_boundary_uses_declared_lease_plus_grace() -> None:
    lease = 30.0
    edge = lease + grace_for(lease)
    ok = snap(both("a", 0), both("m", edge))
    assert decide(ok, ME).decision is WAIT  # exactly at the edge: still live
    gone = snap(both("a", 0), both("m", edge + 1))
    assert decide(gone, ME).decision is ACQ
    # A ticket that declared a long lease is judged by its own lease, not the observer's.
    long = snap(tk("a", 0, 0, value=600_000), tk("a", 1, 0), both("m", 100))
    assert L.contenders(long)[("a", "0000000a")].lease == 600.0
    assert decide(long, ME).decision is WAIT


def _slot(refreshed: float, lock_id: str = "h", lease: float = 30.0) -> SlotView:
    return SlotView(SlotHolder(lock_id, lease, T0.timestamp() + refreshed), "e", T0.timestamp())


def _reader(lock_id: str, at: float, lease: float = 30.0) -> ReaderObject:
    return ReaderObject(
        PREFIX + reader_name(lock_id, int(lease * 1000)), lock_id, lease, T0 + timedelta(seconds=at)
    )


def test_holding_ignores_registering_and_conditional_holders_but_not_an_older_ticket() -> None:
    me = ME
    registering = snap(both("m", 0), tk("z", 0, 0))
    assert decide(registering, me, holding=True).decision is ACQ
    assert decide(snap(both("m", 0)), me, holding=True, slot=_slot(0)).decision is ACQ
    assert decide(snap(both("m", 0)), me, slot=_slot(0)).decision is WAIT
    readers = snap(both("m", 0), readers=(_reader("r", 0),))
    assert decide(readers, me, holding=True).decision is ACQ
    older = snap(both("a", 0), both("m", 1))
    assert decide(older, me, holding=True).decision is WAIT


def test_conditional_holders_block_listing_contenders() -> None:
    s = snap(both("m", 0), slot=True)
    shared_me = replace(ME, exclusive=False)
    assert decide(s, ME, slot=_slot(0)).decision is WAIT
    assert decide(s, shared_me, slot=_slot(0)).decision is WAIT  # the slot is exclusive
    assert decide(s, ME, slot=_slot(-100)).decision is ACQ  # stale slot
    assert decide(s, ME, slot=_slot(0, lock_id="m")).decision is ACQ  # our own id
    assert decide(s, ME, slot=SlotView(None, None, T0.timestamp())).decision is ACQ
    live = snap(both("m", 0), readers=(_reader("r", 0),))
    assert decide(live, ME).decision is WAIT
    assert decide(live, ME).blockers == ("r",)
    assert (
        decide(snap(both("m", 0, mode="s"), readers=(_reader("r", 0),)), shared_me).decision is ACQ
    )
    stale = snap(both("m", 100), readers=(_reader("r", 0),))
    assert decide(stale, ME).decision is ACQ


def test_foreign_objects_do_not_change_the_decision() -> None:
    objs = [
        _info(PREFIX + seq0_name("m", "0000000a", True, 30_000), 0),
        _info(PREFIX + seq1_name("m", "0000000a", True, 1), 0),
    ]
    alone = decide(parse_listing(PREFIX, objs), ME)
    junk = [
        *objs,
        _info(PREFIX + "zzz", 0),
        _info(PREFIX + seq1_name("a", "0000000a", True, 1), 0, size=0),
        _info(PREFIX + "a/" + seq1_name("a", "0000000a", True, 1), 0),
    ]
    assert decide(parse_listing(PREFIX, junk), ME) == alone
    assert alone.decision is ACQ


def test_bakery_number_counts_every_visible_ticket_but_our_own() -> None:
    s = snap(both("a", 0, number=4), tk("b", 1, 0, value=9), both("m", 0, number=50))
    assert bakery_number(s, "m") == 10
    assert bakery_number(snap(), "m") == 1


def test_every_observer_agrees_on_one_winner_with_whole_second_ties() -> None:
    """Same snapshot, every complete contender asks: at most one exclusive winner, and shared
    winners only when no exclusive wins."""
    rng = random.Random(7)
    for _ in range(2000):
        groups = []
        ids = rng.sample(["a", "b", "c", "d", "e", "f"], rng.randint(2, 6))
        for i in ids:
            mode = rng.choice("xs")
            groups.append(both(i, rng.randint(0, 2), mode=mode, number=rng.randint(1, 3)))
        s = snap(*groups)
        winners = []
        for g in groups:
            me = Me(g[0].lock_id, g[0].nonce, g[0].exclusive, True)
            if decide(s, me).decision is ACQ:
                winners.append(g[0].exclusive)
        assert winners, "someone must win when nobody is registering"
        assert winners == [True] or all(not x for x in winners)


# -- exhaustive interleavings of the protocol --------------------------------------------------


class _Model:
    """Explicit-state model of contenders running the listing protocol on one strongly
    consistent store whose timestamps have whole-second resolution.

    A PUT takes two steps (the server stamps the object at some point while the request is
    open, and makes it visible later), the clock may tick between any two steps, and listings
    are atomic. The contender steps call the real ``parse_listing``, ``bakery_number`` and
    ``decide``.
    """

    def __init__(
        self,
        modes: str,
        *,
        rounds: int = 1,
        ticks: int = 2,
        number: Any = bakery_number,
        view: Any = None,
    ) -> None:
        self.modes = modes
        self.rounds = rounds
        self.ticks = ticks
        self.number = number
        self.view = view or (lambda s, me: s)

    def initial(self) -> tuple:
        # contender state: (pc, round, n, pending_ts)
        return ((), 0, 0, tuple((0, 0, 0, -1) for _ in self.modes))

    @staticmethod
    def _keys(i: int, r: int, mode: str, n: int) -> tuple[str, str]:
        nonce = f"{r:08x}"
        return (
            PREFIX + seq0_name(f"c{i}", nonce, mode == "x", 30_000),
            PREFIX + seq1_name(f"c{i}", nonce, mode == "x", n),
        )

    def _snapshot(self, store: tuple) -> Snapshot:
        objs = [_info(k, ts) for k, ts in store]
        return parse_listing(PREFIX, objs)

    def successors(self, state: tuple) -> list[tuple]:
        store, clock, ticks, cs = state
        out = []
        if ticks < self.ticks:
            out.append((store, clock + 1, ticks + 1, cs))
        for i, (pc, r, n, pend) in enumerate(cs):
            mode = self.modes[i]
            k0, k1 = self._keys(i, r, mode, n)
            st = dict(store)
            new = None
            if pc in (0, 3) and pend < 0:  # PUT request reaches the server: stamped now
                new = (pc, r, n, clock)
            elif pc == 0:  # seq-0 becomes visible
                st[k0] = pend
                new = (1, r, n, -1)
            elif pc == 1:  # doorway listing
                new = (2, r, self.number(self._snapshot(store), f"c{i}"), -1)
            elif pc == 2:  # next step is the seq-1 PUT
                new = (3, r, n, -1)
            elif pc == 3:  # seq-1 becomes visible
                st[k1] = pend
                new = (4, r, n, -1)
            elif pc == 4:  # election listing
                me = Me(f"c{i}", f"{r:08x}", mode == "x", True)
                verdict = decide(self.view(self._snapshot(store), me), me)
                assert verdict.decision in (ACQ, WAIT), verdict
                new = (5 if verdict.decision is ACQ else 4, r, n, -1)
            elif pc == 5:  # leave the critical section, delete seq-0
                st.pop(k0, None)
                new = (6, r, n, -1)
            elif pc == 6:  # delete seq-1
                st.pop(k1, None)
                new = (0, r + 1, 0, -1) if r + 1 < self.rounds else (7, r, n, -1)
            if new is None:
                continue
            cs2 = (*cs[:i], new, *cs[i + 1 :])
            out.append((tuple(sorted(st.items())), clock, ticks, cs2))
        return out

    def violation(self, state: tuple) -> bool:
        inside = [self.modes[i] for i, c in enumerate(state[3]) if c[0] == 5]
        return len(inside) > 1 and "x" in inside

    def explore(self, limit: int = 3_000_000) -> tuple[int, bool, bool]:
        """Return (states, violation found, every contender can finish)."""
        seen = {self.initial()}
        stack = [self.initial()]
        done_seen = False
        while stack:
            state = stack.pop()
            if self.violation(state):
                return len(seen), True, False
            if all(c[0] == 7 for c in state[3]):
                done_seen = True
            for nxt in self.successors(state):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
            assert len(seen) < limit
        return len(seen), False, done_seen


@pytest.mark.parametrize(
    ("modes", "rounds", "ticks"),
    [("xx", 2, 2), ("xs", 2, 2), ("ss", 1, 1), ("xxx", 1, 1), ("xss", 1, 1)],
)
def test_no_interleaving_breaks_mutual_exclusion(modes: str, rounds: int, ticks: int) -> None:
    states, violated, finishes = _Model(modes, rounds=rounds, ticks=ticks).explore()
    assert not violated
    assert finishes
    assert states > 500


def test_model_finds_the_whole_second_tie_without_the_bakery_number() -> None:
    """Ordering by (second, id) alone, as the seed did, lets a later contender with a smaller
    id overtake a holder stamped in the same second."""
    _, violated, _ = _Model("xx", ticks=0, number=lambda s, lock_id: 1).explore()
    assert violated


def test_model_finds_the_race_when_registering_contenders_are_ignored() -> None:
    def hide_registering(s: Snapshot, me: Me) -> Snapshot:
        groups = L.contenders(s)
        keep = tuple(
            t
            for t in s.tickets
            if t.lock_id == me.lock_id or groups[(t.lock_id, t.nonce)].order is not None
        )
        return replace(s, tickets=keep)

    _, violated, _ = _Model("xx", ticks=1, view=hide_registering).explore()
    assert violated


# -- the conditional method's slot ------------------------------------------------------------


def test_slot_round_trip_and_foreign_content() -> None:
    holder = SlotHolder("a_1", 30.0, 1000.5)
    assert parse_slot(render_slot(holder)) == holder
    assert render_slot(holder) != render_slot(replace(holder, refreshed=1001.0))
    bad_docs = [
        b"",
        b"{}",
        b"not json",
        b'{"format": "other"}',
        b"\xff",
        b'{"format": "s3func-lock-slot/1", "lock_id": "a-b", "lease": 1, "refreshed": 1}',
        b'{"format": "s3func-lock-slot/1", "lock_id": "a", "lease": 0, "refreshed": 1}',
    ]
    for bad in bad_docs:
        with pytest.raises(LockError, match="not an s3func lock slot"):
            parse_slot(bad)


def test_slot_staleness() -> None:
    h = SlotHolder("a", 10.0, 1000.0)
    edge = 1000.0 + 10.0 + grace_for(10.0)
    assert not h.stale(edge) and h.stale(edge + 0.01) and not h.stale(None)
    view = SlotView(h, "e", edge + 1)
    assert view.live_holder() is None
    assert SlotView(h, "e", 1001).live_holder() == h
    assert SlotView(h, "e", 1001).live_holder(exclude="a") is None


# -- an in-memory session -----------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes, etag: str, headers: dict[str, str]) -> None:
        self.data = data
        self.etag = etag
        self.headers = headers

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class FakeSession:
    """A strongly consistent in-memory bucket with a controllable clock.

    ``now`` is both the local monotonic clock given to locks and the server clock (the server
    stamps objects with ``now`` truncated to ``resolution``). ``sleep`` advances it and runs
    ``hooks`` (callables taking the session) so tests can interleave events deterministically.
    """

    bucket = "fake"

    def __init__(
        self,
        *,
        conditional: bool = False,
        versioned: bool = False,
        resolution: float = 1.0,
        put_stamp_offset: float | None = None,
        race_barrier: int = 0,
    ) -> None:
        self.now = 1_780_000_000.25
        self.conditional = conditional
        self.versioned = versioned
        self.resolution = resolution
        self.put_stamp_offset = put_stamp_offset
        self.objects: dict[str, tuple[bytes, float, str, str]] = {}  # key -> data, ts, etag, vid
        self.calls: list[tuple[str, str]] = []
        self.hooks: list[Any] = []
        self.fail: dict[str, Exception] = {}
        self.mutex = threading.RLock()
        self.counter = itertools.count(1)
        self.barrier = threading.Barrier(race_barrier, timeout=10) if race_barrier else None

    # clock
    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", f"{seconds:.3f}"))
        self.now += max(seconds, 0.001)
        for hook in list(self.hooks):
            hook(self)

    def stamp(self) -> float:
        return self.now - (self.now % self.resolution)

    def headers(self) -> dict[str, str]:
        return {"Date": formatdate(self.now, usegmt=True)}

    def _check(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        exc = self.fail.get(op)
        if exc is not None:
            raise exc

    # the session contract
    def put_object(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        **_: Any,
    ) -> Response:
        with self.mutex:
            self._check("put", key)
            if (if_match or if_none_match) and not self.conditional:
                raise NotSupportedError("conditional writes not implemented", status=501)
            current = self.objects.get(key)
        if self.barrier is not None and "-race" in key and (if_match or if_none_match):
            ok = self._precondition(current, if_match, if_none_match)
            self.barrier.wait()
            if not ok:
                raise PreconditionFailedError("precondition failed", status=412)
            current = None
        with self.mutex:
            current = self.objects.get(key) if current is not None else current
            if not self._precondition(current, if_match, if_none_match):
                raise PreconditionFailedError(
                    "precondition failed", status=412, headers=self.headers()
                )
            n = next(self.counter)
            etag, vid = f"etag{n}", f"v{n}"
            self.objects[key] = (bytes(data), self.stamp(), etag, vid)
            stamp = self.now + (self.put_stamp_offset or 0.0)
            return Response(
                status=200,
                headers=self.headers(),
                key=key,
                etag=etag,
                version_id=vid if self.versioned else None,
                last_modified=datetime.fromtimestamp(stamp, UTC) if self.put_stamp_offset else None,
            )

    @staticmethod
    def _precondition(current: Any, if_match: str | None, if_none_match: str | None) -> bool:
        if if_none_match == "*" and current is not None:
            return False
        return not (if_match is not None and (current is None or current[2] != if_match))

    def get_object(self, key: str, **_: Any) -> _Body:
        with self.mutex:
            self._check("get", key)
            if key not in self.objects:
                raise NotFoundError("no such key", status=404, headers=self.headers())
            data, _ts, etag, _vid = self.objects[key]
            return _Body(data, etag, self.headers())

    def head_object(self, key: str, **_: Any) -> Response:
        with self.mutex:
            self._check("head", key)
            if key not in self.objects:
                raise NotFoundError("no such key", status=404, headers=self.headers())
            data, ts, etag, _vid = self.objects[key]
            return Response(
                status=200,
                headers=self.headers(),
                key=key,
                etag=etag,
                content_length=len(data),
                last_modified=datetime.fromtimestamp(ts, UTC),
            )

    def delete_object(
        self, key: str, *, version_id: str | None = None, if_match: str | None = None
    ) -> Response:
        with self.mutex:
            self._check("delete", key)
            current = self.objects.get(key)
            if if_match is not None:
                if not self.conditional:
                    raise NotSupportedError("conditional deletes not implemented", status=501)
                if current is None or current[2] != if_match:
                    raise PreconditionFailedError("precondition failed", status=412)
            if current is not None and (version_id is None or version_id == current[3]):
                del self.objects[key]
            return Response(status=204, headers=self.headers(), key=key)

    def list_objects(self, *, prefix: str = "", **_: Any) -> ListResult:
        with self.mutex:
            self._check("list", prefix)
            items = [
                ObjectInfo(
                    k,
                    content_length=len(v[0]),
                    etag=v[2],
                    last_modified=datetime.fromtimestamp(v[1], UTC),
                )
                for k, v in sorted(self.objects.items())
                if k.startswith(prefix)
            ]
        return ListResult(lambda: iter([(items, [])]))

    # helpers for tests
    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls if op != "sleep"]

    def plant(
        self,
        lock_id: str,
        *,
        exclusive: bool = True,
        age: float = 0.0,
        number: int = 1,
        lease_ms: int = 10_000,
        nonce: str = "0badc0de",
        seq: tuple[int, ...] = (0, 1),
    ) -> None:
        """Write a ticket as a crashed process would have left it, ``age`` seconds old."""
        ts = self.stamp() - age
        if 0 in seq:
            key = PREFIX + seq0_name(lock_id, nonce, exclusive, lease_ms)
            self.objects[key] = (BODY, ts, "e0", "p0")
        if 1 in seq:
            key = PREFIX + seq1_name(lock_id, nonce, exclusive, number)
            self.objects[key] = (BODY, ts, "e1", "p1")


def make(fake: FakeSession, key: str = "k", **kw: Any) -> ObjectLock:
    kw.setdefault("method", "listing")
    kw.setdefault("lease", 10.0)
    return ObjectLock(fake, key, clock=fake.clock, sleep=fake.sleep, _autorefresh=False, **kw)


# -- the shell: listing method ----------------------------------------------------------------


def test_uncontended_acquire_and_release_requests() -> None:
    fake = FakeSession()
    lock = make(fake)
    assert lock.acquire()
    assert lock.held and lock.method == "listing"
    assert fake.ops() == ["put", "list", "put", "list"]
    assert len(fake.keys(PREFIX)) == 2
    fake.calls.clear()
    lock.release()
    assert fake.ops() == ["delete", "delete"]
    assert fake.keys(PREFIX) == []
    lock.release()  # idempotent
    assert not lock.held


def test_second_contender_cannot_acquire_and_leaves_nothing_behind() -> None:
    fake = FakeSession()
    a, b = make(fake), make(fake)
    assert a.acquire()
    assert not b.acquire(blocking=False)
    assert not b.held
    assert len(fake.keys(PREFIX)) == 2  # only a's ticket
    assert b.locked() and a.locked()
    assert list(b.other_locks()) == [a.lock_id]
    info = b.other_locks()[a.lock_id]
    assert info.exclusive and info["lock_type"] == "exclusive" and not info.stale
    a.release()
    assert not b.locked()


def test_timeout_zero_tries_once_and_returns() -> None:
    fake = FakeSession()
    a, b = make(fake), make(fake)
    assert a.acquire()
    start = fake.now
    assert b.acquire(timeout=0) is False
    assert fake.now == start  # no sleeping at all
    assert b.acquire(timeout=2.0) is False
    assert 2.0 <= fake.now - start <= 2.5
    assert not [k for k in fake.keys(PREFIX) if b.lock_id in k]


def test_acquire_argument_checks() -> None:
    lock = make(FakeSession())
    with pytest.raises(ConfigurationError, match="non-blocking"):
        lock.acquire(blocking=False, timeout=1)
    with pytest.raises(ConfigurationError):
        lock.acquire(timeout=-2)
    with pytest.raises(ConfigurationError):
        make(FakeSession(), lock_id="bad-id")
    with pytest.raises(ConfigurationError):
        make(FakeSession(), method="magic")
    with pytest.raises(ConfigurationError):
        make(FakeSession(), lease=1.0, refresh_interval=0.6)
    with pytest.raises(ConfigurationError):
        make(FakeSession(), key="")


def test_context_manager_raises_a_clear_lock_error() -> None:
    fake = FakeSession()
    a = make(fake)
    with a:
        assert a.held
        with (
            pytest.raises(LockTimeoutError, match="could not acquire lock 'k'"),
            make(fake, timeout=0),
        ):
            pass
    assert not a.held and fake.keys(PREFIX) == []


def test_waiter_gets_the_lock_when_the_holder_releases() -> None:
    fake = FakeSession()
    a, b = make(fake), make(fake)
    assert a.acquire()
    fake.hooks.append(lambda s: a.release() if s.now > 1_780_000_003 else None)
    assert b.acquire()
    assert b.held and not a.held


def test_shared_holders_coexist_and_exclusive_waits() -> None:
    fake = FakeSession()
    r1, r2, w = make(fake), make(fake), make(fake)
    assert r1.acquire(exclusive=False)
    assert r2.acquire(exclusive=False)
    assert not w.acquire(blocking=False)
    r1.release()
    assert not w.acquire(blocking=False)
    r2.release()
    assert w.acquire(blocking=False)
    with pytest.raises(LockError, match="other mode"):
        w.acquire(exclusive=False)
    assert w.acquire()  # same mode: already held


def test_own_age_comes_from_the_listing_not_the_put_response() -> None:
    # PUT responses claim our objects are an hour older than they are.
    fake = FakeSession(put_stamp_offset=-3600)
    a, b = make(fake), make(fake)
    assert a.acquire()
    assert not b.acquire(blocking=False)


def test_recovered_ticket_is_not_treated_as_held() -> None:
    fake = FakeSession()
    holder = make(fake)
    assert holder.acquire()
    fake.now += 2
    fake.plant("w1")  # a waiting ticket left by a process that restarted
    again = make(fake, lock_id="w1")
    assert not again.held
    assert again.acquire(blocking=False) is False  # holder is ahead: the election decides
    assert not again.held


def test_recovered_live_ticket_keeps_its_place() -> None:
    fake = FakeSession()
    fake.plant("w1", number=1)
    fake.now += 1
    other = make(fake)
    fake.hooks.append(lambda s: None)
    assert not other.acquire(blocking=False)  # w1 is older and live
    again = make(fake, lock_id="w1")
    assert again.acquire(blocking=False)
    assert PREFIX + seq1_name("w1", "0badc0de", True, 1) in fake.keys(PREFIX)  # same ticket


def test_recovered_expired_ticket_is_replaced() -> None:
    fake = FakeSession()
    # 11 s since its last refresh: more than the lease (10 s in these tests), so somebody may
    # already have ignored it (after lease + grace), and it must not keep its place.
    fake.plant("w1", age=11)
    again = make(fake, lock_id="w1")
    assert again.acquire(blocking=False)
    keys = fake.keys(PREFIX)
    assert len(keys) == 2 and all("0badc0de" not in k for k in keys)


def test_winning_is_impossible_after_our_ticket_is_deleted() -> None:
    fake = FakeSession()
    a, b = make(fake), make(fake)
    assert a.acquire()

    def break_b(s: FakeSession) -> None:
        for k in s.keys(PREFIX):
            if b.lock_id in k:
                del s.objects[k]
        a.release()  # the lock is free now: a buggy election would let b win

    fake.hooks.append(break_b)
    with pytest.raises(LockLostError, match="gone"):
        b.acquire()
    assert not b.held


def test_foreign_objects_and_lock_k_dot_lock_do_not_interfere() -> None:
    fake = FakeSession()
    fake.objects[PREFIX + "README"] = (b"hello", fake.stamp(), "x", "y")
    fake.objects[PREFIX + "a-0123abcd-1x-1"] = (b"wrong size", fake.stamp() - 100, "x", "y")
    fake.objects[PREFIX + "x.lock/a-0123abcd-1x-1"] = (BODY, fake.stamp() - 100, "x", "y")
    k = make(fake, "k")
    kk = make(fake, "k.lock")
    assert kk.acquire()
    assert k.acquire(blocking=False)  # two different locks
    assert k.other_locks() == {}
    assert kk.other_locks() == {}
    k.release()
    kk.release()
    assert sorted(fake.keys()) == sorted(
        [PREFIX + "README", PREFIX + "a-0123abcd-1x-1", PREFIX + "x.lock/a-0123abcd-1x-1"]
    )


def test_crashed_holder_stops_blocking_after_lease_and_is_cleaned() -> None:
    fake = FakeSession()
    fake.plant("dead", lease_ms=10_000)  # a holder killed right after acquiring
    waiter = make(fake, lease=10.0)
    start = fake.now

    def keep_alive(s: FakeSession) -> None:
        if waiter._keeper is not None:
            waiter._keeper.renew()

    fake.hooks.append(keep_alive)
    assert waiter.acquire(timeout=60)
    waited = fake.now - start
    assert 10 + grace_for(10) <= waited <= 10 + grace_for(10) + 3
    assert not [k for k in fake.keys(PREFIX) if "dead" in k]  # stale ticket removed


def test_live_holder_never_loses_to_the_lease_mechanism() -> None:
    fake = FakeSession()
    holder, waiter = make(fake, lease=4.0), make(fake, lease=4.0)
    assert holder.acquire()

    def both_alive(s: FakeSession) -> None:
        for lk in (holder, waiter):
            if lk._keeper is not None:
                lk._keeper.renew()

    fake.hooks.append(both_alive)
    assert waiter.acquire(timeout=40) is False  # ten leases later, still not ours
    assert holder.verify()


def test_failed_release_does_not_orphan_the_lock_for_long() -> None:
    fake = FakeSession()
    a, b = make(fake), make(fake)
    assert a.acquire()
    fake.fail["delete"] = ServerError("boom", status=500)
    with pytest.raises(LockError, match="once the lease expires"):
        a.release()
    del fake.fail["delete"]
    assert not a.held and a._keeper is None
    start = fake.now
    fake.hooks.append(lambda s: b._keeper.renew() if b._keeper else None)
    assert b.acquire(timeout=30)
    assert fake.now - start <= 10 + grace_for(10) + 2


def test_lease_lost_when_refreshes_fail_past_the_deadline() -> None:
    fake = FakeSession()
    a = make(fake, lease=4.0)
    assert a.acquire()
    assert a.verify()
    fake.fail["put"] = ServerError("down", status=503)
    fake.now += 1
    assert a._keeper.renew()  # failed, but the lease still runs
    assert a.verify() is False or a._keeper.lost is None
    fake.now += 4
    assert not a._keeper.renew()
    assert a._keeper.lost and "expired" in a._keeper.lost
    assert not a.verify()
    del fake.fail["put"]
    with pytest.raises(LockLostError):
        a.__exit__(None, None, None)


def test_refresh_completing_after_the_deadline_loses_the_lock() -> None:
    fake = FakeSession()
    a = make(fake, lease=4.0)
    assert a.acquire()
    original = fake.put_object

    def slow_put(*args: Any, **kw: Any) -> Response:
        fake.now += 5  # the request takes longer than the lease
        return original(*args, **kw)

    fake.put_object = slow_put  # type: ignore[method-assign]
    assert not a._keeper.renew()
    assert "after the lease had expired" in (a._keeper.lost or "")


def test_refresh_notices_a_broken_ticket() -> None:
    fake = FakeSession()
    a, b = make(fake), make(fake)
    assert a.acquire()
    assert b.break_other_locks(timedelta(0)) == [a.lock_id]
    assert not a.verify()
    assert not a._keeper.renew()
    assert "deleted" in (a._keeper.lost or "")
    assert fake.keys(PREFIX) == []  # the lease object was not resurrected


def test_break_other_locks_arguments_and_age_gate() -> None:
    fake = FakeSession()
    me = make(fake)
    with pytest.raises(ConfigurationError, match="naive"):
        me.break_other_locks(datetime(2026, 1, 1))
    with pytest.raises(ConfigurationError):
        me.break_other_locks(timedelta(seconds=-1))
    with pytest.raises(ConfigurationError):
        me.break_other_locks("2026-01-01")  # type: ignore[arg-type]
    fake.plant("old", age=100, nonce="0000000b")
    fake.plant("young", age=1, nonce="0000000c")
    assert me.acquire(blocking=False) is False  # young is live and ahead
    assert me.break_other_locks() == ["old"]  # default: only expired tickets
    assert me.break_other_locks(timedelta(seconds=30)) == []
    cutoff = datetime.fromtimestamp(fake.now, UTC)
    assert me.break_other_locks(cutoff) == ["young"]
    assert me.acquire(blocking=False)
    assert me.break_other_locks(timedelta(0)) == []  # never our own ticket
    assert len(fake.keys(PREFIX)) == 2


def test_break_with_timedelta_uses_server_time_not_the_local_clock() -> None:
    fake = FakeSession()
    fake.plant("a", age=20, nonce="0000000b", lease_ms=3_600_000)  # live for an hour
    me = make(fake)
    assert me.break_other_locks(timedelta(seconds=30)) == []
    assert me.break_other_locks(timedelta(seconds=10)) == ["a"]
    assert not [k for k in fake.keys(PREFIX) if "probe" in k]


def test_all_requests_go_through_the_given_session() -> None:
    fake = FakeSession()
    lock = make(fake)
    assert lock.acquire() and lock.verify() and lock.locked()
    lock.other_locks()
    lock.release()
    assert lock._session is fake
    assert {op for op in fake.ops()} <= {"put", "list", "delete", "get", "head"}
    source = (Path(L.__file__)).read_text()
    assert "S3Session" not in source and "B2Session" not in source


def test_versioned_bucket_lease_refresh_deletes_old_versions() -> None:
    fake = FakeSession(versioned=True)
    a = make(fake)
    assert a.acquire()
    for _ in range(3):
        fake.now += 1
        assert a._keeper.renew()
    deleted = [k for op, k in fake.calls if op == "delete"]
    assert len(deleted) == 3
    a.release()
    assert fake.keys(PREFIX) == []


def test_abandoned_lock_is_cleaned_by_its_finalizer() -> None:
    fake = FakeSession()
    lock = make(fake)
    assert lock.acquire()
    finalizer = lock._finalizer
    assert finalizer is not None and finalizer.alive
    finalizer()
    assert fake.keys(PREFIX) == []


# -- the shell: conditional method ----------------------------------------------------------


def conditional(fake: FakeSession) -> FakeSession:
    L._PROBE_BY_SESSION[fake] = L.ConditionalWriteSupport(True, "ok")
    return fake


def test_auto_probes_and_uses_conditional_writes_when_atomic() -> None:
    fake = FakeSession(conditional=True)
    lock = make(fake, method="auto")
    assert lock.method == "auto"
    assert lock.acquire()
    assert lock.method == "conditional"
    assert not [k for k in fake.keys() if "probe" in k]
    fake.calls.clear()
    other = make(fake, method="auto")
    assert not other.acquire(blocking=False)
    assert fake.ops() == ["get"]  # the probe result is cached; one GET of the slot decides
    fake.calls.clear()
    lock.release()
    assert fake.ops() == ["delete"]
    assert other.acquire(blocking=False)


def test_conditional_uncontended_requests() -> None:
    fake = conditional(FakeSession(conditional=True))
    lock = make(fake, method="conditional")
    assert lock.acquire()
    assert fake.ops() == ["get", "put", "list"]  # the first GET learns the server time
    assert lock.verify()
    lock.release()
    fake.calls.clear()
    assert lock.acquire()
    assert fake.ops() == ["put", "list"]
    fake.calls.clear()
    lock.release()
    assert fake.ops() == ["delete"]
    fake.calls.clear()
    assert lock.acquire(exclusive=False)
    assert fake.ops() == ["put", "list"]
    assert fake.keys(PREFIX) == [PREFIX + reader_name(lock.lock_id, 10_000)]
    lock.release()
    assert fake.keys(PREFIX) == []


def test_auto_falls_back_to_listing_on_501() -> None:
    fake = FakeSession(conditional=False)
    lock = make(fake, method="auto")
    assert lock.acquire()
    assert lock.method == "listing"
    with pytest.raises(LockError, match="501"):
        make(fake, method="conditional").acquire()


def test_probe_refuses_non_atomic_conditional_writes() -> None:
    fake = FakeSession(conditional=True, race_barrier=8)
    result = L.probe_conditional_writes(fake, PREFIX)
    assert not result.supported
    assert "not atomic" in result.reason and "8 of 8" in result.reason
    assert not [k for k in fake.keys() if "probe" in k]
    with pytest.raises(LockError, match="not atomic"):
        make(fake, method="conditional").acquire()


def test_probe_refuses_an_ignored_if_none_match() -> None:
    class Ignoring(FakeSession):
        def put_object(self, key: str, data: bytes, **kw: Any) -> Response:
            kw.pop("if_none_match", None)
            return super().put_object(key, data, **kw)

    result = L.probe_conditional_writes(Ignoring(conditional=True), PREFIX)
    assert not result.supported and "overwrite" in result.reason


def test_probe_refuses_an_ignored_conditional_delete() -> None:
    class Ignoring(FakeSession):
        def delete_object(self, key: str, **kw: Any) -> Response:
            kw.pop("if_match", None)
            return super().delete_object(key, **kw)

    result = L.probe_conditional_writes(Ignoring(conditional=True), PREFIX)
    assert not result.supported and "DELETE" in result.reason


def test_conditional_shared_and_exclusive() -> None:
    fake = conditional(FakeSession(conditional=True))
    r1, r2, w = (make(fake, method="conditional") for _ in range(3))
    assert r1.acquire(exclusive=False) and r2.acquire(exclusive=False)
    assert not w.acquire(blocking=False)  # created the slot, saw readers, gave up
    assert PREFIX + "slot" not in fake.keys()
    assert set(w.other_locks()) == {r1.lock_id, r2.lock_id}
    assert w.other_locks()[r1.lock_id].method == "conditional"
    r1.release()
    r2.release()
    assert w.acquire(blocking=False)
    assert not r1.acquire(blocking=False, exclusive=False)  # the slot is held
    assert not [k for k in fake.keys(PREFIX) if "reader" in k]  # r1 stepped back


def test_conditional_writer_waits_for_readers_while_holding_the_slot() -> None:
    fake = conditional(FakeSession(conditional=True))
    reader, writer, late = (make(fake, method="conditional") for _ in range(3))
    assert reader.acquire(exclusive=False)
    steps = []

    def hook(s: FakeSession) -> None:
        steps.append(s.now)
        if len(steps) == 1:
            assert PREFIX + "slot" in s.keys()  # the writer holds the slot while waiting
            assert not late.acquire(blocking=False, exclusive=False)  # new readers step back
        if len(steps) == 3:
            reader.release()

    fake.hooks.append(hook)
    assert writer.acquire(timeout=10)
    assert len(steps) == 3


def test_conditional_crashed_holder_expires() -> None:
    fake = conditional(FakeSession(conditional=True))
    dead = make(fake, method="conditional", lease=5.0)
    assert dead.acquire()
    dead._finalizer.detach()  # killed: nothing cleans up
    dead._keeper.stop()
    waiter = make(fake, method="conditional", lease=5.0)
    start = fake.now
    assert waiter.acquire(timeout=30)
    assert 5 + grace_for(5) <= fake.now - start <= 5 + grace_for(5) + 3
    assert list(waiter.other_locks()) == []  # the stale slot was replaced


def test_conditional_crashed_reader_expires() -> None:
    fake = conditional(FakeSession(conditional=True))
    dead = make(fake, method="conditional", lease=5.0)
    assert dead.acquire(exclusive=False)
    dead._finalizer.detach()
    dead._keeper.stop()
    writer = make(fake, method="conditional", lease=5.0)
    fake.hooks.append(lambda s: writer._keeper.renew() if writer._keeper else None)
    start = fake.now
    assert writer.acquire(timeout=30)
    assert 5 + grace_for(5) <= fake.now - start <= 5 + grace_for(5) + 3


def test_conditional_live_holder_keeps_the_lock_and_break() -> None:
    fake = conditional(FakeSession(conditional=True))
    holder = make(fake, method="conditional", lease=4.0)
    waiter = make(fake, method="conditional")
    assert holder.acquire()
    fake.hooks.append(lambda s: holder._keeper.renew() if holder._keeper else None)
    assert waiter.acquire(timeout=30) is False
    assert holder.verify()
    assert waiter.break_other_locks() == []  # live: not broken by default
    assert waiter.break_other_locks(timedelta(0)) == [holder.lock_id]
    assert not holder.verify()
    assert not holder._keeper.renew()
    assert "deleted or replaced" in (holder._keeper.lost or "")
    assert waiter.acquire(blocking=False)
    holder.release()  # must not delete the waiter's slot
    assert waiter.verify()


def test_conditional_recovery_adopts_our_own_live_slot() -> None:
    fake = conditional(FakeSession(conditional=True))
    first = make(fake, method="conditional", lock_id="job_7")
    assert first.acquire()
    first._finalizer.detach()  # the process restarts
    first._keeper.stop()
    fake.now += 1
    again = make(fake, method="conditional", lock_id="job_7")
    assert again.acquire(blocking=False)
    stranger = make(fake, method="conditional")
    assert not stranger.acquire(blocking=False)


def test_mixed_methods_listing_holder_blocks_conditional() -> None:
    fake = conditional(FakeSession(conditional=True))
    listing, cond = make(fake, method="listing"), make(fake, method="conditional")
    assert listing.acquire()
    assert not cond.acquire(blocking=False)  # it stepped back after seeing the ticket
    assert not cond.acquire(blocking=False, exclusive=False)
    assert PREFIX + "slot" not in fake.keys()
    listing.release()
    assert cond.acquire(blocking=False)
    assert not listing.acquire(blocking=False)  # and the other way round
    assert listing.other_locks()[cond.lock_id].method == "conditional"
    cond.release()
    assert cond.acquire(blocking=False, exclusive=False)
    assert not listing.acquire(blocking=False)  # a conditional reader blocks a writer
    assert listing.acquire(blocking=False, exclusive=False)  # but not a reader
    assert cond.verify() and listing.verify()


@pytest.mark.parametrize("exclusive", [True, False])
def test_mixed_methods_race_listing_registers_first(exclusive: bool) -> None:
    """A listing writer whose seq-0 became visible before the conditional contender's write:
    the conditional contender must step back and the listing one proceeds."""
    fake = conditional(FakeSession(conditional=True))
    listing, cond = make(fake, method="listing"), make(fake, method="conditional")
    fired = []
    original = fake.list_objects
    count = itertools.count()

    def list_hook(**kw: Any) -> ListResult:
        if next(count) == 0:  # the listing contender's doorway listing
            fired.append(cond.acquire(blocking=False, exclusive=exclusive))
        return original(**kw)

    fake.list_objects = list_hook  # type: ignore[method-assign]
    assert listing.acquire(blocking=False)
    assert fired == [False]


def test_conditional_contender_joins_the_listing_queue_instead_of_starving() -> None:
    fake = conditional(FakeSession(conditional=True))
    listing, cond = make(fake, method="listing"), make(fake, method="conditional")
    assert listing.acquire()
    seen = []

    def hook(s: FakeSession) -> None:
        if cond._ticket is not None and not seen:
            seen.append(s.now)  # cond is waiting in the listing queue with a ticket
            listing.release()

    fake.hooks.append(hook)
    assert cond.acquire(timeout=10)
    assert seen and cond._ticket is not None and cond.method == "conditional"
    assert cond.verify()
    assert not listing.acquire(blocking=False)
    cond.release()
    assert fake.keys(PREFIX) == []

"""The sessions' batch helpers: thread-pool fallback, refusals among outcomes (pure logic)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from s3func import NotFoundError
from s3func.session import _on_threads, with_rejects


def test_runs_workers_at_once_and_yields_in_order() -> None:
    barrier = threading.Barrier(3, timeout=10)  # broken unless three calls overlap

    def fn(n: int) -> int:
        if n < 3:
            barrier.wait()
        return n * 10

    out = list(_on_threads(fn, ((f"t{n}", n) for n in range(7)), 3))
    assert out == [(f"t{n}", n * 10) for n in range(7)]


def test_errors_are_yielded_per_item_others_go_on() -> None:
    def fn(n: int) -> int:
        if n == 2:
            raise NotFoundError("gone", key=str(n))
        return n

    out = dict(_on_threads(fn, ((n, n) for n in range(5)), 2))
    assert isinstance(out.pop(2), NotFoundError)
    assert out == {0: 0, 1: 1, 3: 3, 4: 4}


def test_other_exceptions_propagate() -> None:
    def fn(n: int) -> int:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        list(_on_threads(fn, [(0, 0)], 2))


def test_items_are_taken_lazily() -> None:
    taken: list[int] = []

    def items() -> Iterator[tuple[int, int]]:
        for n in range(100):
            taken.append(n)
            yield n, n

    many = _on_threads(lambda n: n, items(), 2)
    assert next(many) == (0, 0)
    assert len(taken) <= 4  # at most twice the workers ahead: bodies stay bounded
    many.close()
    assert len(taken) <= 4


def test_with_rejects_reports_refusals_among_outcomes() -> None:
    rejects: list[tuple[str, str]] = []

    def outcomes() -> Iterator[tuple[str, str]]:
        yield "a", "ok"
        rejects.append(("x", "refused"))  # turned away while the next one was prepared
        yield "b", "ok"
        rejects.append(("y", "refused"))  # turned away after the last one was sent

    out = list(with_rejects(outcomes(), rejects))
    assert out == [("a", "ok"), ("b", "ok"), ("x", "refused"), ("y", "refused")]
    assert rejects == []

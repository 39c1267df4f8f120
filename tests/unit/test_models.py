"""Pure result types: dates, list items, lazy listings."""

from __future__ import annotations

import datetime as dt

import pytest

from s3func.models import ListResult, ObjectInfo, parse_http_date, parse_iso_date

UTC = dt.timezone.utc


def test_parse_http_date() -> None:
    assert parse_http_date("Sat, 21 Nov 2026 06:38:28 GMT") == dt.datetime(
        2026, 11, 21, 6, 38, 28, tzinfo=UTC
    )
    # RFC 850 style falls back to the email parser, still aware UTC
    value = parse_http_date("Saturday, 21-Nov-26 06:38:28 GMT")
    assert value is not None and value.tzinfo is not None
    assert parse_http_date("garbage") is None
    assert parse_http_date(None) is None


def test_parse_iso_date() -> None:
    assert parse_iso_date("2026-11-21T06:38:28.123Z") == dt.datetime(
        2026, 11, 21, 6, 38, 28, 123000, tzinfo=UTC
    )
    assert parse_iso_date("2026-11-21T06:38:28+01:00") == dt.datetime(
        2026, 11, 21, 5, 38, 28, tzinfo=UTC
    )
    assert parse_iso_date("nope") is None


def test_object_info_mapping_and_attributes() -> None:
    info = ObjectInfo("a/b", content_length=3, etag="e", last_modified="2026-01-02T03:04:05Z")
    assert info["key"] == info.key == "a/b"
    assert info["content_length"] == 3 == info.size
    assert info["last_modified"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert info.get("nope", 1) == 1
    with pytest.raises(KeyError):
        info["_last_modified"]
    assert "content_length" in info.keys()
    assert info == ObjectInfo(
        "a/b", content_length=3, etag="e", last_modified="2026-01-02T03:04:05Z"
    )


def test_list_result_is_lazy_and_collects_prefixes() -> None:
    calls = []

    def pages():  # type: ignore[no-untyped-def]
        calls.append(1)
        yield [ObjectInfo("a")], ["p1/"]
        calls.append(2)
        yield [ObjectInfo("b")], ["p2/"]

    result = ListResult(pages)
    assert calls == []
    it = result.iter_objects()
    assert next(it).key == "a"
    assert calls == [1]
    assert result.common_prefixes == ["p1/", "p2/"]
    assert [o.key for o in result] == ["a", "b"]
    assert result.keys() == ["a", "b"]

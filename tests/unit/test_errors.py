"""The exception tree: builtin bases, messages, pickling, status mapping."""

from __future__ import annotations

import pickle

import pytest

import s3func
from s3func import errors as E

ALL = [getattr(E, name) for name in E.__all__ if isinstance(getattr(E, name), type)]


def test_single_base() -> None:
    for cls in ALL:
        assert issubclass(cls, s3func.S3FuncError), cls


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (E.NotFoundError, FileNotFoundError),
        (E.AccessDeniedError, PermissionError),
        (E.ConfigurationError, ValueError),
        (E.TransportTimeout, TimeoutError),
        (E.PoolTimeoutError, TimeoutError),
        (E.LockTimeoutError, TimeoutError),
        (E.HashMismatchError, E.IntegrityError),
        (E.HashMismatchError, E.S3ObjectError),
        (E.SyncError, E.S3ObjectError),
    ],
)
def test_builtin_bases(cls: type, builtin: type) -> None:
    assert issubclass(cls, builtin)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_message_never_empty_and_pickles(cls: type[E.S3FuncError]) -> None:
    exc = cls(status=404, code="NoSuchKey", bucket="b", key="k", operation="GetObject")
    assert str(exc)
    assert "GetObject" in str(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is cls
    assert str(again) == str(exc)
    assert (again.status, again.code, again.bucket, again.key) == (404, "NoSuchKey", "b", "k")
    assert again.retryable == exc.retryable


def test_fields_and_repr() -> None:
    exc = E.NotFoundError(
        "GetObject b/k: missing", status=404, code="NoSuchKey", request_id="R1", bucket="b", key="k"
    )
    assert exc.request_id == "R1"
    assert "NoSuchKey" in repr(exc) and "'k'" in repr(exc)
    assert isinstance(exc, FileNotFoundError)
    # OSError-based classes still present our message
    assert str(exc) == "GetObject b/k: missing"


def test_retryable_override() -> None:
    assert E.ServerError().retryable
    assert E.ThrottledError().retryable
    assert not E.NotFoundError().retryable
    assert E.ServiceError(retryable=True).retryable


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (304, E.PreconditionFailedError),
        (400, E.ServiceError),
        (401, E.AuthenticationError),
        (403, E.AccessDeniedError),
        (404, E.NotFoundError),
        (409, E.ConflictError),
        (412, E.PreconditionFailedError),
        (416, E.InvalidRangeError),
        (429, E.ThrottledError),
        (500, E.ServerError),
        (501, E.NotSupportedError),
        (503, E.ServerError),
    ],
)
def test_error_for_status(status: int, cls: type) -> None:
    assert E.error_for_status(status) is cls


def test_exported_from_package() -> None:
    for name in E.__all__:
        if name[0].isupper():
            assert getattr(s3func, name) is getattr(E, name)
    assert s3func.PreconditionFailedError is E.PreconditionFailedError
